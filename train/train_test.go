package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/data"
	"github.com/reproml/albert/kernels"
	"github.com/reproml/albert/model"
	"github.com/reproml/albert/results"
)

// LAMB on a hand-computed example. w = [3, 4] (‖w‖ = 5), g = [1, 2],
// β1 = 0.9, β2 = 0.999, ε = 0, wd = 0.01, lr = 0.1, first step:
//
//	m = 0.1·g = [0.1, 0.2];  v = 0.001·g² = [0.001, 0.004]
//	m/√v = [0.1/0.0316228, 0.2/0.0632456] = [3.16228, 3.16228]
//	u = m/√v + 0.01·w = [3.19228, 3.20228]; ‖u‖ = 4.52171
//	r = 5 / 4.52171 = 1.105776
//	w' = w - 0.1·r·u = [3 - 0.352994, 4 - 0.354100] = [2.647006, 3.645900]
//
// A LayerNorm or bias tensor with the same values gets neither decay nor
// the trust ratio: w' = w - 0.1·[3.16228, 3.16228].
func TestLAMBHandComputed(t *testing.T) {
	eachLAMB(t, func(t *testing.T, fused bool) {
		w := ts.MustOfSlice([]float32{3, 4}).MustSetRequiresGrad(true, true)
		b := ts.MustOfSlice([]float32{3, 4}).MustSetRequiresGrad(true, true)
		params := []model.Param{{Name: "x/weight", Tensor: w, Decay: true}, {Name: "x/layer_norm/bias", Tensor: b, Decay: false}}
		c := DefaultConfig()
		c.Eps = 1e-12
		opt, err := NewOptimizer(c, params)
		if err != nil {
			t.Fatal(err)
		}
		opt.fused = fused
		g := ts.MustOfSlice([]float32{1, 2})
		for _, p := range params {
			loss := p.Tensor.MustMul(g, false).MustSum(gotch.Float, true) // d loss / d p = g
			loss.MustBackward()
		}
		opt.Step(0.1)
		check := func(name string, x *ts.Tensor, want []float64) {
			got := x.Float64Values()
			for i := range want {
				if math.Abs(got[i]-want[i]) > 2e-5 {
					t.Fatalf("%s = %v, want %v", name, got, want)
				}
			}
		}
		check("decayed weight", w, []float64{2.647006, 3.645900})
		check("layer-norm bias", b, []float64{3 - 0.316228, 4 - 0.316228})

		// AdamW: the same update without the trust ratio.
		w2 := ts.MustOfSlice([]float32{3, 4}).MustSetRequiresGrad(true, true)
		c.Optimizer = "adamw"
		opt2, _ := NewOptimizer(c, []model.Param{{Name: "x/weight", Tensor: w2, Decay: true}})
		opt2.fused = fused
		w2.MustMul(g, false).MustSum(gotch.Float, true).MustBackward()
		opt2.Step(0.1)
		check("adamw weight", w2, []float64{3 - 0.319228, 4 - 0.320228})
	})
}

// TestBiasCorrectionHandComputed takes two AdamW steps (no decay, so the
// update is m̂/(√v̂+ε) alone) with and without train.bias_correction and
// compares each step's weights with values worked out by hand:
//
//	step 1, g = (1, 2): m = (0.1, 0.2), v = (0.001, 0.004)
//	  off: u = m/√v = (3.16228, 3.16228)     on: m̂ = (1, 2), v̂ = (1, 4), u = (1, 1)
//	step 2, g = (3, -1): m = (0.39, 0.08), v = (0.009999, 0.004996)
//	  off: u = (3.90019, 1.13182)            on: m̂ = m/0.19, v̂ = v/0.001999, u = (0.91778, 0.26634)
func TestBiasCorrectionHandComputed(t *testing.T) {
	want := map[bool][2][]float64{
		false: {{2.683772, 3.683772}, {2.293753, 3.570590}},
		true:  {{2.900000, 3.900000}, {2.808222, 3.873366}},
	}
	eachLAMB(t, func(t *testing.T, fused bool) {
		for _, corr := range []bool{false, true} {
			w := ts.MustOfSlice([]float32{3, 4})
			c := DefaultConfig()
			c.Optimizer, c.Eps, c.BiasCorrection = "adamw", 1e-12, corr
			opt, err := NewOptimizer(c, []model.Param{{Name: "x/bias", Tensor: w, Decay: false}})
			if err != nil {
				t.Fatal(err)
			}
			opt.fused = fused
			for i, g := range [][]float32{{1, 2}, {3, -1}} {
				gt := ts.MustOfSlice(g)
				opt.step(0.1, []*ts.Tensor{gt}, nil)
				gt.MustDrop()
				got := w.Float64Values()
				for j := range got {
					if math.Abs(got[j]-want[corr][i][j]) > 2e-5 {
						t.Fatalf("bias correction %v, step %d: w = %v, want %v", corr, i+1, got, want[corr][i])
					}
				}
			}
			opt.Close()
		}
	})
}

