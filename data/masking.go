package data

import (
	"math"
	"math/rand/v2"
	"slices"
)

// masked is the MLM side of one example.
type masked struct {
	positions []int32 // sorted
	labels    []int32 // original ids
	ngrams    []int8  // word count of each accepted n-gram (stats)
	sampled   []int8  // n drawn for each visited word start, before fallback (stats)
}

// maskTokens applies whole-word n-gram masking in place (the official
// create_masked_lm_predictions, reproducible from r):
//   - words are runs of pieces starting at a start piece; [CLS]/[SEP] are
//     never candidates and end the current word;
//   - num_to_predict = min(maxPred, max(1, round(len·maskProb)));
//   - word starts are visited in random order; each draws n ≤ ngram words
//     with p(n) ∝ 1/n (over the n that fit before the sequence end), falls
//     back to shorter n-grams if the budget would be exceeded, and is skipped
//     if it still does not fit or overlaps an earlier choice;
//   - each chosen token: 80% [MASK], 10% unchanged, 10% a random piece.
func (d *Dataset) maskTokens(tokens []int32, r *rand.Rand) masked {
	cfg := d.cfg
	// Whole-word candidates: words[i] = [start, end).
	words := make([][2]int32, 0, len(tokens))
	inWord := false
	for i, t := range tokens {
		if t == d.cls || t == d.sep {
			inWord = false
			continue
		}
		if inWord && !d.wordStart[t] {
			words[len(words)-1][1] = int32(i + 1)
			continue
		}
		words = append(words, [2]int32{int32(i), int32(i + 1)})
		inWord = true
	}
	numToPredict := min(cfg.MaxPredictions, max(1, int(math.RoundToEven(float64(len(tokens))*cfg.MaskProb))))
	var m masked
	if len(words) == 0 {
		return m
	}
	// Cumulative 1/n weights.
	cum := make([]float64, cfg.NGram)
	acc := 0.0
	for n := 1; n <= cfg.NGram; n++ {
		acc += 1 / float64(n)
		cum[n-1] = acc
	}
	order := make([]int32, len(words))
	for i := range order {
		order[i] = int32(i)
	}
	r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	covered := make(map[int32]bool, numToPredict)
	count := 0
	for _, w := range order {
		if count >= numToPredict {
			break
		}
		maxN := min(cfg.NGram, len(words)-int(w))
		x := r.Float64() * cum[maxN-1]
		n := 1
		for n < maxN && x >= cum[n-1] {
			n++
		}
		m.sampled = append(m.sampled, int8(n))
		// The n-gram's tokens: its words' pieces, never a [SEP] between them.
		size := func(n int) int { return wordsLen(words[w : int(w)+n]) }
		for count+size(n) > numToPredict && n > 1 {
			n--
		}
		if count+size(n) > numToPredict {
			continue
		}
		overlap := false
		for _, wd := range words[w : int(w)+n] {
			for i := wd[0]; i < wd[1]; i++ {
				overlap = overlap || covered[i]
			}
		}
		if overlap {
			continue
		}
		for _, wd := range words[w : int(w)+n] {
			for i := wd[0]; i < wd[1]; i++ {
				covered[i] = true
				m.positions = append(m.positions, i)
				m.labels = append(m.labels, tokens[i])
				if r.Float64() < 0.8 {
					tokens[i] = d.mask
				} else if r.Float64() >= 0.5 {
					tokens[i] = d.randomIDs[r.IntN(len(d.randomIDs))]
				}
			}
		}
		count += size(n)
		m.ngrams = append(m.ngrams, int8(n))
	}
	// Sort by position, labels alongside.
	idx := make([]int, len(m.positions))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return int(m.positions[a] - m.positions[b]) })
	pos, lab := make([]int32, len(idx)), make([]int32, len(idx))
	for i, j := range idx {
		pos[i], lab[i] = m.positions[j], m.labels[j]
	}
	m.positions, m.labels = pos, lab
	return m
}

// wordsLen is the number of pieces in words.
func wordsLen(words [][2]int32) int {
	n := 0
	for _, w := range words {
		n += int(w[1] - w[0])
	}
	return n
}
