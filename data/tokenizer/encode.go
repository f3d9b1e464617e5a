package tokenizer

import "unicode/utf8"

const unkPenalty = 10.0

// Encode normalises s and returns the ids of its best segmentation, as
// spm_encode --output_format=id does. It is safe for concurrent use.
func (m *Model) Encode(s string) []int {
	return m.EncodeNormalized(m.Normalize(s))
}

type bestPath struct {
	id    int32
	start int32 // byte offset where the best piece ending here starts; -1 = unset
	score float32
}

// EncodeNormalized runs SentencePiece's unigram Viterbi (the optimised
// encoder of unigram_model.cc) over already normalised text, with the same
// arithmetic: piece candidates are compared in float64 against float32 path
// scores, unknown-character candidates in float32, ties keep the earliest
// start. Runs of unknown characters merge into one <unk>, as spm_encode does.
func (m *Model) EncodeNormalized(s string) []int {
	if s == "" {
		return nil
	}
	best := make([]bestPath, len(s)+1)
	for i := range best {
		best[i].start = -1
	}
	unkScore := m.minScore - unkPenalty
	for start := 0; start < len(s); {
		till := best[start].score
		_, mblen := utf8.DecodeRuneInString(s[start:])
		hasSingle := false
		m.pieces.prefixes(s[start:], func(length int, id int32) {
			p := &m.Pieces[id]
			if p.Type == Unused {
				return
			}
			var score float64
			if p.Type == UserDefined {
				score = float64(float32(length)*m.maxScore) - 0.1
			} else {
				score = float64(p.Score)
			}
			cand := score + float64(till)
			t := &best[start+length]
			if t.start == -1 || cand > float64(t.score) {
				*t = bestPath{id: id, start: int32(start), score: float32(cand)}
			}
			if length == mblen {
				hasSingle = true
			}
		})
		if !hasSingle {
			cand := unkScore + till
			t := &best[start+mblen]
			if t.start == -1 || cand > t.score {
				*t = bestPath{id: int32(m.unkID), start: int32(start), score: cand}
			}
		}
		start += mblen
	}
	n := 0
	for end := len(s); end > 0; end = int(best[end].start) {
		n++
	}
	ids := make([]int, n)
	for end := len(s); end > 0; end = int(best[end].start) {
		n--
		ids[n] = int(best[end].id)
	}
	out := ids[:0]
	for _, id := range ids {
		if id == m.unkID && len(out) > 0 && out[len(out)-1] == m.unkID {
			continue
		}
		out = append(out, id)
	}
	return out
}
