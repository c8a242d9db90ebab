package textdiff

import "fmt"

// OpKind is one step of an alignment.
type OpKind string

const (
	OpEqual      OpKind = "equal"      // ref word kept as is
	OpSubstitute OpKind = "substitute" // ref word replaced by a hyp word
	OpInsert     OpKind = "insert"     // hyp word with no ref word
	OpDelete     OpKind = "delete"     // ref word with no hyp word
)

// Op is one alignment step. Ref and Hyp index the word slices; the side an operation does
// not touch is -1 (Ref for an insertion, Hyp for a deletion).
type Op struct {
	Kind OpKind `json:"op"`
	Ref  int    `json:"ref"`
	Hyp  int    `json:"hyp"`
}

// Alignment is a minimum-cost word alignment of Hyp against Ref, in order. It carries
// the words so that it can be stored as JSON and rendered later without the source text.
type Alignment struct {
	Ref []string `json:"ref"`
	Hyp []string `json:"hyp"`
	Ops []Op     `json:"ops"`
}

// Counts returns the number of operations of each kind.
func (a Alignment) Counts() (equal, substitutions, deletions, insertions int) {
	for _, op := range a.Ops {
		switch op.Kind {
		case OpEqual:
			equal++
		case OpSubstitute:
			substitutions++
		case OpDelete:
			deletions++
		case OpInsert:
			insertions++
		}
	}
	return
}

// Cost is the edit distance the alignment realises: substitutions + deletions + insertions.
func (a Alignment) Cost() int {
	_, s, d, i := a.Counts()
	return s + d + i
}

// Apply rebuilds the hypothesis from Ref by following Ops. It returns an error when the
// operations are inconsistent with the words (used to check stored alignments).
func (a Alignment) Apply() ([]string, error) {
	out := make([]string, 0, len(a.Hyp))
	nextRef, nextHyp := 0, 0
	for k, op := range a.Ops {
		switch op.Kind {
		case OpEqual, OpSubstitute:
			if op.Ref != nextRef || op.Hyp != nextHyp || op.Ref >= len(a.Ref) || op.Hyp >= len(a.Hyp) {
				return nil, fmt.Errorf("op %d (%s ref %d hyp %d) out of order", k, op.Kind, op.Ref, op.Hyp)
			}
			if (op.Kind == OpEqual) != (a.Ref[op.Ref] == a.Hyp[op.Hyp]) {
				return nil, fmt.Errorf("op %d is %s but words are %q and %q", k, op.Kind, a.Ref[op.Ref], a.Hyp[op.Hyp])
			}
			if op.Kind == OpEqual {
				out = append(out, a.Ref[op.Ref])
			} else {
				out = append(out, a.Hyp[op.Hyp])
			}
			nextRef++
			nextHyp++
		case OpDelete:
			if op.Ref != nextRef || op.Hyp != -1 || op.Ref >= len(a.Ref) {
				return nil, fmt.Errorf("op %d (delete ref %d) out of order", k, op.Ref)
			}
			nextRef++
		case OpInsert:
			if op.Hyp != nextHyp || op.Ref != -1 || op.Hyp >= len(a.Hyp) {
				return nil, fmt.Errorf("op %d (insert hyp %d) out of order", k, op.Hyp)
			}
			out = append(out, a.Hyp[op.Hyp])
			nextHyp++
		default:
			return nil, fmt.Errorf("op %d has unknown kind %q", k, op.Kind)
		}
	}
	if nextRef != len(a.Ref) || nextHyp != len(a.Hyp) {
		return nil, fmt.Errorf("ops cover %d/%d ref and %d/%d hyp words", nextRef, len(a.Ref), nextHyp, len(a.Hyp))
	}
	return out, nil
}

// FullTableCells is the largest sub-problem (ref+1)×(hyp+1) solved with a full table of
// back-pointers (one byte per cell, so 1 MiB). Larger ones are split by Hirschberg's method.
const FullTableCells = 1 << 20

// Align returns a minimum-cost alignment of hyp against ref. Ties prefer a substitution
// over a deletion over an insertion, so identical inputs give a stable result.
func Align(ref, hyp []string) Alignment {
	a, b := intern(ref, hyp)
	al := aligner{a: a, b: b, ops: make([]Op, 0, max(len(a), len(b)))}
	// A common prefix and suffix are always part of some optimal alignment.
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	for i := range pre {
		al.ops = append(al.ops, Op{OpEqual, i, i})
	}
	al.solve(pre, len(a)-suf, pre, len(b)-suf)
	for k := suf; k > 0; k-- {
		al.ops = append(al.ops, Op{OpEqual, len(a) - k, len(b) - k})
	}
	return Alignment{Ref: ref, Hyp: hyp, Ops: al.ops}
}

// Distance is the word-level Levenshtein distance between ref and hyp.
func Distance(ref, hyp []string) int { return Align(ref, hyp).Cost() }

// intern maps words to small integers so the inner loops compare ints, not strings.
func intern(ref, hyp []string) ([]int32, []int32) {
	ids := make(map[string]int32, len(ref))
	conv := func(ws []string) []int32 {
		out := make([]int32, len(ws))
		for i, w := range ws {
			id, ok := ids[w]
			if !ok {
				id = int32(len(ids))
				ids[w] = id
			}
			out[i] = id
		}
		return out
	}
	return conv(ref), conv(hyp)
}

type aligner struct {
	a, b []int32
	ops  []Op
	// scratch rows reused by the Hirschberg passes.
	fwd, bwd, tmp []int32
}

