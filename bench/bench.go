// Package bench times training steps of fixed configurations on synthetic
// batches (`exp bench`): tokens/s, ms/step, achieved GFLOP/s against the
// matmul ceiling measured in the same process, and peak RSS; and measures
// RSS growth over a long run (`exp bench --memory`). bench/reference.py is
// the PyTorch-eager implementation of the identical model and step that
// `exp bench --vs-pytorch` runs side by side.
package bench

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/data"
	"github.com/reproml/albert/kernels"
	"github.com/reproml/albert/model"
	"github.com/reproml/albert/train"
)

// Spec is one benchmark configuration: a model and a batch shape.
type Spec struct {
	Name  string       `json:"name"`
	Model model.Config `json:"model"`
	Batch int          `json:"batch"`
	Seq   int          `json:"seq"`
	Preds int          `json:"preds"` // masked predictions per sequence
}

// Preds is the masked predictions per sequence: realistic masking at seq
// 128 (15% of 128 ≈ 20, the official max_predictions_per_seq).
const Preds = 20

func spec(name string, v, e, h, l, heads, ffn, batch int, sh model.Sharing) Spec {
	return Spec{Name: name, Batch: batch, Seq: 128, Preds: Preds, Model: model.Config{
		VocabSize: v, EmbeddingSize: e, HiddenSize: h, NumLayers: l, NumHeads: heads, IntermediateSize: ffn,
		MaxPositions: 512, Sharing: sh, HiddenDropout: 0.1, AttentionDropout: 0.1, SentenceHead: true,
	}.Resolve()}
}

// Specs are the configurations: tiny and base-shaped, sharing all
// and none.
func Specs() []Spec {
	return []Spec{
		spec("tiny-all", 8000, 64, 256, 4, 4, 1024, 16, model.ShareAll),
		spec("tiny-none", 8000, 64, 256, 4, 4, 1024, 16, model.ShareNone),
		spec("base-all", 30000, 128, 768, 12, 12, 3072, 8, model.ShareAll),
		spec("base-none", 30000, 128, 768, 12, 12, 3072, 8, model.ShareNone),
	}
}

// GPUSpecs are realistic GPU batches of the same shapes (issue 18): tiny
// and base-shaped at seq 128, batch 256, and base-shaped at the paper's seq
// 512 (batch 64, 20 masked slots as the official max_predictions_per_seq).
// Named with --configs only: on two CPU cores one step takes minutes.
func GPUSpecs() []Spec {
	s512 := func(sp Spec) Spec { sp.Name, sp.Seq = sp.Name[:len(sp.Name)-len("-b64")]+"-s512", 512; return sp }
	return []Spec{
		spec("tiny-all-b256", 8000, 64, 256, 4, 4, 1024, 256, model.ShareAll),
		spec("base-all-b256", 30000, 128, 768, 12, 12, 3072, 256, model.ShareAll),
		spec("base-none-b256", 30000, 128, 768, 12, 12, 3072, 256, model.ShareNone),
		s512(spec("base-all-b64", 30000, 128, 768, 12, 12, 3072, 64, model.ShareAll)),
	}
}

