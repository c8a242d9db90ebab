package pipeline

import (
	"context"
	"strings"
	"time"

	"scribe/internal/domain"
	"scribe/internal/transcribe"
)

// decodePacked is file mode (Config.PackSeconds): the stream's finished utterances are
// packed into windows of up to PackSeconds (transcribe.Packer) and each window is decoded
// once, with the text committed before it as context. Segments come back on the
// recording's timeline; a run that decoded to nothing stays as an untranscribed segment.
// Memory stays bounded by one window plus the inbox's bound on audio read ahead.
func (p *Pipeline) decodePacked(ctx context.Context, in *inbox, offset float64, emit func(domain.LiveEvent)) error {
	pk := transcribe.NewPacker(p.cfg.PackSeconds)
	pk.MixSpeakers = p.cfg.MixSpeakers
	var said history
	commit := func(u domain.Utterance) error {
		u.Context = said.tail()
		text, err := p.commit(ctx, u, offset, emit)
		said.add(text)
		return err
	}
	for {
		us, _, done := in.take()
		for _, u := range us {
			for _, w := range pk.Add(u) {
				if err := commit(w); err != nil {
					return err
				}
			}
		}
		switch {
		case done:
			if w, ok := pk.Flush(); ok {
				return commit(w)
			}
			return nil
		case len(us) > 0:
			continue // more may have arrived meanwhile
		}
		select {
		case <-in.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// commit decodes a packed window, emits its segments and returns their text.
func (p *Pipeline) commit(ctx context.Context, u domain.Utterance, offset float64, emit func(domain.LiveEvent)) (string, error) {
	at := time.Now()
	segs, took, err := p.deps.Engine.(Transcriber).Transcribe(ctx, u)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		// The speech is real even if decoding failed: keep it visible to the reviewer.
		p.deps.Logger.Error("decode failed; speech kept as untranscribed", "window", u.Seq, "err", err)
		segs = transcribe.Untranscribed(u)
	}
	p.observe(Observation{Final: true, Close: true, Interval: u.Interval, Speech: u.Speech(), AudioSeconds: u.Seconds(), Decode: took, Lag: time.Since(at)})
	var text []string
	for i, s := range segs {
		if s.Text != "" {
			text = append(text, s.Text)
		}
		s.Start += offset
		s.End += offset
		ev := domain.LiveEvent{Kind: domain.EventCommitted, Utterance: u.Seq, Segment: s}
		if i == len(segs)-1 {
			// For a second pass; dropped with the event unless one keeps it.
			ev.Audio = &u
		}
		emit(ev)
	}
	return strings.Join(text, " "), nil
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
