package train

import (
	"math"
	"testing"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/data"
	"github.com/reproml/albert/kernels"
	"github.com/reproml/albert/model"
)

// Gradient accumulation: two micro-batches of 4 give the same update as one
// batch of 8 (equal prediction counts, so the means agree).
func TestGradAccumMatchesOneBatch(t *testing.T) {
	defer lockThread()()
	mc := model.Config{VocabSize: 1000, EmbeddingSize: 16, HiddenSize: 32, NumLayers: 2, NumHeads: 2,
		MaxPositions: 64, Sharing: model.ShareAll, SentenceHead: true}
	b1, b2 := syntheticBatch(5, 4, 32, 5, 1000), syntheticBatch(6, 4, 32, 5, 1000)
	both := data.Batch{Size: 8, SeqLen: 32, MaxPred: 5,
		InputIDs: append(append([]int64{}, b1.InputIDs...), b2.InputIDs...), SegmentIDs: append(append([]int64{}, b1.SegmentIDs...), b2.SegmentIDs...),
		InputMask: append(append([]int64{}, b1.InputMask...), b2.InputMask...), MaskedPositions: append(append([]int64{}, b1.MaskedPositions...), b2.MaskedPositions...),
		MaskedIDs: append(append([]int64{}, b1.MaskedIDs...), b2.MaskedIDs...), MaskedWeights: append(append([]float32{}, b1.MaskedWeights...), b2.MaskedWeights...),
		SentenceLabels: append(append([]int64{}, b1.SentenceLabels...), b2.SentenceLabels...)}
	run := func(accum int, batches ...data.Batch) (*model.Model, []float64) {
		if err := backend.Seed(7); err != nil {
			t.Fatal(err)
		}
		c := DefaultConfig()
		c.GradAccum = accum
		sp := smallStepper(t, mc, c)
		k := 0
		sums, _, err := sp.Step(func() (data.Batch, error) { k++; return batches[k-1], nil }, 1e-3, true)
		if err != nil {
			t.Fatal(err)
		}
		return sp.Model, sums
	}
	ma, sa := run(2, b1, b2)
	mb, sb := run(1, both)
	for i, name := range []string{"loss", "mlm", "sentence", "grad norm"} {
		if math.Abs(sa[i]-sb[i]) > 1e-5*math.Max(1, math.Abs(sb[i])) {
			t.Errorf("%s: %v accumulated over 2 micro-batches, %v in one batch", name, sa[i], sb[i])
		}
	}
	for i, p := range ma.Params {
		d := p.Tensor.MustSub(mb.Params[i].Tensor, false)
		diff := d.MustAbs(true).MustMax(true).Float64Values()[0]
		if diff > 1e-6 {
			t.Errorf("%s differs by %g after one step", p.Name, diff)
		}
	}
}

// Training with the fused kernels follows the composed ops: the same losses
// and gradient norms over 20 LAMB steps with dropout (same masks), to float
// rounding. Sharing all also checks kernels.Linear's summed gradients of the
// shared layer.
func TestFusedKernelsTrainLikeComposed(t *testing.T) {
	defer lockThread()()
	if !kernels.Enabled() {
		t.Skip(kernels.Status())
	}
	for _, sharing := range []model.Sharing{model.ShareNone, model.ShareAll} {
		run := func() [][]float64 {
			if err := backend.Seed(3); err != nil {
				t.Fatal(err)
			}
			sp, next := dropoutStepper(t, sharing)
			var out [][]float64
			for step := 0; step < 20; step++ {
				if err := backend.Seed(int64(step) + 10); err != nil { // as the loop: dropout seeded per step
					t.Fatal(err)
				}
				sums, _, err := sp.Step(next, 1e-3, true)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, sums)
			}
			return out
		}
		fused := run()
		restore := kernels.Disable()
		composed := run()
		restore()
		for step := range fused {
			for i, name := range []string{"loss", "mlm", "sentence", "grad norm"} {
				f, c := fused[step][i], composed[step][i]
				// measured: ≤ 6e-8; a GELU backward off by 1% gives 1.3e-5
				if math.Abs(f-c) > 1e-6*(1+math.Abs(c)) {
					t.Fatalf("sharing %s, step %d %s: fused %.7g, composed %.7g", sharing, step, name, f, c)
				}
			}
		}
		if fused[19][0] >= fused[0][0] {
			t.Fatalf("sharing %s: loss did not fall: %g → %g", sharing, fused[0][0], fused[19][0])
		}
	}
}
