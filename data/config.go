package data

import (
	"fmt"
	"math"
)

// Objective is the sentence-level pretraining objective.
type Objective string

// The three sentence objectives of the paper's Table 5.
const (
	ObjectiveNone Objective = "none" // MLM only; pairs keep their order, label 0
	ObjectiveNSP  Objective = "nsp"  // next-sentence prediction (BERT)
	ObjectiveSOP  Objective = "sop"  // sentence-order prediction (ALBERT)
)

// Valid reports whether o is one of the three objectives.
func (o Objective) Valid() bool {
	return o == ObjectiveNone || o == ObjectiveNSP || o == ObjectiveSOP
}

// Config describes the pretraining data. Defaults follow the official
// create_pretraining_data.py / run_pretraining.py where they exist.
type Config struct {
	// Corpus is "default" (the built-in SOTU + Moby-Dick corpus made by
	// `exp data fetch`) or a path to a file with one sentence per line and a
	// blank line between documents.
	Corpus string `toml:"corpus" json:"corpus"`
	// VocabSize is the SentencePiece vocabulary size asked of spm_train
	// (30000 in the paper). Small corpora may get a smaller vocabulary.
	VocabSize int `toml:"vocab_size" json:"vocab_size"`
	// SeqLen is max_seq_length.
	SeqLen int `toml:"seq_len" json:"seq_len"`
	// MaxPredictions is max_predictions_per_seq, the cap on masked tokens.
	MaxPredictions int `toml:"max_predictions" json:"max_predictions"`
	// MaskProb is masked_lm_prob.
	MaskProb float64 `toml:"mask_prob" json:"mask_prob"`
	// NGram is the longest masked n-gram in whole words; p(n) ∝ 1/n.
	NGram int `toml:"ngram" json:"ngram"`
	// ShortSeqProb is the probability that an example's target length is
	// drawn uniformly from [2, SeqLen-3] instead of SeqLen-3.
	ShortSeqProb float64 `toml:"short_seq_prob" json:"short_seq_prob"`
	// DupeFactor 0 masks dynamically (fresh pairs and masks every epoch);
	// k > 0 is static masking as the official dupe_factor: epoch e reuses
	// the construction of epoch e mod k, so there are k variants in all.
	DupeFactor int `toml:"dupe_factor" json:"dupe_factor"`
	// SOPRandomNegatives turns on the official quirk: a chunk of a single
	// sentence gets a random-document B with label 1, in SOP mode too. Off,
	// such a chunk is split inside the sentence and follows the objective.
	SOPRandomNegatives bool `toml:"sop_random_negatives" json:"sop_random_negatives"`
	// HeldOutDocs is the number of documents held out for evaluation (a
	// count, not a fraction). They are chosen by content hash, so the choice
	// does not depend on document order, and never appear in training.
	HeldOutDocs int `toml:"heldout_docs" json:"heldout_docs"`
	// EvalExamples is the size of each fixed evaluation set (MLM, NSP, SOP).
	EvalExamples int `toml:"eval_examples" json:"eval_examples"`
}

// DefaultConfig returns the paper / official-code settings on the default
// corpus: 30k vocabulary, 512 tokens, 20 predictions, 15%, 3-grams, 10%
// short sequences, and static masking with 40 copies as dupe_factor=40.
func DefaultConfig() Config {
	return Config{
		Corpus:         "default",
		VocabSize:      30000,
		SeqLen:         512,
		MaxPredictions: 20,
		MaskProb:       0.15,
		NGram:          3,
		ShortSeqProb:   0.1,
		DupeFactor:     40,
		HeldOutDocs:    24,
		EvalExamples:   1024,
	}
}

// Validate checks every field and names the first bad one.
func (c Config) Validate() error {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("data: %s = %v: %s", field, v, why)
	}
	switch {
	case c.Corpus == "":
		return bad("corpus", `""`, `want "default" or a file path`)
	case c.VocabSize < 100 || c.VocabSize > 1<<20:
		return bad("vocab_size", c.VocabSize, "want 100..1048576")
	case c.SeqLen < 8 || c.SeqLen > 1<<16:
		return bad("seq_len", c.SeqLen, "want 8..65536")
	case c.MaxPredictions < 1 || c.MaxPredictions > c.SeqLen:
		return bad("max_predictions", c.MaxPredictions, fmt.Sprintf("want 1..seq_len (%d)", c.SeqLen))
	case math.IsNaN(c.MaskProb) || c.MaskProb <= 0 || c.MaskProb >= 1:
		return bad("mask_prob", c.MaskProb, "want 0 < mask_prob < 1")
	case c.NGram < 1 || c.NGram > 10:
		return bad("ngram", c.NGram, "want 1..10")
	case math.IsNaN(c.ShortSeqProb) || c.ShortSeqProb < 0 || c.ShortSeqProb > 1:
		return bad("short_seq_prob", c.ShortSeqProb, "want 0..1")
	case c.DupeFactor < 0:
		return bad("dupe_factor", c.DupeFactor, "want 0 (dynamic masking) or a positive copy count")
	case c.HeldOutDocs < 2:
		return bad("heldout_docs", c.HeldOutDocs, "want at least 2 (the NSP eval set draws negatives from another held-out document)")
	case c.EvalExamples < 1:
		return bad("eval_examples", c.EvalExamples, "want at least 1")
	}
	return nil
}
