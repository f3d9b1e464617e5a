package finetune

import (
	"fmt"
	"sort"
	"strings"

	"github.com/reproml/albert/train"
)

// Config is the fine-tuning of one pretrained model on one task: what
// run_classifier.py / run_squad_v*.py / run_race.py take as flags. The
// optimizer is the official one (optimization.py): AdamW without bias
// correction, β 0.9/0.999, ε 1e-6, weight decay 0.01 except on LayerNorm and
// bias, linear warm-up then linear decay to 0, global-norm clip 1.0.
type Config struct {
	LR                float64 `toml:"lr" json:"lr"`                                 // peak learning rate
	BatchSize         int     `toml:"batch_size" json:"batch_size"`                 // examples per step (RACE: questions, 4 sequences each)
	Steps             int     `toml:"steps" json:"steps"`                           // optimizer steps
	WarmupSteps       int     `toml:"warmup_steps" json:"warmup_steps"`             // linear warm-up
	EncoderDropout    float64 `toml:"encoder_dropout" json:"encoder_dropout"`       // dropout inside the encoder ("ALBERT DR" of Table 14)
	ClassifierDropout float64 `toml:"classifier_dropout" json:"classifier_dropout"` // dropout on the pooled output before the head
	MaxSeqLen         int     `toml:"max_seq_len" json:"max_seq_len"`               // tokens per sequence
	DocStride         int     `toml:"doc_stride" json:"doc_stride"`                 // SQuAD: window stride over long contexts
	MaxQueryLen       int     `toml:"max_query_len" json:"max_query_len"`           // SQuAD: question tokens kept
	MaxAnswerLen      int     `toml:"max_answer_len" json:"max_answer_len"`         // SQuAD: longest predicted answer, in tokens
	MaxQALen          int     `toml:"max_qa_len" json:"max_qa_len"`                 // RACE: question+option tokens kept (the last ones)
	EvalEvery         int     `toml:"eval_every" json:"eval_every"`                 // steps between dev evaluations (and checkpoints); 0 = only at the end
	EvalExamples      int     `toml:"eval_examples" json:"eval_examples"`           // dev examples scored per evaluation, the first N of each split; 0 = all
	TrainExamples     int     `toml:"train_examples" json:"train_examples"`         // training examples used, the first N; 0 = all
	WeightDecay       float64 `toml:"weight_decay" json:"weight_decay"`             // 0.01
	ClipNorm          float64 `toml:"clip_norm" json:"clip_norm"`                   // 1.0
	// BiasCorrection divides AdamW's moments by 1−β^t (PyTorch's AdamW, the
	// LAMB paper). The official optimizer does not (off, the default and the
	// paper profile): its second moment starts at 0, so for the first
	// ~1/(1−β2) = 1000 steps an update is larger than the learning rate
	// says — about 3× at step 100 and 2× at step 300, the whole of a short
	// CPU fine-tuning. Omitted from the JSON when off, so configurations
	// from before it keep their hashes.
	BiasCorrection bool `toml:"bias_correction" json:"bias_correction,omitempty"`
	// Pooling is what the classification, regression and multiple-choice
	// heads read: "" or "cls", the pooler's output on [CLS] (the official
	// head, the default); "mean", the last layer's states averaged over real
	// tokens, the pooler unused — a study option (ablations/studies/
	// finetune-cpu.toml: a weakly pretrained model's pooled output can carry
	// less of a task than its token states). Omitted from the JSON when
	// official, so configurations from before it keep their hashes.
	Pooling string `toml:"pooling" json:"pooling,omitempty"`
}

// Pooling values: PoolCLS (stored as "") and PoolMean.
const (
	PoolCLS  = "cls"
	PoolMean = "mean"
)

// Profiles lists the fine-tuning profiles: "paper" (appendix Table 14) and
// "cpu" (two cores).
var Profiles = []string{"paper", "cpu"}

// paperRow is one row of the paper's Table 14 (v6 appendix A.4).
type paperRow struct {
	lr       float64
	batch    int
	dropout  float64 // "ALBERT DR"
	steps    int
	warmup   int
	maxSeq   int
	standsIn string // the paper task whose row a stand-in of this name uses
}

// table14 holds the paper's hyperparameters by task name (the names of
// package tasks). Classifier dropout is 0.1 everywhere.
var table14 = map[string]paperRow{
	"CoLA":      {1e-5, 16, 0, 5336, 320, 512, ""},
	"STS-B":     {2e-5, 16, 0, 3598, 214, 512, ""},
	"SST-2":     {1e-5, 32, 0, 20935, 1256, 512, ""},
	"MNLI":      {3e-5, 128, 0, 10000, 1000, 512, ""},
	"QNLI":      {1e-5, 32, 0, 33112, 1986, 512, ""},
	"QQP":       {5e-5, 128, 0.1, 14000, 1000, 512, ""},
	"RTE":       {3e-5, 32, 0.1, 800, 200, 512, ""},
	"MRPC":      {2e-5, 32, 0, 800, 200, 512, ""},
	"WNLI":      {2e-5, 16, 0.1, 2000, 250, 512, ""},
	"SQuAD-1.1": {5e-5, 48, 0, 3649, 365, 384, ""},
	"SQuAD-2.0": {3e-5, 48, 0, 8144, 814, 512, ""},
	"RACE":      {2e-5, 32, 0.1, 12000, 1000, 512, ""},
}

