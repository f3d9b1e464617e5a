package train

import (
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/data"
	"github.com/reproml/albert/kernels"
	"github.com/reproml/albert/model"
)

// The multi-tensor update (kernels.LAMBForeach) is tested on the CPU by
// forcing it, and on CUDA as it runs there: these tests use testDevice, so
// ALBERT_TEST_DEVICE=cuda train.test -test.run '^TestForeach' checks it on
// a GPU (scripts/gpu-bench.sh's test binary).

func needForeach(t *testing.T) {
	t.Helper()
	if !kernels.ForeachEnabled() {
		t.Skip(kernels.ForeachStatus())
	}
}

// withForeach runs f with every composed-path optimizer forced to the
// multi-tensor update.
func withForeach(f func()) {
	forceForeach = true
	defer func() { forceForeach = false }()
	f()
}

// The optimizer picks the fused kernel on the CPU, the multi-tensor update
// on CUDA, and the composed ops with the kernels off, on either.
func TestForeachPathSelection(t *testing.T) {
	defer lockThread()()
	needForeach(t)
	dev := testDevice(t)
	mk := func() *Optimizer {
		w := ts.MustZeros([]int64{3}, gotch.Float, dev)
		t.Cleanup(func() { w.MustDrop() })
		o, err := NewOptimizer(DefaultConfig(), []model.Param{{Name: "x/weight", Tensor: w, Decay: true}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(o.Close)
		return o
	}
	want := PathFused
	if dev.IsCuda() {
		want = PathForeach
	}
	if got := mk().Path(); got != want {
		t.Errorf("on %v: path %q, want %q", dev, got, want)
	}
	restore := kernels.Disable()
	off := mk()
	restore()
	if got := off.Path(); got != PathComposed {
		t.Errorf("on %v with the kernels disabled: path %q, want %q", dev, got, PathComposed)
	}
	withForeach(func() {
		if got := off.Path(); got != PathForeach {
			t.Errorf("forced: path %q, want %q", got, PathForeach)
		}
		if got := mk().Path(); got != want {
			t.Errorf("forced, on %v: path %q, want %q (the fused kernel stays first)", dev, got, want)
		}
	})
}

// The hand-computed LAMB, AdamW, bias-correction and trust-ratio tests pass
// through the multi-tensor update too: their subtests named "composed" run
// it here (the "fused" ones run the fused kernel, as always).
func TestForeachRunsHandComputedTests(t *testing.T) {
	needForeach(t)
	withForeach(func() {
		t.Run("LAMBHandComputed", TestLAMBHandComputed)
		t.Run("BiasCorrectionHandComputed", TestBiasCorrectionHandComputed)
		t.Run("TrustRatioFallsBackToOne", TestTrustRatioFallsBackToOne)
	})
}

// foreachParams are the parameters of TestForeachMatchesComposedAndFused:
// a decayed matrix larger than the fused kernel's 2^15 chunk, a decayed
// matrix that starts at zero (‖w‖ = 0: trust ratio 1), a LayerNorm-like
// vector without decay, and a decayed matrix that gets no gradient.
var foreachParams = []struct {
	name  string
	shape []int64
	decay bool
	zero  bool // starts at 0
	grad  bool // has a gradient
}{
	{"big/weight", []int64{300, 257}, true, false, true},
	{"zero/weight", []int64{16, 8}, true, true, true},
	{"layer_norm/gamma", []int64{513}, false, false, true},
	{"unused/weight", []int64{12, 4}, true, false, false},
}

// Every path takes the same steps to float rounding: the multi-tensor
// update against the composed ops (and, on the CPU, the fused kernel) over
// five steps of LAMB and AdamW, with and without bias correction and a
// clipping factor, with a parameter without a gradient (left alone) and
// one of norm 0.
func TestForeachMatchesComposedAndFused(t *testing.T) {
	needForeach(t)
	dev := testDevice(t)
	paths := []string{PathComposed, PathForeach}
	if kernels.Enabled() && !dev.IsCuda() {
		paths = append(paths, PathFused)
	}
	const steps = 5
	for _, name := range []string{"lamb", "adamw"} {
		for _, corr := range []bool{false, true} {
			for _, clip := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/biascorr=%v/gscale=%v", name, corr, clip), func(t *testing.T) {
					defer lockThread()() // a subtest's own goroutine: the profile is per thread
					var s backend.Scope
					defer s.Free()
					backend.Seed(7)
					onDev := func(x *ts.Tensor) *ts.Tensor { return s.T(s.T(x).MustTo(dev, false)) }
					var init []*ts.Tensor
					for _, p := range foreachParams {
						if p.zero {
							init = append(init, onDev(ts.MustZeros(p.shape, gotch.Float, gotch.CPU)))
						} else {
							init = append(init, onDev(ts.MustRandn(p.shape, gotch.Float, gotch.CPU)))
						}
					}
					grads := make([][]*ts.Tensor, steps)
					for k := range grads {
						grads[k] = make([]*ts.Tensor, len(foreachParams))
						for i, p := range foreachParams {
							if p.grad {
								grads[k][i] = onDev(ts.MustRandn(p.shape, gotch.Float, gotch.CPU))
							}
						}
					}
					var gscale *ts.Tensor
					if clip {
						gscale = onDev(ts.MustOfSlice([]float32{0.3}))
					}
					c := DefaultConfig()
					c.Optimizer, c.BiasCorrection = name, corr
					opts := map[string]*Optimizer{}
					for _, path := range paths {
						var ps []model.Param
						for i, p := range foreachParams {
							w := s.T(init[i].MustZerosLike(false))
							backend.NoGrad(func() { w.Copy_(init[i]) })
							ps = append(ps, model.Param{Name: p.name, Decay: p.decay, Tensor: w})
						}
						o, err := NewOptimizer(c, ps)
						if err != nil {
							t.Fatal(err)
						}
						defer o.Close()
						o.fused, o.foreach = path == PathFused, path == PathForeach
						if o.Path() != path {
							t.Fatalf("optimizer for %s runs %s", path, o.Path())
						}
						opts[path] = o
					}
					for k := range steps {
						for _, path := range paths {
							o := opts[path]
							if path == PathForeach && k == 0 {
								// The step really is the multi-tensor update: one call
								// per group (decayed matrices, the LayerNorm vector).
								calls := profiled(t, func() { o.step(0.01, grads[k], gscale) })
								if calls["albert::lamb_foreach"] != 2 || calls["albert::lamb"] != 0 {
									t.Fatalf("foreach step: %d albert::lamb_foreach and %d albert::lamb calls, want 2 and 0",
										calls["albert::lamb_foreach"], calls["albert::lamb"])
								}
								continue
							}
							o.step(0.01, grads[k], gscale)
						}
					}
					ref := opts[PathComposed]
					worst := map[string]float64{}
					defer func() { t.Logf("on %v, largest difference from composed: %v", dev, worst) }()
					for i, p := range foreachParams {
						for _, path := range paths[1:] {
							o := opts[path]
							for _, pair := range []struct {
								what string
								a, b *ts.Tensor
							}{{"w", o.params[i].Tensor, ref.params[i].Tensor}, {"m", o.m[i], ref.m[i]}, {"v", o.v[i], ref.v[i]}} {
								d := relDiff(pair.a, pair.b)
								worst[path] = math.Max(worst[path], d)
								if d > 1e-5 {
									t.Errorf("%s %s: %s differs from composed by %.3g of its largest magnitude", p.name, pair.what, path, d)
								}
							}
						}
						for _, path := range paths {
							o := opts[path]
							moved := relDiff(o.params[i].Tensor, init[i]) != 0
							if moved != p.grad {
								t.Errorf("%s on %s: moved %v, has a gradient %v", p.name, path, moved, p.grad)
							}
						}
					}
				})
			}
		}
	}
}

