package models

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progressBar counts bytes written through it and reports them to out. On a terminal it
// redraws one line with \r at most every redrawEvery; elsewhere (logs, pipes) it prints a
// plain line at every tenth of the download so the output stays readable.
type progressBar struct {
	out        io.Writer
	tty        bool
	name       string
	total      int64
	start      int64 // bytes already there when this transfer began (resume)
	done       int64
	began      time.Time
	lastDraw   time.Time
	lastTenth  int64
	drewLine   bool
	now        func() time.Time
	redrawStep time.Duration
}

const redrawEvery = 200 * time.Millisecond

func newProgressBar(out io.Writer, name string, total, start int64) *progressBar {
	p := &progressBar{out: out, tty: isTerminal(out), name: name, total: total, start: start,
		done: start, now: time.Now, redrawStep: redrawEvery}
	p.began = p.now()
	p.lastTenth = p.tenth()
	return p
}

// isTerminal reports whether w is a character device (a terminal), without cgo.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (p *progressBar) Write(b []byte) (int, error) {
	if p.out == nil {
		return len(b), nil
	}
	p.done += int64(len(b))
	now := p.now()
	if p.tty {
		if now.Sub(p.lastDraw) >= p.redrawStep || p.done >= p.total {
			p.lastDraw = now
			fmt.Fprintf(p.out, "\r%s", p.line(now))
			p.drewLine = true
		}
		return len(b), nil
	}
	if t := p.tenth(); t > p.lastTenth {
		p.lastTenth = t
		fmt.Fprintln(p.out, p.line(now))
	}
	return len(b), nil
}

func (p *progressBar) tenth() int64 {
	if p.total <= 0 {
		return 0
	}
	return p.done * 10 / p.total
}

// finish ends the rewritten terminal line so later output starts on a fresh one.
func (p *progressBar) finish() {
	if p.out != nil && p.tty && p.drewLine {
		fmt.Fprintln(p.out)
	}
}

func (p *progressBar) line(now time.Time) string {
	pct := 100.0
	if p.total > 0 {
		pct = 100 * float64(p.done) / float64(p.total)
	}
	rate := 0.0
	if el := now.Sub(p.began).Seconds(); el > 0 {
		rate = float64(p.done-p.start) / el / 1e6
	}
	const width = 30
	filled := min(width, max(0, int(pct/100*width)))
	bar := strings.Repeat("#", filled) + strings.Repeat(".", width-filled)
	return fmt.Sprintf("%s [%s] %5.1f%% %7.1f/%.1f MB %6.1f MB/s",
		p.name, bar, pct, float64(p.done)/1e6, float64(p.total)/1e6, rate)
}
