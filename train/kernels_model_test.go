package train

import (
	"fmt"
	"math"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/data"
	"github.com/reproml/albert/kernels"
	"github.com/reproml/albert/model"
)

// TestFusedKernelsMatchComposedModel checks the whole model, not one kernel
// at a time: the pretraining loss and every parameter's gradient with the
// fused CPU kernels equal those of the composed libtorch ops, for the same
// weights and a batch with padding, both segments and masked positions, in
// every sharing mode (shared layers sum their gradients in the kernels).
func TestFusedKernelsMatchComposedModel(t *testing.T) {
	defer lockThread()()
	if !kernels.Enabled() {
		t.Skip("fused kernels not loaded: " + kernels.Status())
	}
	for _, sharing := range []model.Sharing{model.ShareNone, model.ShareAll, model.ShareAttention, model.ShareFFN} {
		t.Run(string(sharing), func(t *testing.T) {
			backend.Seed(5)
			cfg := model.Config{VocabSize: 50, EmbeddingSize: 16, HiddenSize: 32, NumLayers: 3, NumHeads: 2,
				MaxPositions: 24, Sharing: sharing, SentenceHead: true}.Resolve()
			cfg.HiddenDropout, cfg.AttentionDropout = 0, 0
			m, err := model.New(cfg, gotch.CPU)
			if err != nil {
				t.Fatal(err)
			}
			defer m.VarStore.Destroy()
			b := paddedBatch(4, 24, 3)
			fused, fusedLoss := lossAndGrads(t, m, b)
			restore := kernels.Disable()
			composed, composedLoss := lossAndGrads(t, m, b)
			restore()
			if math.Abs(fusedLoss-composedLoss) > 1e-5*math.Abs(composedLoss) {
				t.Errorf("loss: fused %.7f, composed %.7f", fusedLoss, composedLoss)
			}
			for i, p := range m.Params {
				f, c := fused[i], composed[i]
				var diff, scale float64
				for j := range c {
					diff = max(diff, math.Abs(f[j]-c[j]))
					scale = max(scale, math.Abs(c[j]))
				}
				// The key bias's true gradient is 0 (softmax ignores a
				// constant per query): both paths give rounding noise there.
				if diff > 1e-4*scale+1e-9 {
					t.Errorf("%s: gradient differs by %.3g (largest composed entry %.3g)", p.Name, diff, scale)
				}
			}
		})
	}
}

// paddedBatch is a deterministic batch: the last rows padded, segment B
// from the middle, p masked positions a sequence and alternating labels.
func paddedBatch(size, seq, p int) data.Batch {
	b := data.Batch{Size: size, SeqLen: seq, MaxPred: p}
	for i := range size {
		n := seq - 3*i // real tokens
		for j := range seq {
			b.InputIDs = append(b.InputIDs, int64(5+(i*7+j*3)%40))
			b.SegmentIDs = append(b.SegmentIDs, int64(min(1, j/(n/2+1))))
			b.InputMask = append(b.InputMask, int64(min(1, max(0, n-j))))
		}
		for k := range p {
			b.MaskedPositions = append(b.MaskedPositions, int64(1+k*3+i))
			b.MaskedIDs = append(b.MaskedIDs, int64(5+(i+k*11)%40))
			b.MaskedWeights = append(b.MaskedWeights, 1)
		}
		b.SentenceLabels = append(b.SentenceLabels, int64(i%2))
	}
	return b
}

func lossAndGrads(t *testing.T, m *model.Model, b data.Batch) ([][]float64, float64) {
	t.Helper()
	var s backend.Scope
	defer s.Free()
	tt := toDevice(&s, b, m.Device)
	out := m.Forward(&s, tt.in, true, false)
	loss := s.T(mlmLoss(&s, out.MLMLogits, tt).MustAdd(sentenceLoss(&s, out.SentenceLogits, tt), false))
	params := make([]*ts.Tensor, len(m.Params))
	for i, p := range m.Params {
		params[i] = p.Tensor
	}
	g, err := gradients(loss, params)
	if err != nil {
		t.Fatal(err)
	}
	vals := make([][]float64, len(g))
	for i, gi := range g {
		if gi == nil {
			t.Fatal(fmt.Sprintf("%s: no gradient", m.Params[i].Name))
		}
		vals[i] = backend.Float64s(s.T(gi))
	}
	return vals, backend.Float64s(loss)[0]
}
