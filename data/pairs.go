package data

import (
	"math/rand/v2"
)

// chunk is a run of whole sentences of one document (create_instances_from_
// document steps 1–2): sentences [s0, s1) of document doc, gathered until
// their length reached target.
type chunk struct {
	doc, s0, s1 int32
	target      int32
	short       bool // target was drawn short (probability short_seq_prob)
}

// buildChunks plans the chunks of every document with a fixed seed. Unlike
// the official code, which draws target_seq_length once per document, the
// target is drawn for every chunk, so that short_seq_prob is the fraction of
// short examples the paper describes ("inputs shorter than 512 with
// probability 10%"). Chunks of fewer than 2 tokens are dropped.
func buildChunks(sp *split, cfg Config, seed uint64) []chunk {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	maxNum := cfg.SeqLen - 3
	var out []chunk
	for d := 0; d < sp.numDocs(); d++ {
		first, end := sp.docs[d], sp.docs[d+1]
		for s := first; s < end; {
			target, short := maxNum, false
			if r.Float64() < cfg.ShortSeqProb {
				target, short = 2+r.IntN(maxNum-1), true
			}
			e, length := s, 0
			for e < end && length < target {
				length += sp.sentRangeLen(e, e+1)
				e++
			}
			if length >= 2 {
				out = append(out, chunk{doc: int32(d), s0: s, s1: e, target: int32(target), short: short})
			}
			s = e
		}
	}
	return out
}

// pair is one sentence pair before masking.
type pair struct {
	a, b  []int32
	label int64 // 0 = in order / true next, 1 = swapped (SOP) / random (NSP)
	other int32 // the document B was drawn from (randomSegment); -1 when B is the chunk's own
}

// pairOptions controls buildPair.
type pairOptions struct {
	obj       Objective
	quirk     bool // official single-sentence random negatives
	maxTokens int  // max_seq_length - 3
	forceSwap int  // SOP only: -1 draw, 0 never, 1 always (stats checks)
}

// buildPair makes the A/B pair of a chunk (create_instances_from_document
// steps 3–5) with randomness from r:
//   - a chunk of several sentences splits at a random sentence boundary;
//   - a single-sentence chunk either takes a random-document B with label 1
//     (quirk on, NSP/SOP: the official behaviour) or splits inside the
//     sentence at a random token and then follows the objective;
//   - NSP: with probability 0.5 B is replaced by a segment of another
//     document, from a random sentence on, filled to the chunk's target;
//   - both sides are truncated (longer side first, random end) to maxTokens;
//   - SOP: with probability 0.5 A and B are swapped, after truncation, so a
//     negative holds exactly the tokens of its positive.
//
// The returned slices may alias the split; callers copy them.
func buildPair(sp *split, c chunk, o pairOptions, r *rand.Rand) pair {
	p := pair{other: -1}
	n := c.s1 - c.s0
	randomNext := false
	switch {
	case n >= 2:
		aEnd := c.s0 + 1 + int32(r.IntN(int(n-1)))
		p.a, p.b = sp.tokens(c.s0, aEnd), sp.tokens(aEnd, c.s1)
	case o.quirk && o.obj != ObjectiveNone:
		p.a = sp.tokens(c.s0, c.s1)
		randomNext = true
	default:
		t := sp.tokens(c.s0, c.s1)
		k := 1 + r.IntN(len(t)-1)
		p.a, p.b = t[:k], t[k:]
	}
	if randomNext || (o.obj == ObjectiveNSP && r.Float64() < 0.5) {
		p.b, p.other = randomSegment(sp, int(c.doc), int(c.target)-len(p.a), r)
		p.label = 1
	}
	swap := false
	if o.obj == ObjectiveSOP && !randomNext {
		swap = r.Float64() < 0.5
		if o.forceSwap >= 0 {
			swap = o.forceSwap == 1
		}
	}
	p.a, p.b = truncatePair(p.a, p.b, o.maxTokens, r)
	if swap {
		p.a, p.b, p.label = p.b, p.a, 1
	}
	return p
}

// randomSegment returns tokens of a document other than doc, from a random
// sentence on, until at least targetB tokens (one sentence at least), and
// that document's index.
func randomSegment(sp *split, doc, targetB int, r *rand.Rand) ([]int32, int32) {
	other := r.IntN(sp.numDocs() - 1)
	if other >= doc {
		other++
	}
	first, end := sp.docs[other], sp.docs[other+1]
	s := first + int32(r.IntN(int(end-first)))
	e, length := s, 0
	for e < end {
		length += sp.sentRangeLen(e, e+1)
		e++
		if length >= targetB {
			break
		}
	}
	return sp.tokens(s, e), int32(other)
}

// truncatePair is truncate_seq_pair: while too long, drop a token from the
// longer side (B on ties), from the front or the back at random.
func truncatePair(a, b []int32, maxTokens int, r *rand.Rand) ([]int32, []int32) {
	for len(a)+len(b) > maxTokens {
		t := &b
		if len(a) > len(b) {
			t = &a
		}
		if r.Float64() < 0.5 {
			*t = (*t)[1:]
		} else {
			*t = (*t)[:len(*t)-1]
		}
	}
	return a, b
}
