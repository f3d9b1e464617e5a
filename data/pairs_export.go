package data

// Pair is a sentence pair before masking: the tokens of segments A and B
// (without [CLS] and [SEP]) and the label (0 = in order / true next, 1 =
// swapped / random). Non-neural baselines (data/baseline) train on them.
type Pair struct {
	A, B  []int32
	Label int64
}

// TrainPairs builds one pair for every training chunk (in chunk order) with
// the objective's pair builder and the rule of the held-out sets: a
// single-sentence chunk is split inside its sentence, never given the
// official quirk's random B, so the pairs follow the distribution the eval
// sets are drawn from. Pair i is a pure function of (seed, i).
func (d *Dataset) TrainPairs(obj Objective, seed int64) []Pair {
	o := pairOptions{obj: obj, maxTokens: d.cfg.SeqLen - 3, forceSwap: -1}
	out := make([]Pair, len(d.chunks))
	for i, c := range d.chunks {
		p := buildPair(&d.train, c, o, newRand(seed, streamTrainPairs, 0, uint64(i)))
		out[i] = Pair{A: append([]int32(nil), p.a...), B: append([]int32(nil), p.b...), Label: p.label}
	}
	return out
}

// TrainDocuments returns the tokens of every training document (views of
// the dataset: do not modify).
func (d *Dataset) TrainDocuments() [][]int32 {
	out := make([][]int32, d.train.numDocs())
	for i := range out {
		out[i] = d.train.tokens(d.train.docs[i], d.train.docs[i+1])
	}
	return out
}

// Segments returns the original tokens of example i's segments A and B:
// masked positions restored, [CLS], [SEP] and padding left out.
func (b *Batch) Segments(i int) (a, bSeg []int32) {
	row := b.InputIDs[i*b.SeqLen : (i+1)*b.SeqLen]
	seg := b.SegmentIDs[i*b.SeqLen : (i+1)*b.SeqLen]
	msk := b.InputMask[i*b.SeqLen : (i+1)*b.SeqLen]
	tok := make([]int32, b.SeqLen)
	n, lenA := 0, 0
	for j := range row {
		tok[j] = int32(row[j])
		if msk[j] == 1 {
			n = j + 1
			if seg[j] == 0 {
				lenA = j + 1
			}
		}
	}
	for j := 0; j < b.MaxPred; j++ {
		if b.MaskedWeights[i*b.MaxPred+j] == 1 {
			tok[b.MaskedPositions[i*b.MaxPred+j]] = int32(b.MaskedIDs[i*b.MaxPred+j])
		}
	}
	// [CLS] A [SEP] | B [SEP]
	return tok[1 : lenA-1], tok[lenA : n-1]
}