// relDiff is max |a-b| over max |b| (max |a-b| where b is all zero).
func relDiff(a, b *ts.Tensor) float64 {
	x, y := backend.Float64s(a), backend.Float64s(b)
	var d, scale float64
	for i := range x {
		d = math.Max(d, math.Abs(x[i]-y[i]))
		if math.IsNaN(x[i]) != math.IsNaN(y[i]) {
			return math.Inf(1)
		}
		scale = math.Max(scale, math.Abs(y[i]))
	}
	if scale == 0 {
		return d
	}
	return d / scale
}

// profiled runs f under a kernels profile of this (locked) thread and
// returns the calls of each scope.
func profiled(t *testing.T, f func()) map[string]int64 {
	t.Helper()
	if err := kernels.ProfileStart(); err != nil {
		t.Fatal(err)
	}
	f()
	stats, err := kernels.ProfileStop()
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int64{}
	for _, st := range stats {
		calls[st.Name] = st.Calls
	}
	return calls
}

// Training steps through the multi-tensor update free everything they
// make (the handles and RSS check of TestStepsDoNotLeak), on testDevice.
func TestForeachStepsDoNotLeak(t *testing.T) {
	defer lockThread()()
	needForeach(t)
	if err := backend.Seed(1); err != nil {
		t.Fatal(err)
	}
	dev := testDevice(t)
	m, err := model.New(model.Config{VocabSize: 1000, EmbeddingSize: 16, HiddenSize: 32, NumLayers: 2, NumHeads: 2,
		MaxPositions: 64, Sharing: model.ShareNone, HiddenDropout: 0.1, AttentionDropout: 0.1, SentenceHead: true}, dev)
	if err != nil {
		t.Fatal(err)
	}
	defer m.VarStore.Destroy()
	sp, err := NewStepper(m, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	sp.Opt.fused, sp.Opt.foreach = false, true
	batches := []data.Batch{syntheticBatch(1, 8, 32, 5, 1000), syntheticBatch(2, 8, 32, 5, 1000)}
	k := 0
	next := func() (data.Batch, error) { k++; return batches[k%2], nil }
	calls := profiled(t, func() {
		if _, _, err := sp.Step(next, 1e-3, false); err != nil {
			t.Fatal(err)
		}
	})
	if calls["albert::lamb_foreach"] == 0 || calls["albert::lamb"] != 0 {
		t.Fatalf("a step made %d albert::lamb_foreach and %d albert::lamb calls: not the multi-tensor update",
			calls["albert::lamb_foreach"], calls["albert::lamb"])
	}
	checkStepsDoNotLeak(t, sp, next, 100, 300, "foreach steps")
}

// BenchmarkOptimizerPaths times one clipped LAMB update of ALBERT-base
// (E 128, all layers shared; 11.8M parameters in 32 tensors) by each path
// on ALBERT_TEST_DEVICE (default the CPU; the fused kernel there only).
// exp preloads tcmalloc; without it glibc's malloc page-faults on every
// large temporary, which costs the multi-tensor update (all its
// temporaries alive at once) most:
//
//	LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
//	  go test ./train -run '^$' -bench OptimizerPaths -benchtime 10x
func BenchmarkOptimizerPaths(b *testing.B) {
	defer lockThread()()
	if !kernels.ForeachEnabled() {
		b.Skip(kernels.ForeachStatus())
	}
	dev := gotch.CPU
	if d := os.Getenv("ALBERT_TEST_DEVICE"); d != "" {
		var err error
		if dev, err = backend.Device(d); err != nil {
			b.Fatal(err)
		}
	}
	p, err := model.LookupPreset("table4-e128-all")
	if err != nil {
		b.Fatal(err)
	}
	m, err := model.New(p.Config, dev)
	if err != nil {
		b.Fatal(err)
	}
	defer m.VarStore.Destroy()
	var s backend.Scope
	defer s.Free()
	grads := make([]*ts.Tensor, len(m.Params))
	for i, p := range m.Params {
		grads[i] = s.T(s.T(p.Tensor.MustRandnLike(false)).MustMulScalar(ts.FloatScalar(1e-3), false))
	}
	gscale := s.T(s.T(ts.MustOfSlice([]float32{0.5})).MustTo(dev, false))
	paths := []string{PathForeach, PathComposed}
	if !dev.IsCuda() {
		paths = append([]string{PathFused}, paths...)
	}
	for _, path := range paths {
		b.Run(path, func(b *testing.B) {
			defer lockThread()()
			o, err := NewOptimizer(DefaultConfig(), m.Params)
			if err != nil {
				b.Fatal(err)
			}
			defer o.Close()
			o.fused, o.foreach = path == PathFused, path == PathForeach
			for b.Loop() {
				o.step(1e-4, grads, gscale)
			}
			if dev.IsCuda() {
				backend.Float64s(o.m[0]) // wait for the device (one sync after the loop)
			}
		})
	}
}
