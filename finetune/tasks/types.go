// Package tasks reads the downstream data sets of the ALBERT paper in their
// official layouts (GLUE TSVs, SQuAD 1.1/2.0 JSON, RACE one-JSON-per-article)
// from one data root, turns examples into fixed-length features with the
// project's SentencePiece tokenizer as the official ALBERT code does
// (classifier_utils.py, squad_utils.py, race_utils.py), and builds stand-in
// tasks in the same layouts from data reachable offline.
//
// It is plain Go (no torch): the fine-tuning trainer turns Features into
// tensors, and package score turns its outputs into the official metrics.
package tasks

// Kind is what a task's head predicts.
type Kind string

// Task kinds.
const (
	Classification Kind = "classification"  // one label out of Labels (pooled output → linear)
	Regression     Kind = "regression"      // one float (STS-B; pooled output → 1 unit, MSE)
	Span           Kind = "span"            // start/end positions in the context (SQuAD)
	MultipleChoice Kind = "multiple-choice" // one of Choices sequences (RACE; 1 logit per choice)
)

// Split names a file set of a task. GLUE tasks have train and dev (MNLI has
// dev_matched and dev_mismatched instead of dev), SQuAD train and dev, RACE
// train, dev and test (each split holds both the middle and high subsets;
// Example.Subset tells them apart).
type Split string

// Splits.
const (
	Train         Split = "train"
	Dev           Split = "dev"
	DevMatched    Split = "dev_matched"    // MNLI
	DevMismatched Split = "dev_mismatched" // MNLI
	Test          Split = "test"           // RACE only (GLUE and SQuAD test sets have no labels)
)

// Metric names, as stored by the trainer and read by tables. Fractions, not
// percentages.
const (
	MetricAccuracy = "accuracy"
	MetricMCC      = "mcc"      // Matthews correlation (CoLA)
	MetricF1       = "f1"       // binary F1 of class 1 (MRPC, QQP); token F1 for SQuAD
	MetricPearson  = "pearson"  // STS-B
	MetricSpearman = "spearman" // STS-B
	MetricEM       = "em"       // SQuAD exact match
	MetricAccMid   = "accuracy_middle"
	MetricAccHigh  = "accuracy_high"

	// SQuAD 2.0 by kind of question, as evaluate-v2.0.py's HasAns_exact,
	// HasAns_f1 and NoAns_exact (= NoAns_f1) report them; NaN when the split
	// has no question of that kind.
	MetricHasAnsEM = "has_ans_em"
	MetricHasAnsF1 = "has_ans_f1"
	MetricNoAnsAcc = "no_ans_acc" // unanswerable questions answered ""
)

// RACE subsets.
const (
	SubsetMiddle = "middle"
	SubsetHigh   = "high"
)

// Task describes one downstream data set: where its files live under the
// data root, what its head predicts and how it is scored.
type Task struct {
	// Name is the task's name: "MNLI", "SST-2", "SQuAD-1.1", "SQuAD-2.0",
	// "RACE", or "standin-…" for the stand-ins.
	Name string
	Kind Kind
	// Labels are the class names in label-index order (classification), the
	// option letters "A".."D" (multiple choice); nil for regression and span.
	Labels []string
	// Metric is the primary metric (the one the best checkpoint is chosen
	// by); Metrics lists every metric the task reports, Metric first.
	Metric  string
	Metrics []string
	// StandIn marks a task built from offline data in an official layout. A
	// stand-in never fills a paper column.
	StandIn bool
	// PaperColumns maps a metric to the paper-table column key it fills
	// (results/paper: "squad11_f1", "mnli", "sst2", "race", …). Nil for
	// stand-ins and for GLUE tasks that are not in the paper's ablation
	// tables.
	PaperColumns map[string]string
	// Dir is the task's folder relative to the data root: "glue/MNLI",
	// "squad", "RACE"; stand-ins live under "standin/<short name>".
	Dir string
	// Format is the official layout the files are read with: a GLUE task
	// name (its TSV columns), FormatSQuAD or FormatRACE. Stand-ins copy one.
	Format string
	// TrainSplit and EvalSplits are the splits to fine-tune on and to score
	// (MNLI: dev_matched then dev_mismatched; RACE: dev then test).
	TrainSplit Split
	EvalSplits []Split
	// Choices is the number of sequences per example: 4 for multiple choice,
	// 1 otherwise.
	Choices int
	// SQuADVersion is 1 or 2 for span tasks (2: unanswerable questions and a
	// tuned no-answer threshold), 0 otherwise.
	SQuADVersion int
}

