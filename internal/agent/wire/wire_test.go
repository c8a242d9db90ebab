package wire

import (
	"testing"
)

func TestFrameRoundTripAndRejects(t *testing.T) {
	f := Frame{Kind: KindAudio, Run: 7, Seq: 42, Start: 16000, Channels: [][]float32{{0.5, -0.25, 1}, {0, 0.125, -1}}}
	g, err := Decode(f.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if g.Run != 7 || g.Seq != 42 || g.Start != 16000 || len(g.Channels) != 2 || g.Channels[1][1] != 0.125 || g.Channels[0][2] != 1 {
		t.Fatalf("round trip: %+v", g)
	}
	b := f.Encode()
	if _, err := Decode(b[:len(b)-1]); err == nil {
		t.Fatal("truncated frame accepted")
	}
	if _, err := Decode(Frame{Kind: 9}.Encode()); err == nil {
		t.Fatal("unknown kind accepted")
	}
	if _, err := Decode(Frame{Kind: KindAudio}.Encode()); err == nil {
		t.Fatal("audio frame without samples accepted")
	}
}

// A stream resent after a reconnect from the first unacknowledged frame: every frame is
// accepted exactly once.
func TestDedupAcceptsEachSequenceOnce(t *testing.T) {
	var d Dedup
	var got []uint64
	for _, seq := range []uint64{0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6} {
		if d.Accept(seq) {
			got = append(got, seq)
		}
	}
	if len(got) != 7 || d.Duplicates != 4 || d.Gaps != 0 {
		t.Fatalf("accepted %v, duplicates %d, gaps %d", got, d.Duplicates, d.Gaps)
	}
	for i, s := range got {
		if s != uint64(i) {
			t.Fatalf("accepted out of order: %v", got)
		}
	}
	if a, ok := d.Acked(); !ok || a != 6 {
		t.Fatalf("acked %d %v", a, ok)
	}
	if !d.Accept(9) || d.Gaps != 2 {
		t.Fatalf("a skipped range is not counted: gaps %d", d.Gaps)
	}
	// A gateway that restarted starts from whatever the agent still holds.
	var fresh Dedup
	if !fresh.Accept(120) || fresh.Gaps != 0 || fresh.Accept(119) {
		t.Fatalf("fresh dedup: gaps %d", fresh.Gaps)
	}
}

func TestTimelineFillsSilenceAndKeepsTimes(t *testing.T) {
	tl := Timeline{Channels: 1}
	samples := func(chunks [][][]float32) (n int, nonzero int) {
		for _, c := range chunks {
			for _, v := range c[0] {
				n++
				if v != 0 {
					nonzero++
				}
			}
		}
		return
	}
	one := func(n int) [][]float32 {
		c := make([]float32, n)
		for i := range c {
			c[i] = 0.5
		}
		return [][]float32{c}
	}
	ch, _ := tl.Add(Frame{Kind: KindAudio, Start: 20000, Channels: one(100)})
	if n, nz := samples(ch); n != 20100 || nz != 100 || tl.Pos() != 20100 || len(ch) != 3 {
		t.Fatalf("gap fill: %d samples, %d speech, pos %d, %d chunks", n, nz, tl.Pos(), len(ch))
	}
	// Overlap with what is already on the timeline is dropped, not doubled.
	ch, _ = tl.Add(Frame{Kind: KindAudio, Start: 20050, Channels: one(100)})
	if n, _ := samples(ch); n != 50 || tl.Pos() != 20150 {
		t.Fatalf("overlap: %d samples, pos %d", n, tl.Pos())
	}
	ch, _ = tl.Add(Frame{Kind: KindMark, Start: 30000})
	if n, nz := samples(ch); n != 9850 || nz != 0 {
		t.Fatalf("mark: %d samples", n)
	}
	if _, err := tl.Add(Frame{Kind: KindAudio, Start: 30000, Channels: [][]float32{{1}, {1}}}); err == nil {
		t.Fatal("channel mismatch accepted")
	}
}
