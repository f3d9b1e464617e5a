package train

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/data"
	"github.com/reproml/albert/kernels"
	"github.com/reproml/albert/model"
)

// train.precision: the three values validate, anything else names the key;
// fp32 normalizes to "" (omitted from the hashed JSON) and is recorded as
// "fp32"; only tf32 on the CPU is refused (a CUDA matmul mode: on the CPU
// it would be fp32 under another name and hash).
func TestPrecisionSetting(t *testing.T) {
	c := DefaultConfig()
	for _, p := range []string{"", "fp32", "tf32", "bf16"} {
		c.Precision = p
		if err := c.Validate(); err != nil {
			t.Errorf("precision %q: %v", p, err)
		}
	}
	c.Precision = "fp16"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "precision must be one of") {
		t.Errorf("fp16: %v", err)
	}
	c.Precision = "fp32"
	if n := c.Normalize(); n.Precision != "" || n.PrecisionName() != "fp32" {
		t.Errorf("fp32 normalizes to %q, recorded as %q", n.Precision, n.PrecisionName())
	}
	for _, tc := range []struct {
		prec string
		cuda bool
		want string // "" = accepted
	}{
		{"", false, ""}, {"fp32", false, ""}, {"fp32", true, ""},
		{"tf32", false, "CUDA matmul mode"}, {"bf16", false, ""},
		{"tf32", true, ""}, {"bf16", true, ""},
	} {
		c.Precision = tc.prec
		err := c.CheckPrecision(tc.cuda)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q on cuda=%v: %v, want %q", tc.prec, tc.cuda, err, tc.want)
		}
	}
}

