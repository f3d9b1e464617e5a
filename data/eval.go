package data

import "fmt"

// EvalSets are the fixed held-out evaluation sets for intrinsic accuracy
// (paper Table 5). Every batch carries MLM masking and a sentence label, so
// any model, whatever it was trained on, is scored on all three:
//   - MLM: pairs in their original order (label 0), masked;
//   - NSP: 50% of B segments from another held-out document (label 1);
//   - SOP: 50% of pairs swapped (label 1).
//
// They are built only from held-out documents, with a fixed seed and the
// clean single-sentence rule (never the official quirk), so they are the same
// for every run that shares corpus, tokenizer, seq_len, masking settings and
// eval_examples. The last batch of a set may be smaller than batchSize.
//
// Every batch carries NegativeKinds: for an NSP negative, whether its random
// B segment comes from a document of the same source as the chunk's (the
// corpus's sources file, corpus.SourcesPath) or of another; NegNone for every
// other example.
type EvalSets struct {
	MLM, NSP, SOP []Batch
}

// evalSeed fixes the eval sets.
const evalSeed = 20200101

// EvalSets builds the three evaluation sets in batches of batchSize.
// Example i of a set uses held-out chunk i (chunks repeat, with fresh pairs
// and masks, when eval_examples exceeds their number).
func (d *Dataset) EvalSets(batchSize int) (EvalSets, error) {
	if batchSize < 1 {
		return EvalSets{}, fmt.Errorf("data: eval batch size %d: want at least 1", batchSize)
	}
	var es EvalSets
	es.MLM = d.evalSet(ObjectiveNone, streamEvalMLM, batchSize)
	es.NSP = d.evalSet(ObjectiveNSP, streamEvalNSP, batchSize)
	es.SOP = d.evalSet(ObjectiveSOP, streamEvalSOP, batchSize)
	return es, nil
}

func (d *Dataset) evalExamples(obj Objective, stream uint64) []example {
	order := newRand(evalSeed, streamOrder, 0, 0).Perm(len(d.evalChunks))
	o := pairOptions{obj: obj, maxTokens: d.cfg.SeqLen - 3, forceSwap: -1}
	out := make([]example, d.cfg.EvalExamples)
	for i := range out {
		c := order[i%len(order)]
		r := newRand(evalSeed, stream, uint64(i/len(order)), uint64(c))
		out[i] = d.makeExample(&d.heldout, d.evalChunks[c], o, r)
	}
	return out
}

func (d *Dataset) evalSet(obj Objective, stream uint64, batchSize int) []Batch {
	exs := d.evalExamples(obj, stream)
	var out []Batch
	for lo := 0; lo < len(exs); lo += batchSize {
		hi := min(lo+batchSize, len(exs))
		b := newBatch(hi-lo, d.cfg.SeqLen, d.cfg.MaxPredictions)
		b.NegativeKinds = make([]int8, hi-lo)
		for i := lo; i < hi; i++ {
			b.put(i-lo, exs[i])
			b.NegativeKinds[i-lo] = d.negativeKind(exs[i])
		}
		out = append(out, b)
	}
	return out
}

// negativeKind classifies a held-out example's random B segment by source
// (Batch.NegativeKinds).
func (d *Dataset) negativeKind(ex example) int8 {
	switch {
	case ex.label != 1 || ex.other < 0:
		return NegNone
	case d.heldSources == nil:
		return NegUnknownSource
	case d.heldSources[ex.doc] == d.heldSources[ex.other]:
		return NegSameSource
	default:
		return NegOtherSource
	}
}