// TestOptimizerStateKeepsUpdateCount checks that the update count, which
// bias correction depends on, survives State and Load.
func TestOptimizerStateKeepsUpdateCount(t *testing.T) {
	defer lockThread()()
	c := DefaultConfig()
	c.BiasCorrection = true
	mk := func() *Optimizer {
		o, err := NewOptimizer(c, []model.Param{{Name: "x/bias", Tensor: ts.MustOfSlice([]float32{3, 4})}})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	a, b := mk(), mk()
	defer a.Close()
	defer b.Close()
	g := ts.MustOfSlice([]float32{1, 2})
	for range 3 {
		a.step(0.1, []*ts.Tensor{g}, nil)
	}
	named := map[string]*ts.Tensor{}
	for _, nt := range a.State() {
		named[nt.Name] = nt.Tensor
	}
	if err := b.Load(named); err != nil {
		t.Fatal(err)
	}
	if b.t != 3 {
		t.Fatalf("loaded update count %d, want 3", b.t)
	}
	delete(named, "opt_t")
	if err := b.Load(named); err == nil {
		t.Fatal("a checkpoint without opt_t loaded into a bias-corrected optimizer")
	}
}

// eachLAMB runs f on the composed optimizer and, where the kernels are
// loaded, on the fused one (kernels.LAMB).
func eachLAMB(t *testing.T, f func(t *testing.T, fused bool)) {
	for _, fused := range []bool{false, true} {
		name := map[bool]string{false: "composed", true: "fused"}[fused]
		t.Run(name, func(t *testing.T) {
			defer lockThread()()
			if fused && !kernels.Enabled() {
				t.Skip(kernels.Status())
			}
			f(t, fused)
		})
	}
}

func TestTrustRatioFallsBackToOne(t *testing.T) {
	eachLAMB(t, func(t *testing.T, fused bool) {
		w := ts.MustZeros([]int64{3}, gotch.Float, gotch.CPU).MustSetRequiresGrad(true, true)
		c := DefaultConfig()
		c.WeightDecay = 0
		opt, _ := NewOptimizer(c, []model.Param{{Name: "z/weight", Tensor: w, Decay: true}})
		opt.fused = fused
		w.MustSum(gotch.Float, false).MustBackward() // g = 1
		opt.Step(0.1)
		// ‖w‖ = 0 → r = 1: w' = -0.1·m/√v = -0.1·0.1/√0.001 = -0.316228
		if got := w.Float64Values()[0]; math.Abs(got+0.316228) > 1e-4 {
			t.Fatalf("w = %v, want -0.316228 (trust ratio 1)", got)
		}
	})
}

// The fused update is the composed one: same parameters and moments, to
// float rounding, over several clipped steps of LAMB and AdamW, with and
// without decay, on a parameter larger than one kernel chunk (2^15).
func TestFusedLAMBMatchesComposed(t *testing.T) {
	defer lockThread()()
	if !kernels.Enabled() {
		t.Skip(kernels.Status())
	}
	for _, name := range []string{"lamb", "adamw"} {
		backend.Seed(5)
		shapes := [][]int64{{300, 257}, {513}}
		var s backend.Scope
		mk := func() []model.Param {
			var ps []model.Param
			for i, sh := range shapes {
				ps = append(ps, model.Param{Name: fmt.Sprint("p", i), Decay: i == 0,
					Tensor: s.T(ts.MustZeros(sh, gotch.Float, gotch.CPU))})
			}
			return ps
		}
		a, b := mk(), mk()
		for i := range a {
			x := s.T(ts.MustRandn(shapes[i], gotch.Float, gotch.CPU))
			backend.NoGrad(func() { a[i].Tensor.Copy_(x); b[i].Tensor.Copy_(x) })
		}
		c := DefaultConfig()
		c.Optimizer = name
		oa, _ := NewOptimizer(c, a)
		ob, _ := NewOptimizer(c, b)
		oa.fused, ob.fused = false, true
		for step := 0; step < 3; step++ {
			var grads []*ts.Tensor
			for _, sh := range shapes {
				grads = append(grads, s.T(ts.MustRandn(sh, gotch.Float, gotch.CPU)))
			}
			factor := s.T(ts.MustOfSlice([]float32{0.25}))
			oa.step(0.01, grads, factor)
			ob.step(0.01, grads, factor)
		}
		for i := range a {
			for _, pair := range [][2]*ts.Tensor{{a[i].Tensor, b[i].Tensor}, {oa.m[i], ob.m[i]}, {oa.v[i], ob.v[i]}} {
				x, y := backend.Float64s(pair[0]), backend.Float64s(pair[1])
				scale := 0.0 // float rounding is relative to the tensor's magnitude
				for _, v := range x {
					scale = math.Max(scale, math.Abs(v))
				}
				for j := range x {
					if math.Abs(x[j]-y[j]) > 1e-6*scale {
						t.Fatalf("%s param %d [%d]: composed %.9g, fused %.9g", name, i, j, x[j], y[j])
					}
				}
			}
		}
		oa.Close()
		ob.Close()
		s.Free()
	}
}

func TestLearningRateSchedule(t *testing.T) {
	defer lockThread()()
	c := Config{LR: 1, Steps: 100, WarmupSteps: 10}
	for step, want := range map[int]float64{0: 0, 5: 0.5, 10: 0.9, 55: 0.45, 99: 0.01, 100: 0} {
		if got := c.LearningRate(step); math.Abs(got-want) > 1e-12 {
			t.Errorf("lr(%d) = %g, want %g", step, got, want)
		}
	}
	// A warm-up longer than the run (a 50-step run of a 100-step warm-up
	// profile) is valid and rises to the end, as optimization.py does.
	short := DefaultConfig()
	short.LR, short.Steps, short.WarmupSteps = 1, 50, 100
	if err := short.Validate(); err != nil {
		t.Fatalf("warm-up longer than the run: %v", err)
	}
	for step, want := range map[int]float64{0: 0, 25: 0.25, 49: 0.49} {
		if got := short.LearningRate(step); math.Abs(got-want) > 1e-12 {
			t.Errorf("short run: lr(%d) = %g, want %g", step, got, want)
		}
	}
	short.WarmupSteps = -1
	if err := short.Validate(); err == nil {
		t.Error("a negative warm-up was accepted")
	}
}

func TestDiverged(t *testing.T) {
	defer lockThread()()
	for loss, want := range map[float64]bool{math.NaN(): true, math.Inf(1): true, 101: true, 99: false} {
		if got := diverged(loss, 100) != ""; got != want {
			t.Errorf("diverged(%g) = %v", loss, got)
		}
	}
}

// cacheRoot is the module's out/cache, filled by `make setup` (exp data fetch).
func cacheRoot(t *testing.T) string {
	root, _ := filepath.Abs("../out/cache")
	if _, err := os.Stat(data.CorpusPath(root)); err != nil {
		t.Skipf("default corpus not fetched (run `make setup`): %v", err)
	}
	return root
}

func tinyJob(t *testing.T, obj data.Objective, steps int) Job {
	mc, dc, tc := tinyConfigs(obj, steps)
	st, err := results.Open(filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	id, err := claimTestRun(st, string(obj)+t.Name(), steps)
	if err != nil {
		t.Fatal(err)
	}
	return Job{RunID: id, Name: "tiny", Seed: 1, Objective: obj, Model: mc, Data: dc, Train: tc,
		Dir: filepath.Join(t.TempDir(), "ckpt"), Device: "cpu", CacheRoot: cacheRoot(t), Store: st}
}

// tinyConfigs are tinyJob's model, data and training configurations.
func tinyConfigs(obj data.Objective, steps int) (model.Config, data.Config, Config) {
	mc := model.Config{VocabSize: 8000, EmbeddingSize: 32, HiddenSize: 64, NumLayers: 2, NumHeads: 2,
		MaxPositions: 64, Sharing: model.ShareAll, SentenceHead: obj != data.ObjectiveNone}.Resolve()
	dc := data.DefaultConfig()
	dc.VocabSize, dc.SeqLen, dc.MaxPredictions, dc.EvalExamples, dc.DupeFactor = 8000, 64, 10, 256, 0
	tc := DefaultConfig()
	tc.Steps, tc.BatchSize, tc.WarmupSteps, tc.LR, tc.LogEvery, tc.EvalEvery, tc.EvalBatches = steps, 16, steps/10, 0.01, 5, 0, 8
	return mc, dc, tc
}

// claimTestRun adds a run to st and claims it.
func claimTestRun(st *results.Store, hash string, steps int) (int64, error) {
	exp, _ := st.EnsureExperiment("test", "test.toml", "h")
	id, _, err := st.AddRun(exp, results.RunSpec{ConfigHash: hash, Name: "tiny", ConfigJSON: "{}", Profile: "test", Seed: 1, TotalSteps: steps})
	if err != nil {
		return 0, err
	}
	if c, err := st.ClaimRun(id, "test:1", 1e9, false); err != nil || !c.Granted {
		return 0, fmt.Errorf("claim: %v %+v", err, c)
	}
	return id, nil
}

func TestTinySOPRunLearns(t *testing.T) {
	defer lockThread()()
	job := tinyJob(t, data.ObjectiveSOP, 200)
	res, err := Run(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("final %v in %.1fs", res.Final, res.Seconds)
	ev, _ := job.Store.Evals(job.RunID)
	// Chance over 8000 pieces is 0.0125%; always guessing the commonest
	// piece scores about 4% on this corpus.
	if ev["mlm_acc"] < 0.06 {
		t.Errorf("MLM accuracy %.3f: not well above chance", ev["mlm_acc"])
	}
	if _, ok := ev["nsp_acc"]; !ok {
		t.Error("SOP model was not scored on NSP")
	}
	curve, _ := job.Store.Curve(job.RunID, "train", "loss")
	if len(curve) < 10 || !(curve[len(curve)-1].Value < curve[0].Value-1) {
		t.Errorf("loss curve did not fall: %v … %v", curve[0], curve[len(curve)-1])
	}
	tr, _ := job.Store.Transitions(job.RunID)
	if len(tr) != 2 || tr[0].L2 <= 0 || tr[0].CosineDeg <= 0 {
		t.Errorf("transitions %+v", tr)
	}
	if p, err := job.Store.Provenance(job.RunID); err != nil || p.Extra["precision"] != PrecisionFP32 {
		t.Errorf("provenance %+v (%v): want precision fp32", p.Extra, err)
	}
}

// train.Run itself refuses a precision it cannot honour on the device (exp
// run refuses it earlier), before writing anything: tf32 on the CPU.
func TestRunRefusesUnwiredPrecision(t *testing.T) {
	defer lockThread()()
	job := tinyJob(t, data.ObjectiveSOP, 10)
	job.Train.Precision = PrecisionTF32
	if _, err := Run(context.Background(), job); err == nil || !strings.Contains(err.Error(), "tf32") {
		t.Fatalf("tf32 on the CPU: got %v, want a refusal naming tf32", err)
	}
	if p, err := job.Store.Provenance(job.RunID); err == nil && len(p.Extra) > 0 {
		t.Errorf("a refused run wrote provenance %+v", p.Extra)
	}
}

// A run stopped after a checkpoint and resumed ends exactly where an
// uninterrupted run with the same seed ends, with no duplicate metric rows.
func TestResumeIsExact(t *testing.T) {
	defer lockThread()()
	whole := tinyJob(t, data.ObjectiveNSP, 40)
	whole.Train.CheckpointEvery = 10
	a, err := Run(context.Background(), whole)
	if err != nil {
		t.Fatal(err)
	}
	cut := tinyJob(t, data.ObjectiveNSP, 40)
	cut.Train.CheckpointEvery = 10
	ctx, cancel := context.WithCancel(context.Background())
	cut.afterStep = func(step int) {
		if step == 27 { // past the checkpoint at 20: steps 21..27 are redone
			cancel()
		}
	}
	if _, err := Run(ctx, cut); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	cut.afterStep = nil
	b, err := Run(context.Background(), cut)
	if err != nil {
		t.Fatal(err)
	}
	if b.Resumed != 20 {
		t.Fatalf("resumed from step %d, want 20", b.Resumed)
	}
	ca, _ := whole.Store.Curve(whole.RunID, "train", "loss")
	cb, _ := cut.Store.Curve(cut.RunID, "train", "loss")
	if len(ca) != len(cb) {
		t.Fatalf("%d loss rows uninterrupted, %d resumed", len(ca), len(cb))
	}
	for i := range ca {
		if ca[i] != cb[i] {
			t.Fatalf("loss curves differ at %d: %+v vs %+v", i, ca[i], cb[i])
		}
	}
	if a.Final["mlm_loss"] != b.Final["mlm_loss"] {
		t.Fatalf("final mlm loss %v vs %v", a.Final["mlm_loss"], b.Final["mlm_loss"])
	}
}

func TestMain(m *testing.M) {
	backend.Init()
	if os.Getenv(rankHelperEnv) != "" { // rank 1 of ddp_test.go's world
		os.Exit(rankHelper())
	}
	os.Exit(m.Run())
}

var lockThread = backend.LockThread