// testDevice is the device of the precision tests: the CPU, or
// ALBERT_TEST_DEVICE (scripts/gpu-bench.sh runs them with cuda).
func testDevice(t *testing.T) gotch.Device {
	t.Helper()
	dev, err := backend.Device(os.Getenv("ALBERT_TEST_DEVICE"))
	if os.Getenv("ALBERT_TEST_DEVICE") == "" {
		dev, err = gotch.CPU, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return dev
}

// curve trains a tiny model (H 32, L 2, E 16, seq 32, batch 8, no dropout)
// from seed 1 for steps steps in precision prec on dev, cycling over four
// fixed batches, and returns the losses and the mean time of a step. With
// check, it also holds the run's parameters and optimizer moments to fp32.
func curve(t *testing.T, dev gotch.Device, prec string, steps int, check bool) ([]float64, time.Duration) {
	t.Helper()
	if err := backend.Seed(1); err != nil {
		t.Fatal(err)
	}
	m, err := model.New(model.Config{VocabSize: 1000, EmbeddingSize: 16, HiddenSize: 32, NumLayers: 2, NumHeads: 2,
		MaxPositions: 64, Sharing: model.ShareNone, SentenceHead: true}, dev)
	if err != nil {
		t.Fatal(err)
	}
	defer m.VarStore.Destroy()
	c := DefaultConfig()
	c.Precision = prec
	sp, err := NewStepper(m, c)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	var batches []data.Batch
	for i := range 4 {
		batches = append(batches, syntheticBatch(uint64(20+i), 8, 32, 5, 1000))
	}
	k := 0
	next := func() (data.Batch, error) { k++; return batches[k%len(batches)], nil }
	var losses []float64
	start := time.Now()
	for step := 1; step <= steps; step++ {
		lr := 2e-3 * min(1, float64(step)/20) // a short warm-up
		sums, _, err := sp.Step(next, lr, true)
		if err != nil {
			t.Fatalf("%s step %d: %v", prec, step, err)
		}
		losses = append(losses, sums[0])
	}
	perStep := time.Since(start) / time.Duration(steps)
	if check {
		for i, p := range m.Params {
			for what, x := range map[string]*ts.Tensor{"parameter": p.Tensor, "first moment": sp.Opt.m[i], "second moment": sp.Opt.v[i]} {
				if x.DType() != gotch.Float {
					t.Errorf("%s: %s %s is %v after %d steps, want float32 (fp32 master weights and state)", prec, p.Name, what, x.DType(), steps)
				}
			}
		}
	}
	return losses, perStep
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// smoothed is the mean of each step's loss with the 9 before it.
func smoothed(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i := range xs {
		lo, sum := max(0, i-9), 0.0
		for _, x := range xs[max(0, i-9) : i+1] {
			sum += x
		}
		out[i] = sum / float64(i+1-lo)
	}
	return out
}

// The bf16 loss curve tracks fp32's: the same tiny model, seed and batches,
// 200 LAMB steps; the mean absolute difference of the smoothed losses (10-step
// means) over the last 50 steps stays within tolerance. The bf16 curve is
// not fp32's step for step (an autocast that did nothing would leave the
// fused fp32 kernels on, and the same numbers), and its parameters and
// optimizer moments stay fp32 (TestBF16ForwardIsBF16 holds the forward pass
// to bf16 rounding). On CUDA (ALBERT_TEST_DEVICE=cuda) tf32 is held to the
// same tolerance.
//
// Measured on the CPU (libtorch 1.13.1, 2 loaded cores;
// nice -n 15 go test -count=1 -run TestBF16TracksFP32 -v ./train): last-50
// mean |Δ smoothed loss| 1.2e-4 with the loss going 7.61 → 6.06 (first-step
// |Δloss| 1.5e-5: at initialisation the logits are near 0 and the loss near
// ln V whatever the rounding). The tolerance, 0.01 (~0.2% of the loss), is
// ~80× that: room for the GPU's bf16 and TF32 kernels, not for a step that
// trains on stale weights (with autocast's cache of cast weights not cleared
// after each forward pass, measured: 1.3).
func TestBF16TracksFP32(t *testing.T) {
	defer lockThread()()
	const steps, tolerance = 200, 0.01
	dev := testDevice(t)
	fp32, fp32Step := curve(t, dev, PrecisionFP32, steps, false)
	precs := []string{PrecisionBF16}
	if dev.IsCuda() {
		precs = append(precs, PrecisionTF32)
	}
	for _, prec := range precs {
		got, step := curve(t, dev, prec, steps, true)
		first := math.Abs(got[0] - fp32[0])
		a, b := smoothed(fp32), smoothed(got)
		gap := 0.0
		for i := steps - 50; i < steps; i++ {
			gap += math.Abs(a[i]-b[i]) / 50
		}
		t.Logf("%s vs fp32 on %s: first-step |Δloss| %.2g; last-50 mean |Δ smoothed loss| %.2g; smoothed loss at the end %.4f (fp32 %.4f, from %.4f); %.1f ms a step (fp32 %.1f)",
			prec, backend.DeviceName(dev), first, gap, b[steps-1], a[steps-1], fp32[0], ms(step), ms(fp32Step))
		if prec == PrecisionBF16 && slices.Equal(got, fp32) {
			t.Errorf("the bf16 curve equals fp32's step for step: the forward pass did not run in bf16")
		}
		if !(gap <= tolerance) {
			t.Errorf("%s's smoothed loss is %.4f from fp32's over the last 50 steps (tolerance %g)", prec, gap, tolerance)
		}
	}
	if a := smoothed(fp32); !(a[steps-1] < fp32[0]-1) {
		t.Errorf("fp32 loss did not fall: %.4f → %.4f", fp32[0], a[steps-1])
	}
}

// Autocast is off again after a bf16 step and after a forward pass that
// fails inside autocast (gotch's Must ops exit the process on a libtorch
// error, so the failure is a Go panic: a batch without its mask): a dense
// layer afterwards computes in fp32, and the fused kernels apply again.
func TestBF16StepLeavesAutocastOff(t *testing.T) {
	defer lockThread()()
	dev := testDevice(t)
	c := DefaultConfig()
	c.Precision = PrecisionBF16
	sp := smallStepperOn(t, dev, model.Config{VocabSize: 1000, EmbeddingSize: 16, HiddenSize: 32, NumLayers: 2, NumHeads: 2,
		MaxPositions: 64, Sharing: model.ShareAll, SentenceHead: true}, c)
	b := syntheticBatch(1, 4, 16, 3, 1000)
	x := ts.MustOnes([]int64{2, 8}, gotch.Float, dev)
	defer x.MustDrop()
	w := ts.MustOnes([]int64{4, 8}, gotch.Float, dev)
	defer w.MustDrop()
	fp32After := func(what string) {
		t.Helper()
		if kernels.AutocastOn(dev.IsCuda()) {
			t.Fatalf("autocast still on after %s", what)
		}
		none := ts.NewTensor() // no bias
		defer none.MustDrop()
		y := ts.MustLinear(x, w, none)
		defer y.MustDrop()
		if y.DType() != gotch.Float {
			t.Errorf("a linear after %s is %v, want float32", what, y.DType())
		}
		if kernels.Enabled() && !dev.IsCuda() && !kernels.Applies(x) {
			t.Errorf("the fused kernels do not apply after %s", what)
		}
	}
	if _, _, err := sp.Step(func() (data.Batch, error) { return b, nil }, 1e-3, true); err != nil {
		t.Fatal(err)
	}
	fp32After("a step")
	var s backend.Scope
	defer s.Free()
	in := toDevice(&s, b, dev).in
	in.Mask = nil
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%v", r)
			}
		}()
		_, err = forward(&s, sp.Model, in, c, dev)
		return err
	}()
	if err == nil {
		t.Fatal("a forward pass without a mask did not fail")
	}
	fp32After("a failed forward pass (" + err.Error() + ")")
}

