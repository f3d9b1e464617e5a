package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/data"
	"github.com/reproml/albert/model"
)

// SmokeResult is what Smoke measured.
type SmokeResult struct {
	Device    string    `json:"device"`
	Losses    []float64 `json:"losses"`
	MsPerStep float64   `json:"ms_per_step"`
}

// Smoke trains a tiny ALBERT for a few LAMB steps on one fixed synthetic
// batch on dev: a check that forward, backward and the optimizer run on a
// device (`exp doctor --train-step`), needing no corpus. The loss must be
// finite and fall.
func Smoke(device string, steps int) (SmokeResult, error) {
	defer backend.LockThread()()
	dev, err := backend.Device(device)
	if err != nil {
		return SmokeResult{}, err
	}
	res := SmokeResult{Device: backend.DeviceName(dev)}
	if err := backend.Seed(1); err != nil {
		return res, err
	}
	mc := model.Config{VocabSize: 1000, EmbeddingSize: 32, HiddenSize: 64, NumLayers: 2, NumHeads: 2,
		MaxPositions: 64, Sharing: model.ShareAll, SentenceHead: true}
	m, err := model.New(mc, dev)
	if err != nil {
		return res, err
	}
	defer m.VarStore.Destroy()
	tc := DefaultConfig()
	tc.LR = 0.01
	opt, err := NewOptimizer(tc, m.Params)
	if err != nil {
		return res, err
	}
	defer opt.Close()
	b := syntheticBatch(1, 8, 32, 5, mc.VocabSize)
	st := &state{m: m, opt: opt, dev: dev, job: Job{Train: tc}}
	var total time.Duration
	for i := 0; i < steps; i++ {
		start := time.Now()
		loss, err := st.fixedStep(b)
		if err != nil {
			return res, err
		}
		if i > 0 { // the first step includes one-time set-up (CUDA context, kernels)
			total += time.Since(start)
		}
		res.Losses = append(res.Losses, loss)
	}
	if steps > 1 {
		res.MsPerStep = float64(total.Microseconds()) / 1000 / float64(steps-1)
	}
	first, last := res.Losses[0], res.Losses[len(res.Losses)-1]
	if math.IsNaN(last) || math.IsInf(last, 0) || !(last < first) {
		return res, fmt.Errorf("train: smoke on %s: loss %v → %v did not fall", res.Device, first, last)
	}
	return res, nil
}

// fixedStep is one optimizer step on batch b, returning its loss.
func (st *state) fixedStep(b data.Batch) (float64, error) {
	if st.sp == nil {
		st.sp = newStepper(st.m, st.opt, Config{GradAccum: 1, ClipNorm: 1}, st.dev)
	}
	sums, _, err := st.sp.step(func() (data.Batch, error) { return b, nil }, 0.01, true)
	if err != nil {
		return 0, err
	}
	return sums[0], nil
}

// syntheticBatch is a random batch, fixed by seed, with real-looking masking.
func syntheticBatch(seed uint64, batch, seq, preds, vocab int) data.Batch {
	r := rand.New(rand.NewPCG(seed, 2))
	b := data.Batch{Size: batch, SeqLen: seq, MaxPred: preds}
	for i := 0; i < batch; i++ {
		for j := 0; j < seq; j++ {
			b.InputIDs = append(b.InputIDs, int64(5+r.IntN(vocab-5)))
			seg := int64(0)
			if j >= seq/2 {
				seg = 1
			}
			b.SegmentIDs = append(b.SegmentIDs, seg)
			b.InputMask = append(b.InputMask, 1)
		}
		for k := 0; k < preds; k++ {
			b.MaskedPositions = append(b.MaskedPositions, int64(1+k*(seq-2)/preds))
			b.MaskedIDs = append(b.MaskedIDs, int64(5+r.IntN(vocab-5)))
			b.MaskedWeights = append(b.MaskedWeights, 1)
		}
		b.SentenceLabels = append(b.SentenceLabels, int64(r.IntN(2)))
	}
	return b
}
