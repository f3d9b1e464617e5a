package train

import (
	"fmt"
	"slices"
)

// Config is the optimisation and bookkeeping of one pretraining run. The
// defaults follow the official run_pretraining.py (LAMB, lr 0.00176, linear
// warm-up then linear decay to 0, gradient-norm clip 1.0).
type Config struct {
	Steps       int     `toml:"steps" json:"steps"`               // optimizer steps
	BatchSize   int     `toml:"batch_size" json:"batch_size"`     // sequences per optimizer step
	GradAccum   int     `toml:"grad_accum" json:"grad_accum"`     // micro-batches per step (batch_size must divide by it)
	Optimizer   string  `toml:"optimizer" json:"optimizer"`       // lamb | adamw
	LR          float64 `toml:"lr" json:"lr"`                     // peak learning rate
	WarmupSteps int     `toml:"warmup_steps" json:"warmup_steps"` // linear warm-up
	WeightDecay float64 `toml:"weight_decay" json:"weight_decay"` // decoupled; not on LayerNorm or bias
	Beta1       float64 `toml:"beta1" json:"beta1"`               // 0.9
	Beta2       float64 `toml:"beta2" json:"beta2"`               // 0.999
	Eps         float64 `toml:"eps" json:"eps"`                   // 1e-6
	// BiasCorrection divides Adam's moments by 1-β^t (the LAMB paper, PyTorch's
	// AdamW). Off reproduces the official code (optimization.py,
	// lamb_optimizer.py), whose uncorrected second moment makes the first
	// ~1/(1-β2) steps much larger than lr says unless a long warm-up hides it.
	// omitempty: configs without it keep their hash.
	BiasCorrection  bool    `toml:"bias_correction" json:"bias_correction,omitempty"`
	ClipNorm        float64 `toml:"clip_norm" json:"clip_norm"`               // global grad-norm clip; 0 = off
	EvalEvery       int     `toml:"eval_every" json:"eval_every"`             // steps between held-out evals; 0 = only at the end
	EvalBatches     int     `toml:"eval_batches" json:"eval_batches"`         // batches of each eval set per eval; 0 = all
	LogEvery        int     `toml:"log_every" json:"log_every"`               // steps between logged training losses
	CheckpointEvery int     `toml:"checkpoint_every" json:"checkpoint_every"` // steps between checkpoints; 0 = only at the end
	DivergeLoss     float64 `toml:"diverge_loss" json:"diverge_loss"`         // a loss above this marks the run diverged
	// Precision is the arithmetic of the step (CheckPrecision): "fp32"
	// (the reference; "" means it), "tf32" (fp32 storage, TF32 matmuls on
	// CUDA, evaluation included) or "bf16" (autocast: bf16 matmuls and
	// attention, fp32 master weights, LayerNorm, softmax, losses and
	// optimizer state; evaluation in fp32). Normalize
	// stores fp32 as "" and omitempty leaves it out of the hashed JSON, so
	// every fp32 run keeps the hash it had before the setting existed.
	Precision string `toml:"precision" json:"precision,omitempty"`
}

// Precisions are the values of Config.Precision, the reference first.
var Precisions = []string{PrecisionFP32, PrecisionTF32, PrecisionBF16}

// The precisions.
const (
	PrecisionFP32 = "fp32"
	PrecisionTF32 = "tf32"
	PrecisionBF16 = "bf16"
)

// Normalize returns c with its default precision spelled "", the form that
// is hashed and stored (fp32 configs hash as before the setting existed).
func (c Config) Normalize() Config {
	if c.Precision == PrecisionFP32 {
		c.Precision = ""
	}
	return c
}

// PrecisionName is the precision as recorded in provenance: "fp32" for "".
func (c Config) PrecisionName() string {
	if c.Precision == "" {
		return PrecisionFP32
	}
	return c.Precision
}

// CheckPrecision says whether this build's trainer can run c's precision on
// a device (cuda false: the CPU). fp32 runs everywhere. tf32 is a CUDA
// matmul mode (on the CPU, fp32 matmuls are already full precision, so a
// tf32 run there would be an fp32 run under another name and hash): an
// error, not a silent no-op. bf16 runs on both: the forward pass under
// libtorch's autocast (the fused fp32 CPU kernels step aside for the
// composed ops it casts), the rest in fp32 (train/precision.go); evaluation
// stays fp32. On CUDA, tf32 and bf16 are wired (libtorch's TF32 switch,
// CUDA autocast) but have not been run on a GPU yet (scripts/gpu-bench.sh
// is the check).
func (c Config) CheckPrecision(cuda bool) error {
	if c.PrecisionName() == PrecisionTF32 && !cuda {
		return fmt.Errorf("train.precision = \"tf32\" is a CUDA matmul mode; on the CPU use \"fp32\" (the same arithmetic)")
	}
	return nil
}

// DefaultConfig is the official optimiser at a small step budget.
func DefaultConfig() Config {
	return Config{
		Steps: 1000, BatchSize: 32, GradAccum: 1, Optimizer: "lamb", LR: 0.00176,
		WarmupSteps: 100, WeightDecay: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-6, ClipNorm: 1.0,
		EvalEvery: 0, EvalBatches: 0, LogEvery: 10, CheckpointEvery: 0, DivergeLoss: 100,
	}
}

// Validate reports the first impossible value, naming its key.
func (c Config) Validate() error {
	switch {
	case c.Steps <= 0:
		return fmt.Errorf("steps must be > 0, got %d", c.Steps)
	case c.BatchSize <= 0:
		return fmt.Errorf("batch_size must be > 0, got %d", c.BatchSize)
	case c.GradAccum <= 0:
		return fmt.Errorf("grad_accum must be > 0, got %d", c.GradAccum)
	case c.BatchSize%c.GradAccum != 0:
		return fmt.Errorf("grad_accum = %d does not divide batch_size = %d", c.GradAccum, c.BatchSize)
	case c.Optimizer != "lamb" && c.Optimizer != "adamw":
		return fmt.Errorf("optimizer must be \"lamb\" or \"adamw\", got %q", c.Optimizer)
	case c.LR <= 0:
		return fmt.Errorf("lr must be > 0, got %g", c.LR)
	case c.WarmupSteps < 0: // longer than the run is allowed, as in optimization.py: it warms up to the end
		return fmt.Errorf("warmup_steps must be >= 0, got %d", c.WarmupSteps)
	case c.WeightDecay < 0:
		return fmt.Errorf("weight_decay must be >= 0, got %g", c.WeightDecay)
	case c.Beta1 < 0 || c.Beta1 >= 1:
		return fmt.Errorf("beta1 must be in [0, 1), got %g", c.Beta1)
	case c.Beta2 < 0 || c.Beta2 >= 1:
		return fmt.Errorf("beta2 must be in [0, 1), got %g", c.Beta2)
	case c.Eps <= 0:
		return fmt.Errorf("eps must be > 0, got %g", c.Eps)
	case c.ClipNorm < 0:
		return fmt.Errorf("clip_norm must be >= 0, got %g", c.ClipNorm)
	case c.EvalEvery < 0 || c.EvalBatches < 0 || c.LogEvery < 0 || c.CheckpointEvery < 0:
		return fmt.Errorf("eval_every, eval_batches, log_every and checkpoint_every must be >= 0")
	case c.DivergeLoss <= 0:
		return fmt.Errorf("diverge_loss must be > 0, got %g", c.DivergeLoss)
	case c.Precision != "" && !slices.Contains(Precisions, c.Precision):
		return fmt.Errorf("precision must be one of %q, got %q", Precisions, c.Precision)
	}
	return nil
}