// The step's bf16 forward pass computes in bf16: on the same weights and
// batch its logits differ from the fp32 pass's by bf16 rounding (an
// autocast that did nothing differs by 0; fp32 rounding by < 1e-6), and
// they leave in fp32 for the losses.
func TestBF16ForwardIsBF16(t *testing.T) {
	defer lockThread()()
	dev := testDevice(t)
	if err := backend.Seed(4); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	sp := smallStepperOn(t, dev, model.Config{VocabSize: 1000, EmbeddingSize: 16, HiddenSize: 32, NumLayers: 2, NumHeads: 2,
		MaxPositions: 64, Sharing: model.ShareNone, SentenceHead: true}, c)
	var s backend.Scope
	defer s.Free()
	in := toDevice(&s, syntheticBatch(3, 4, 32, 5, 1000), dev).in
	logits := map[string]*ts.Tensor{}
	for _, prec := range []string{PrecisionFP32, PrecisionBF16} {
		c.Precision = prec
		out, err := forward(&s, sp.Model, in, c, dev)
		if err != nil {
			t.Fatal(err)
		}
		if out.MLMLogits.DType() != gotch.Float || out.SentenceLogits.DType() != gotch.Float {
			t.Errorf("%s logits are %v and %v, want float32", prec, out.MLMLogits.DType(), out.SentenceLogits.DType())
		}
		logits[prec] = out.MLMLogits
	}
	a, b := logits[PrecisionFP32], logits[PrecisionBF16]
	diff := backend.Float64s(s.T(s.T(s.T(a.MustSub(b, false)).MustAbs(false)).MustMax(false)))[0]
	scale := backend.Float64s(s.T(s.T(a.MustAbs(false)).MustMax(false)))[0]
	t.Logf("max |Δ logit| bf16 vs fp32: %.3g of max |logit| %.3g", diff, scale)
	if rel := diff / scale; rel < 1e-3 || rel > 0.1 {
		t.Errorf("bf16 logits differ from fp32 by %.3g of their scale: want bf16 rounding, between 1e-3 and 0.1", rel)
	}
}

// bf16 steps free what they make, the autocast cast cache included: after
// warm-up, neither the live gotch handles nor the resident memory grow
// (TestStepsDoNotLeak's check, on the dropout model in bf16).
func TestBF16StepsDoNotLeak(t *testing.T) {
	defer lockThread()()
	if err := backend.Seed(1); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.Precision = PrecisionBF16
	sp := smallStepperOn(t, gotch.CPU, model.Config{VocabSize: 1000, EmbeddingSize: 16, HiddenSize: 32, NumLayers: 2, NumHeads: 2,
		MaxPositions: 64, Sharing: model.ShareAll, HiddenDropout: 0.1, AttentionDropout: 0.1, SentenceHead: true}, c)
	batches := []data.Batch{syntheticBatch(1, 8, 32, 5, 1000), syntheticBatch(2, 8, 32, 5, 1000)}
	k := 0
	next := func() (data.Batch, error) { k++; return batches[k%2], nil }
	checkStepsDoNotLeak(t, sp, next, 50, 200, "bf16 steps")
}

// smallStepperOn is smallStepper on dev.
func smallStepperOn(t *testing.T, dev gotch.Device, mc model.Config, c Config) *Stepper {
	t.Helper()
	m, err := model.New(mc, dev)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.VarStore.Destroy)
	sp, err := NewStepper(m, c)
	if err != nil {
		t.Fatal(fmt.Errorf("stepper in %s on %v: %w", c.PrecisionName(), dev, err))
	}
	t.Cleanup(sp.Close)
	return sp
}

// A bf16 run trains through Run (autocast steps, fp32 evaluation,
// checkpoints), records its precision, and leaves autocast off.
func TestBF16Run(t *testing.T) {
	defer lockThread()()
	job := tinyJob(t, data.ObjectiveSOP, 10)
	job.Train.Precision = PrecisionBF16
	res, err := Run(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	if res.Step != 10 || res.Diverged {
		t.Errorf("result %+v: want 10 steps, not diverged", res)
	}
	if p, err := job.Store.Provenance(job.RunID); err != nil || p.Extra["precision"] != PrecisionBF16 {
		t.Errorf("provenance %+v (%v): want precision bf16", p.Extra, err)
	}
	if ev, _ := job.Store.Evals(job.RunID); ev["mlm_acc"] <= 0 {
		t.Errorf("evals %v: want an MLM accuracy", ev)
	}
	if kernels.AutocastOn(false) {
		t.Error("autocast still on after the run")
	}
}

// CUDA runs in one process share libtorch's TF32 switch: runs that agree
// hold it together, one that wants the other setting is refused while they
// run, and the setting found comes back when the last one ends. (The switch
// is a flag on a CPU-only libtorch, so this runs anywhere.)
func TestTF32SwitchIsShared(t *testing.T) {
	before, err := kernels.SetTF32(false)
	if err != nil {
		t.Fatal(err)
	}
	a, err := holdTF32(PrecisionTF32, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := holdTF32(PrecisionTF32, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holdTF32(PrecisionFP32, false); err == nil || !strings.Contains(err.Error(), "separate exp run") {
		t.Errorf("fp32 while tf32 runs: %v, want a refusal", err)
	}
	a()
	if now, _ := kernels.SetTF32(true); !now {
		t.Error("TF32 off while a tf32 run still holds it")
	}
	b()
	if now, _ := kernels.SetTF32(before); now {
		t.Error("TF32 still on after the last tf32 run ended")
	}
	c, err := holdTF32(PrecisionFP32, false)
	if err != nil {
		t.Fatalf("fp32 after the tf32 runs: %v", err)
	}
	c()
}