// Lookup finds a spec by name (Specs, then GPUSpecs).
func Lookup(name string) (Spec, error) {
	var names []string
	for _, s := range append(Specs(), GPUSpecs()...) {
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return Spec{}, fmt.Errorf("bench: unknown configuration %q (known: %s)", name, strings.Join(names, ", "))
}

// FLOPs is the matrix arithmetic of one training step, as computed:
// model.Config.TrainStepFLOPs (the MLM decoder at the Preds masked slots
// only, attention over the full S×S, forward and backward). Both sides of
// --vs-pytorch are rated with it (Row.Add), so their GFLOP/s compare.
func (s Spec) FLOPs() float64 { return s.Model.TrainStepFLOPs(s.Batch, s.Seq, s.Preds) }

// Batches makes n fixed synthetic batches for s: random ids, [CLS] A [SEP]
// B [SEP] segments at the middle, no padding, Preds distinct masked
// positions per sequence (sorted, never [CLS]) with real weights.
func Batches(s Spec, n int, seed uint64) []data.Batch {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	V := s.Model.VocabSize
	var out []data.Batch
	for k := 0; k < n; k++ {
		b := data.Batch{Size: s.Batch, SeqLen: s.Seq, MaxPred: s.Preds}
		for i := 0; i < s.Batch; i++ {
			for j := 0; j < s.Seq; j++ {
				b.InputIDs = append(b.InputIDs, int64(5+r.IntN(V-5)))
				seg := int64(0)
				if j > s.Seq/2 {
					seg = 1
				}
				b.SegmentIDs = append(b.SegmentIDs, seg)
				b.InputMask = append(b.InputMask, 1)
			}
			pos := r.Perm(s.Seq - 1)[:s.Preds]
			sort.Ints(pos)
			for _, p := range pos {
				b.MaskedPositions = append(b.MaskedPositions, int64(p+1))
				b.MaskedIDs = append(b.MaskedIDs, int64(5+r.IntN(V-5)))
				b.MaskedWeights = append(b.MaskedWeights, 1)
			}
			b.SentenceLabels = append(b.SentenceLabels, int64(r.IntN(2)))
		}
		out = append(out, b)
	}
	return out
}

// Options of one timed run.
type Options struct {
	Steps  int    // timed steps (≥ 10 for the statistics)
	Warmup int    // untimed steps first
	Device string // auto | cpu | cuda[:N]
	Ops    int    // > 0: profile the timed steps per op and keep this many lines (Result.Ops)
	// Precision is train.precision of our step (fp32 when ""; tf32 is
	// CUDA only, CheckPrecision) and the reference's --precision.
	Precision string
	// The reference's LAMB (ReferenceArgv): "foreach" (multi-tensor
	// torch._foreach_* ops over all parameters; when "") or "loop" (one
	// tensor at a time), and whether it runs the model under torch.compile.
	RefOptimizer string
	RefCompile   bool
	// World times the step data-parallel: this process is one rank, with
	// its shard (Batch/size sequences) of each global batch and the
	// gradients' all-reduce inside the step time (exp bench --nproc).
	World train.World `json:"-"`
}

// Result of one timed run; the JSON keys are shared with reference.py.
type Result struct {
	Impl          string    `json:"impl"` // "gotch" or "pytorch"
	Config        string    `json:"config"`
	Device        string    `json:"device"`
	Precision     string    `json:"precision"`         // fp32, tf32 or bf16: the step's arithmetic
	Variant       string    `json:"variant,omitempty"` // the reference's form: its LAMB (foreach or loop), +compile
	Threads       int       `json:"threads"`
	Steps         int       `json:"steps"`
	TokensPerStep int       `json:"tokens_per_step"`
	MsMedian      float64   `json:"ms_median"`
	MsMin         float64   `json:"ms_min"`
	MsMax         float64   `json:"ms_max"`
	MsAll         []float64 `json:"ms_all"`
	TokensPerSec  float64   `json:"tokens_per_sec"` // at the median step time
	GFLOPS        float64   `json:"gflops"`         // Spec.FLOPs / median step time
	// CeilingGFLOPS is the 1024³ matmul rate in the result's precision
	// (CeilingGFLOPS: fp32, or bf16 for bf16, or fp32 under TF32 for tf32),
	// same process, the best of readings before, between and after the
	// timed steps; Fraction is against it.
	CeilingGFLOPS float64 `json:"ceiling_gflops"`
	// CeilingFP32GFLOPS is the fp32 matmul ceiling beside it in a tf32 or
	// bf16 result (best of a reading before and after the timed steps).
	CeilingFP32GFLOPS float64  `json:"ceiling_fp32_gflops,omitempty"`
	PeakRSSMiB        float64  `json:"peak_rss_mib"`
	Loss              float64  `json:"loss"`              // last logged loss (sanity)
	Kernels           string   `json:"kernels,omitempty"` // kernels.Status(): fused or composed ops
	Ops               []OpTime `json:"ops,omitempty"`     // with Options.Ops: where a step's time goes
}

// OpTime is one line of a step's per-op profile, per step (the mean over
// the timed steps). Self time excludes ops nested in the op, so the self
// times add up to the time inside any op; the line named Outside holds the
// rest of the mean step (Go, cgo and anything libtorch does not record).
type OpTime struct {
	Name    string  `json:"name"`
	Calls   float64 `json:"calls_per_step"`
	SelfMs  float64 `json:"self_ms"`
	TotalMs float64 `json:"total_ms"`
}

// Outside names the profile line for step time spent outside every op.
const Outside = "(outside any op)"

// opTimes turns the profile of the timed steps (steps of them, times in ms)
// into per-step lines: the top n by self time, then Outside.
func opTimes(stats []kernels.OpStat, steps int, times []float64, n int) []OpTime {
	var mean, inside float64
	for _, t := range times {
		mean += t / float64(len(times))
	}
	var out []OpTime
	for i, st := range stats {
		self := float64(st.Self) / 1e6 / float64(steps)
		inside += self
		if i < n {
			out = append(out, OpTime{Name: st.Name, Calls: float64(st.Calls) / float64(steps), SelfMs: self,
				TotalMs: float64(st.Total) / 1e6 / float64(steps)})
		}
	}
	return append(out, OpTime{Name: Outside, SelfMs: mean - inside, TotalMs: mean - inside})
}

// Fraction of the matmul ceiling in the result's precision.
func (r Result) Fraction() float64 {
	if r.CeilingGFLOPS == 0 {
		return 0
	}
	return r.GFLOPS / r.CeilingGFLOPS
}

// lamb is the official optimizer for the benchmark step.
func lamb(steps int) train.Config {
	c := train.DefaultConfig()
	c.Steps, c.BatchSize, c.GradAccum, c.WarmupSteps = steps, 0, 1, 0
	return c
}

// Run times o.Steps training steps of s after o.Warmup untimed ones. It
// locks the calling goroutine's OS thread for libtorch.
func Run(s Spec, o Options) (Result, error) {
	defer backend.LockThread()()
	if o.Steps <= 0 {
		o.Steps = 10
	}
	if o.Warmup < 0 {
		o.Warmup = 0
	}
	prec := o.precision()
	res := Result{Impl: "gotch", Config: s.Name, Precision: prec, Steps: o.Steps, TokensPerStep: s.Batch * s.Seq}
	local, rank := s, 0
	if w := o.World; w != nil {
		if s.Batch%w.Size() != 0 {
			return res, fmt.Errorf("bench: %s's batch of %d does not split over %d ranks", s.Name, s.Batch, w.Size())
		}
		local.Batch, rank = s.Batch/w.Size(), w.Rank()
		res.Impl = fmt.Sprintf("gotch×%d", w.Size())
	}
	if err := backend.Init(); err != nil {
		return res, err
	}
	res.Threads = backend.Threads()
	dev, err := backend.Device(o.Device)
	if err != nil {
		return res, err
	}
	res.Device = backend.DeviceName(dev)
	if err := CheckPrecision(o.Precision, dev); err != nil {
		return res, err
	}
	fp32Ceiling := func() {} // a tf32 or bf16 result's fp32 ceiling beside its own
	if prec != train.PrecisionFP32 {
		fp32Ceiling = func() {
			// Outside the stepper's life: it holds TF32 on in a tf32 run.
			if c, err := backend.MatmulGFLOPS(dev, 1024); err == nil && c > res.CeilingFP32GFLOPS {
				res.CeilingFP32GFLOPS = c
			}
		}
	}
	fp32Ceiling()
	if err := backend.Seed(1); err != nil {
		return res, err
	}
	m, err := model.New(s.Model, dev)
	if err != nil {
		return res, err
	}
	defer m.VarStore.Destroy()
	tc := lamb(o.Warmup + o.Steps)
	tc.Precision = o.Precision
	sp, err := train.NewStepper(m, tc) // refuses what the trainer cannot run (CheckPrecision)
	if err != nil {
		return res, fmt.Errorf("bench: %s at %s: %w", s.Name, prec, err)
	}
	closed := false
	defer func() {
		if !closed {
			sp.Close()
		}
	}()
	// The ceiling in the step's precision, read while the stepper holds
	// its process settings (TF32 for tf32 on CUDA).
	if res.CeilingGFLOPS, err = CeilingGFLOPS(dev, 1024, prec); err != nil {
		return res, err
	}
	sp.SetWorld(o.World)
	batches := Batches(local, 4, 1+uint64(rank))
	k := 0
	next := func() (data.Batch, error) { b := batches[k%len(batches)]; k++; return b, nil }
	var times []float64
	for step := 0; step < o.Warmup+o.Steps; step++ {
		if o.Ops > 0 && step == o.Warmup {
			if err := kernels.ProfileStart(); err != nil {
				return res, fmt.Errorf("bench: a per-op profile needs the kernels library: %w", err)
			}
		}
		if err := backend.Seed(int64(step) + 1 + int64(rank)<<32); err != nil { // as the loop: dropout seeded per step (and rank)
			return res, err
		}
		// The loop logs (reads back) every 10 steps; on a GPU every timed
		// step reads back, so its queued work is inside its own time.
		read := dev.IsCuda() || step%10 == 9 || step == o.Warmup+o.Steps-1
		start := time.Now()
		sums, _, err := sp.Step(next, 1e-4, read)
		if err != nil {
			return res, err
		}
		if step >= o.Warmup {
			times = append(times, float64(time.Since(start).Microseconds())/1000)
			// The ceiling is read again after every timed step (outside its
			// time) and the best reading kept: on a shared host any one
			// reading can be low, which would flatter the fraction.
			if o.Ops == 0 && o.World == nil { // a rank's matmul would slow the others' steps
				if c, err := CeilingGFLOPS(dev, 1024, prec); err == nil && c > res.CeilingGFLOPS {
					res.CeilingGFLOPS = c
				}
			}
		}
		if sums != nil {
			res.Loss = sums[0]
		}
	}
	if o.Ops > 0 {
		stats, err := kernels.ProfileStop()
		if err != nil {
			return res, err
		}
		res.Ops = opTimes(stats, o.Steps, times, o.Ops)
	}
	if after, err := CeilingGFLOPS(dev, 1024, prec); err == nil && after > res.CeilingGFLOPS {
		res.CeilingGFLOPS = after
	}
	sp.Close()
	closed = true
	fp32Ceiling()
	res.Kernels = kernels.Status()
	summarize(&res, times, s.FLOPs())
	_, peak := RSS()
	res.PeakRSSMiB = float64(peak) / (1 << 20)
	return res, nil
}

func summarize(res *Result, times []float64, flops float64) {
	res.MsAll = times
	sorted := append([]float64(nil), times...)
	sort.Float64s(sorted)
	n := len(sorted)
	res.MsMin, res.MsMax = sorted[0], sorted[n-1]
	if n%2 == 1 {
		res.MsMedian = sorted[n/2]
	} else {
		res.MsMedian = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	res.TokensPerSec = float64(res.TokensPerStep) / (res.MsMedian / 1000)
	res.GFLOPS = flops / (res.MsMedian / 1000) / 1e9
}

// RSS reads this process's resident set size and its peak (VmRSS, VmHWM)
// in bytes from /proc/self/status; zeros where that is unavailable.
func RSS() (cur, peak int64) {
	fh, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			cur = v << 10
		case "VmHWM:":
			peak = v << 10
		}
	}
	return cur, peak
}