// Answer is one gold SQuAD answer.
type Answer struct {
	Text string
	// Start is answer_start as in the JSON: a character (Unicode code point)
	// offset into Example.Context, as Python indexes strings.
	Start int
}

// Example is one raw example as read from the files. Which fields are set
// depends on the task's Kind.
type Example struct {
	// ID is the example's id: the SQuAD question id, "<RACE file id>-<question
	// index>", or "<split>-<row index>" for GLUE rows (the row's own index
	// column where the task has one).
	ID string

	// Classification and regression (GLUE).
	TextA, TextB string  // TextB is "" for single-sentence tasks
	Label        int     // class index into Task.Labels; RACE: the answer's option index; -1 when unlabelled
	Score        float64 // regression target (STS-B similarity 0–5)

	// Span (SQuAD).
	Question     string
	Context      string
	Answers      []Answer // gold answers: the first is the training target; v2 unanswerable: none
	IsImpossible bool     // v2: no answer in the context

	// Multiple choice (RACE). Question is shared with SQuAD's field.
	Article string
	Options []string // 4 options
	Subset  string   // SubsetMiddle or SubsetHigh
}

// Feature is one fixed-length model input made from an Example, ready for
// tensors. A SQuAD example whose context is longer than one window gives
// several Features (one per doc-stride window); every other example gives
// exactly one.
type Feature struct {
	// ExampleIndex is the index of the Example in the slice it was made from.
	ExampleIndex int
	// IDs, Segments and Mask are [choices][seqLen]: token ids (padded with
	// the pad id), segment ids (0 for [CLS] A [SEP], 1 for B [SEP]) and the
	// attention mask (1 real token, 0 padding). One choice except for
	// multiple choice (4).
	IDs, Segments, Mask [][]int64
	// Label is the class index (classification) or the correct choice
	// (multiple choice); Target the regression target (STS-B).
	Label  int
	Target float32

	// Span features (SQuAD) only from here on.

	// Start and End are the gold answer's first and last token positions in
	// the sequence; 0/0 ([CLS]) for an unanswerable question or an answer
	// that does not lie wholly inside this window.
	Start, End int
	// Impossible is true when Start/End point at [CLS]: the question has no
	// answer, or not in this window (squad_utils' span_is_impossible).
	Impossible bool
	// Window is the index of this window among its example's windows
	// (doc_span_index); WindowStart is the index of the window's first
	// context token among all of the context's tokens.
	Window, WindowStart int
	// ContextStart and ContextLen locate the context tokens in the sequence:
	// positions ContextStart … ContextStart+ContextLen-1.
	ContextStart, ContextLen int
	// CharStart and CharEnd give, for each sequence position of a context
	// token, the byte span [CharStart, CharEnd) in Example.Context of the
	// text the token covers; -1 at positions that are not context. Answer
	// extraction maps predicted positions back to original text with them.
	CharStart, CharEnd []int
	// MaxContext is true at a context position when this window is the one
	// that gives that token the most context on both sides
	// (_check_is_max_context): only such start positions are predicted.
	MaxContext []bool
}

// Set is the examples of one split of one task as read from the data root,
// or the absence of its files.
type Set struct {
	Task     Task
	Split    Split
	Examples []Example
	// Path is the file or folder that was read (or looked for).
	Path string
	// Missing names the path that was looked for and is absent; Examples is
	// then empty. An absent task is not an error: callers skip it with this
	// path in their message.
	Missing string
}

// Present reports whether the split's files were found.
func (s Set) Present() bool { return s.Missing == "" }
