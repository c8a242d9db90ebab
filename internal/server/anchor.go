package server

import (
	"context"
	"sync"
	"time"

	"scribe/internal/audit"
)

// anchoring runs the audit checkpoints: while the server runs, a signed checkpoint of the
// audit chain's head is written at start, every CheckpointEvery when the head has moved,
// and at shutdown, to three places the database's writer does not control together: the
// server's log (under systemd, the journal), the checkpoint file, and the database's own
// checkpoint table (so every backup carries them). `scribe audit verify` compares the
// chain with them (audit.CheckAnchors).
type anchoring struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	last   int64 // seq of the last checkpoint written; owned by the loop, then by stop
}

func (s *Server) startAnchoring() {
	ctx, cancel := context.WithCancel(context.Background())
	s.anchor.cancel, s.anchor.done = cancel, make(chan struct{})
	go func() {
		defer close(s.anchor.done)
		s.checkpoint(ctx, true)
		t := time.NewTicker(s.cfg.CheckpointEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.checkpoint(ctx, false)
			}
		}
	}()
}

// stopAnchoring ends the loop and writes the last checkpoint.
func (s *Server) stopAnchoring() {
	if s.anchor.cancel == nil {
		return
	}
	s.anchor.once.Do(func() {
		s.anchor.cancel()
		<-s.anchor.done
		s.checkpoint(context.Background(), false)
	})
}

// checkpoint signs the chain's head and writes it everywhere it goes, unless it has not
// moved since the last one (always when force). Each place fails on its own: a full disk
// stops the file and the table, not the journal line. A checkpoint once begun is finished
// even if ctx is cancelled meanwhile (shutdown stops the loop, not half a checkpoint, which
// would leave the three places disagreeing); the timeout still bounds it.
func (s *Server) checkpoint(ctx context.Context, force bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	cp, err := audit.NewCheckpoint(ctx, s.store.DB(), s.store.Keyring(), time.Now())
	if err != nil {
		s.log.Error("audit checkpoint not made", "err", err)
		return
	}
	if !force && cp.Seq == s.anchor.last {
		return
	}
	s.anchor.last = cp.Seq
	s.log.Info("audit checkpoint", cp.LogArgs()...)
	if err := audit.AppendCheckpointFile(s.cfg.CheckpointFile, cp); err != nil {
		s.log.Error("audit checkpoint not written to its file", "err", err)
	}
	if err := audit.SaveCheckpoint(ctx, s.store.DB(), cp); err != nil {
		s.log.Error("audit checkpoint not kept in the database", "err", err)
	}
}