// PaperTasks lists the task names Table 14 has a row for, sorted.
func PaperTasks() []string {
	var out []string
	for k := range table14 {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Profile returns the fine-tuning configuration of task under profile.
// kind is the task's head ("classification", "regression", "span",
// "multiple-choice"): a stand-in, which has no Table 14 row, takes the row
// of the paper task of its kind (SST-2 for classification, RACE for
// multiple choice, SQuAD 1.1 for span, STS-B for regression).
//
// The cpu profile keeps the paper's classifier dropout and optimizer but
// fits two cores: sequences of 128 tokens, batch 16, 300 steps with 30 of
// warm-up, a dev evaluation every 100 steps on the first 500 examples, and
// a learning rate of 1e-4 — the tiny CPU-profile encoders (H 128) are not
// the paper's base models, and at 300 steps the paper's 1e-5…5e-5 barely
// moves them.
func Profile(profile, task, kind string) (Config, error) {
	row, ok := table14[task]
	if !ok {
		byKind := map[string]string{"classification": "SST-2", "regression": "STS-B", "span": "SQuAD-1.1", "multiple-choice": "RACE"}
		name, known := byKind[kind]
		if !known {
			return Config{}, fmt.Errorf("finetune: task %q: no Table 14 row and unknown kind %q", task, kind)
		}
		row = table14[name]
	}
	c := Config{
		LR: row.lr, BatchSize: row.batch, Steps: row.steps, WarmupSteps: row.warmup,
		EncoderDropout: row.dropout, ClassifierDropout: 0.1, MaxSeqLen: row.maxSeq,
		DocStride: 128, MaxQueryLen: 64, MaxAnswerLen: 30, MaxQALen: 128,
		EvalEvery: 1000, WeightDecay: 0.01, ClipNorm: 1.0,
	}
	switch profile {
	case "paper":
		if c.EvalEvery > c.Steps {
			c.EvalEvery = 0
		}
		return c, nil
	case "cpu":
		c.LR = 1e-4
		c.BatchSize = 16
		c.Steps = 300
		c.WarmupSteps = 30
		c.MaxSeqLen = 128
		c.DocStride = 64
		c.MaxQueryLen = 32
		c.MaxQALen = 48
		c.EvalEvery = 100
		c.EvalExamples = 500
		return c, nil
	}
	return Config{}, fmt.Errorf("finetune: unknown profile %q (want %s)", profile, strings.Join(Profiles, " or "))
}

// Validate reports the first impossible value, naming its key.
func (c Config) Validate() error {
	switch {
	case c.LR <= 0:
		return fmt.Errorf("lr must be > 0, got %g", c.LR)
	case c.BatchSize <= 0:
		return fmt.Errorf("batch_size must be > 0, got %d", c.BatchSize)
	case c.Steps <= 0:
		return fmt.Errorf("steps must be > 0, got %d", c.Steps)
	case c.WarmupSteps < 0 || c.WarmupSteps > c.Steps:
		return fmt.Errorf("warmup_steps must be in [0, steps = %d], got %d", c.Steps, c.WarmupSteps)
	case c.EncoderDropout < 0 || c.EncoderDropout >= 1:
		return fmt.Errorf("encoder_dropout must be in [0, 1), got %g", c.EncoderDropout)
	case c.ClassifierDropout < 0 || c.ClassifierDropout >= 1:
		return fmt.Errorf("classifier_dropout must be in [0, 1), got %g", c.ClassifierDropout)
	case c.MaxSeqLen < 8:
		return fmt.Errorf("max_seq_len must be >= 8, got %d", c.MaxSeqLen)
	case c.DocStride <= 0 || c.MaxQueryLen <= 0 || c.MaxAnswerLen <= 0 || c.MaxQALen <= 0:
		return fmt.Errorf("doc_stride, max_query_len, max_answer_len and max_qa_len must be > 0")
	case c.MaxQueryLen >= c.MaxSeqLen-3:
		return fmt.Errorf("max_query_len = %d leaves no room for a context in max_seq_len = %d", c.MaxQueryLen, c.MaxSeqLen)
	case c.MaxQALen >= c.MaxSeqLen-3:
		return fmt.Errorf("max_qa_len = %d leaves no room for an article in max_seq_len = %d", c.MaxQALen, c.MaxSeqLen)
	case c.EvalEvery < 0 || c.EvalExamples < 0 || c.TrainExamples < 0:
		return fmt.Errorf("eval_every, eval_examples and train_examples must be >= 0")
	case c.WeightDecay < 0:
		return fmt.Errorf("weight_decay must be >= 0, got %g", c.WeightDecay)
	case c.ClipNorm < 0:
		return fmt.Errorf("clip_norm must be >= 0, got %g", c.ClipNorm)
	case c.Pooling != "" && c.Pooling != PoolCLS && c.Pooling != PoolMean:
		return fmt.Errorf("pooling must be %q or %q, got %q", PoolCLS, PoolMean, c.Pooling)
	}
	return nil
}

// Optimizer is the official fine-tuning optimizer under c, as a train.Config
// (the project's AdamW and schedule).
func (c Config) Optimizer() train.Config {
	return train.Config{
		Steps: c.Steps, BatchSize: c.BatchSize, GradAccum: 1, Optimizer: "adamw", LR: c.LR,
		WarmupSteps: c.WarmupSteps, WeightDecay: c.WeightDecay, Beta1: 0.9, Beta2: 0.999, Eps: 1e-6,
		ClipNorm: c.ClipNorm, DivergeLoss: 1e4, BiasCorrection: c.BiasCorrection,
	}
}
