package data

import (
	"slices"
)

// Stats describes a prepared dataset (exp data stats --json).
type Stats struct {
	Corpus           string    `json:"corpus"`
	CorpusSHA256     string    `json:"corpus_sha256"`
	TokenizerModel   string    `json:"tokenizer_model"`
	Cache            string    `json:"cache"`
	Cached           bool      `json:"cache_hit"`
	PrepareSeconds   float64   `json:"prepare_seconds"`
	Objective        Objective `json:"objective"`
	Config           Config    `json:"config"`
	VocabSize        int       `json:"vocab_size"`
	TrainDocuments   int       `json:"train_documents"`
	TrainSentences   int       `json:"train_sentences"`
	TrainTokens      int       `json:"train_tokens"`
	HeldOutDocuments int       `json:"heldout_documents"`
	HeldOutSentences int       `json:"heldout_sentences"`
	HeldOutTokens    int       `json:"heldout_tokens"`
	SkippedSents     int       `json:"skipped_sentences"` // encoded to no token
	ExamplesPerEpoch int64     `json:"examples_per_epoch"`
	EvalChunks       int       `json:"eval_chunks"`

	// Measured on the first SampledExamples examples of epoch 0, seed 0.
	SampledExamples     int     `json:"sampled_examples"`
	ShortTargetFraction float64 `json:"short_target_fraction"` // target length drawn short
	MeanLength          float64 `json:"mean_length"`           // real tokens incl. [CLS]/[SEP]
	PaddingFraction     float64 `json:"padding_fraction"`
	MaskedFraction      float64 `json:"masked_fraction"` // masked / real tokens
	CapBoundFraction    float64 `json:"cap_bound_fraction"`
	// NGramHistogram[n-1] is the fraction of masked n-grams of n words.
	// It leans shorter than p(n) because, as in the official code, an n-gram
	// that would exceed the budget falls back to fewer words and overlapping
	// ones are skipped.
	NGramHistogram []float64 `json:"ngram_histogram"`
	// NGramSampled is the histogram of the n drawn before any fallback.
	NGramSampled []float64 `json:"ngram_sampled"`
	// NGramPaper is p(n) ∝ 1/n, for comparison.
	NGramPaper []float64 `json:"ngram_paper"`
	// Labels is the fraction of label-1 examples for each objective.
	Labels map[Objective]float64 `json:"label1_fraction"`
	// SOPExactSwaps: every checked SOP negative holds exactly the tokens of
	// its positive (same multiset), out of SOPSwapsChecked.
	SOPExactSwaps   bool `json:"sop_exact_swaps"`
	SOPSwapsChecked int  `json:"sop_swaps_checked"`
}

const statsSample = 4096

// Stats returns the dataset's statistics (computed once).
func (d *Dataset) Stats() Stats {
	d.statsOnce.Do(func() { d.stats = d.computeStats() })
	s := d.stats
	s.NGramHistogram = slices.Clone(s.NGramHistogram)
	s.NGramPaper = slices.Clone(s.NGramPaper)
	s.NGramSampled = slices.Clone(s.NGramSampled)
	labels := make(map[Objective]float64, len(s.Labels))
	for k, v := range s.Labels {
		labels[k] = v
	}
	s.Labels = labels
	return s
}

func (d *Dataset) computeStats() Stats {
	s := Stats{
		Corpus: d.info.corpusPath, CorpusSHA256: d.info.corpusSHA, TokenizerModel: d.info.modelPath,
		Cache: d.info.cachePath, Cached: d.info.cached, PrepareSeconds: d.info.seconds,
		Objective: d.obj, Config: d.cfg, VocabSize: d.VocabSize(),
		TrainDocuments: d.train.numDocs(), TrainSentences: d.train.numSents(), TrainTokens: len(d.train.toks),
		HeldOutDocuments: d.heldout.numDocs(), HeldOutSentences: d.heldout.numSents(), HeldOutTokens: len(d.heldout.toks),
		SkippedSents: d.info.skipped, ExamplesPerEpoch: int64(len(d.chunks)), EvalChunks: len(d.evalChunks),
		Labels: map[Objective]float64{},
	}
	n := min(statsSample, len(d.chunks))
	s.SampledExamples = n
	order := d.epochOrder(0, 0)
	hist := make([]float64, d.cfg.NGram)
	sampled := make([]float64, d.cfg.NGram)
	var short, real, maskedTok, capped, ngrams, draws int
	for i := 0; i < n; i++ {
		ex := d.trainExample(0, 0, order, i)
		if ex.short {
			short++
		}
		real += len(ex.tokens)
		maskedTok += len(ex.m.positions)
		if len(ex.m.positions) == d.cfg.MaxPredictions {
			capped++
		}
		for _, g := range ex.m.ngrams {
			hist[g-1]++
			ngrams++
		}
		for _, g := range ex.m.sampled {
			sampled[g-1]++
			draws++
		}
	}
	s.ShortTargetFraction = float64(short) / float64(n)
	s.MeanLength = float64(real) / float64(n)
	s.PaddingFraction = 1 - float64(real)/float64(n*d.cfg.SeqLen)
	s.MaskedFraction = float64(maskedTok) / float64(real)
	s.CapBoundFraction = float64(capped) / float64(n)
	for i := range hist {
		hist[i] /= float64(max(1, ngrams))
		sampled[i] /= float64(max(1, draws))
	}
	s.NGramHistogram, s.NGramSampled = hist, sampled
	z := 0.0
	for k := 1; k <= d.cfg.NGram; k++ {
		z += 1 / float64(k)
	}
	for k := 1; k <= d.cfg.NGram; k++ {
		s.NGramPaper = append(s.NGramPaper, 1/float64(k)/z)
	}
	for _, obj := range []Objective{ObjectiveNone, ObjectiveNSP, ObjectiveSOP} {
		o := d.trainOptions()
		o.obj = obj
		ones := 0
		for i := 0; i < n; i++ {
			c := order[i]
			p := buildPair(&d.train, d.chunks[c], o, newRand(0, streamExample, 0, uint64(c)))
			ones += int(p.label)
		}
		s.Labels[obj] = float64(ones) / float64(n)
	}
	s.SOPExactSwaps, s.SOPSwapsChecked = d.checkSOPSwaps(n)
	return s
}

// checkSOPSwaps builds the first n SOP pairs of epoch 0 forced in order and
// forced swapped from the same generator state and checks that the swapped
// pair is (B, A) of the ordered one. Random-document negatives of the quirk
// are not swaps and are not checked.
func (d *Dataset) checkSOPSwaps(n int) (bool, int) {
	o := d.trainOptions()
	o.obj = ObjectiveSOP
	checked := 0
	for c := 0; c < n; c++ {
		ch := d.chunks[c]
		if o.quirk && ch.s1-ch.s0 == 1 {
			continue
		}
		o.forceSwap = 0
		pos := buildPair(&d.train, ch, o, newRand(0, streamExample, 0, uint64(c)))
		o.forceSwap = 1
		neg := buildPair(&d.train, ch, o, newRand(0, streamExample, 0, uint64(c)))
		if pos.label != 0 || neg.label != 1 || !slices.Equal(pos.a, neg.b) || !slices.Equal(pos.b, neg.a) {
			return false, checked + 1
		}
		checked++
	}
	return true, checked
}