// solve appends the operations aligning a[i0:i1] with b[j0:j1].
func (al *aligner) solve(i0, i1, j0, j1 int) {
	n, m := i1-i0, j1-j0
	switch {
	case n == 0:
		for j := j0; j < j1; j++ {
			al.ops = append(al.ops, Op{OpInsert, -1, j})
		}
		return
	case m == 0:
		for i := i0; i < i1; i++ {
			al.ops = append(al.ops, Op{OpDelete, i, -1})
		}
		return
	case (n+1)*(m+1) <= FullTableCells || n == 1:
		al.table(i0, i1, j0, j1)
		return
	}
	mid := i0 + n/2
	fwd := al.forward(i0, mid, j0, j1)
	bwd := al.backward(mid, i1, j0, j1)
	// fwd[k]: cost of a[i0:mid] vs b[j0:j0+k]; bwd[k]: cost of a[mid:i1] vs b[j0+k:j1].
	best, split := int32(-1), 0
	for k := 0; k <= m; k++ {
		if c := fwd[k] + bwd[k]; best < 0 || c < best {
			best, split = c, k
		}
	}
	al.solve(i0, mid, j0, j0+split)
	al.solve(mid, i1, j0+split, j1)
}

func (al *aligner) row(buf *[]int32, n int) []int32 {
	if cap(*buf) < n {
		*buf = make([]int32, n)
	}
	return (*buf)[:n]
}

// forward returns the last DP row for a[i0:i1] against every prefix of b[j0:j1].
func (al *aligner) forward(i0, i1, j0, j1 int) []int32 {
	m := j1 - j0
	prev := al.row(&al.fwd, m+1)
	cur := al.row(&al.tmp, m+1)
	for j := range prev {
		prev[j] = int32(j)
	}
	b := al.b[j0:j1]
	for i := i0; i < i1; i++ {
		forwardRow(prev, cur, b, al.a[i])
		prev, cur = cur, prev
	}
	// Keep the result in al.fwd's storage for the caller; the other buffer is scratch.
	al.fwd, al.tmp = prev, cur
	return prev
}

// backward returns, for each k, the cost of a[i0:i1] against b[j0+k:j1].
func (al *aligner) backward(i0, i1, j0, j1 int) []int32 {
	m := j1 - j0
	prev := al.row(&al.bwd, m+1)
	cur := al.row(&al.tmp, m+1)
	for k := 0; k <= m; k++ {
		prev[k] = int32(m - k)
	}
	b := al.b[j0:j1]
	for i := i1 - 1; i >= i0; i-- {
		backwardRow(prev, cur, b, al.a[i])
		prev, cur = cur, prev
	}
	al.bwd, al.tmp = prev, cur
	return prev
}

// forwardRow computes DP row cur from row prev for one ref word ai against b.
// prev and cur have len(b)+1 entries; the loop is written to avoid bounds checks.
func forwardRow(prev, cur []int32, b []int32, ai int32) {
	left, diag := prev[0]+1, prev[0]
	cur[0] = left
	up, out := prev[1:len(b)+1], cur[1:len(b)+1]
	for j, bj := range b {
		c := diag
		if bj != ai {
			c++
		}
		u := up[j]
		c = min(c, u+1, left+1)
		out[j] = c
		left, diag = c, u
	}
}

// backwardRow is forwardRow for the reversed problem: entry k is the cost against b[k:].
func backwardRow(prev, cur []int32, b []int32, ai int32) {
	m := len(b)
	right, diag := prev[m]+1, prev[m]
	cur[m] = right
	for k := m - 1; k >= 0; k-- {
		c := diag
		if b[k] != ai {
			c++
		}
		u := prev[k]
		c = min(c, u+1, right+1)
		cur[k] = c
		right, diag = c, u
	}
}

const (
	stepDiag byte = iota
	stepUp        // deletion: consume a ref word
	stepLeft      // insertion: consume a hyp word
)

// table solves a[i0:i1] vs b[j0:j1] with a full back-pointer table.
func (al *aligner) table(i0, i1, j0, j1 int) {
	n, m := i1-i0, j1-j0
	steps := make([]byte, (n+1)*(m+1))
	prev := make([]int32, m+1)
	cur := make([]int32, m+1)
	for j := 0; j <= m; j++ {
		prev[j] = int32(j)
		steps[j] = stepLeft
	}
	for i := 1; i <= n; i++ {
		cur[0] = int32(i)
		steps[i*(m+1)] = stepUp
		ai := al.a[i0+i-1]
		for j := 1; j <= m; j++ {
			c, s := prev[j-1], stepDiag
			if al.b[j0+j-1] != ai {
				c++
			}
			if d := prev[j] + 1; d < c {
				c, s = d, stepUp
			}
			if ins := cur[j-1] + 1; ins < c {
				c, s = ins, stepLeft
			}
			cur[j] = c
			steps[i*(m+1)+j] = s
		}
		prev, cur = cur, prev
	}
	// Walk back from the corner, then append in forward order.
	start := len(al.ops)
	i, j := n, m
	for i > 0 || j > 0 {
		switch steps[i*(m+1)+j] {
		case stepDiag:
			kind := OpEqual
			if al.a[i0+i-1] != al.b[j0+j-1] {
				kind = OpSubstitute
			}
			al.ops = append(al.ops, Op{kind, i0 + i - 1, j0 + j - 1})
			i--
			j--
		case stepUp:
			al.ops = append(al.ops, Op{OpDelete, i0 + i - 1, -1})
			i--
		default:
			al.ops = append(al.ops, Op{OpInsert, -1, j0 + j - 1})
			j--
		}
	}
	for l, r := start, len(al.ops)-1; l < r; l, r = l+1, r-1 {
		al.ops[l], al.ops[r] = al.ops[r], al.ops[l]
	}
}
