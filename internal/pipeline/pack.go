package pipeline

import (
	"context"
	"time"

	"scribe/internal/domain"
	"scribe/internal/transcribe"
)

// decodePacked is file mode (Config.PackSeconds): the stream's finished utterances are
// packed into windows of up to PackSeconds (transcribe.Packer) and each window is decoded
// once, with the text committed before it as context. Segments come back on the
// recording's timeline; a run that decoded to nothing stays as an untranscribed segment.
// Memory stays bounded by one window plus the queue of finished utterances.
func (p *Pipeline) decodePacked(ctx context.Context, offset float64, finals <-chan heard, _ *latest, emit func(domain.LiveEvent)) error {
	pk := transcribe.NewPacker(p.cfg.PackSeconds)
	var said history
	commit := func(u domain.Utterance) error {
		u.Context = said.tail()
		text, err := p.commit(ctx, heard{u: u, at: time.Now()}, offset, len(finals), emit)
		said.add(text)
		return err
	}
	for {
		select {
		case h, ok := <-finals:
			if !ok {
				if u, ok := pk.Flush(); ok {
					return commit(u)
				}
				return nil
			}
			for _, u := range pk.Add(h.u) {
				if err := commit(u); err != nil {
					return err
				}
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// history is a stream's committed text, newest last: its tail is the decoder's context.
type history struct{ texts []string }

func (h *history) add(text string) {
	if text == "" {
		return
	}
	h.texts = append(h.texts, text)
	if len(h.texts) > 8 {
		h.texts = h.texts[len(h.texts)-8:]
	}
}

func (h *history) tail() string { return transcribe.ContextTail(h.texts) }
