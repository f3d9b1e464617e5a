package train

import (
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/data"
	"github.com/reproml/albert/model"
)

// Stepper is one optimizer step of a model — forward, backward over
// GradAccum micro-batches, clipping, the optimizer update — without the
// loop's data, logging and checkpoints: what Run does each step, exposed for
// benchmarks (`exp bench`) that feed it synthetic batches.
type Stepper struct {
	Model *model.Model
	Opt   *Optimizer
	Train Config
	dev   gotch.Device
}

// NewStepper makes an optimizer for m under c. Close frees it.
func NewStepper(m *model.Model, c Config) (*Stepper, error) {
	if c.GradAccum <= 0 {
		c.GradAccum = 1
	}
	opt, err := NewOptimizer(c, m.Params)
	if err != nil {
		return nil, err
	}
	return &Stepper{Model: m, Opt: opt, Train: c, dev: m.Device}, nil
}

// Close frees the optimizer state.
func (sp *Stepper) Close() { sp.Opt.Close() }

// Step runs one optimizer step at learning rate lr over GradAccum batches
// from next, on a locked OS thread. With read, it returns [loss, mlm loss,
// sentence loss, grad norm] (the step's only device sync); otherwise nothing
// is copied back to the host. It also returns the real tokens seen.
func (sp *Stepper) Step(next func() (data.Batch, error), lr float64, read bool) (sums []float64, tokens int, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("train: %v", r)
		}
	}()
	return runStep(sp.Model, sp.Opt, sp.Train, sp.dev, next, lr, read)
}

// runStep is one optimizer step (see Stepper.Step).
func runStep(m *model.Model, opt *Optimizer, c Config, dev gotch.Device, next func() (data.Batch, error), lr float64, read bool) ([]float64, int, error) {
	var s backend.Scope
	defer s.Free()
	zeroGrad(&s, m.Params)
	var lossSum, mlmSum, sentSum *ts.Tensor
	tokens := 0
	scale := ts.FloatScalar(1 / float64(c.GradAccum))
	for i := 0; i < c.GradAccum; i++ {
		b, err := next()
		if err != nil {
			return nil, 0, err
		}
		t := toDevice(&s, b, dev)
		tokens += t.tokens
		out := m.Forward(&s, t.in, true, false)
		mlm := mlmLoss(&s, out.MLMLogits, t)
		loss := mlm
		sent := mlm // placeholder when there is no sentence head
		if out.SentenceLogits != nil {
			sent = sentenceLoss(&s, out.SentenceLogits, t)
			loss = s.T(mlm.MustAdd(sent, false))
		}
		s.T(loss.MustMulScalar(scale, false)).MustBackward()
		if read {
			lossSum, mlmSum, sentSum = acc(&s, lossSum, loss), acc(&s, mlmSum, mlm), acc(&s, sentSum, sent)
		}
	}
	norm := clipGradNorm(&s, m.Params, c.ClipNorm)
	opt.Step(lr)
	if !read {
		return nil, tokens, nil
	}
	v := s.T(s.T(ts.MustStack([]*ts.Tensor{lossSum, mlmSum, sentSum, norm}, 0)).MustTo(gotch.CPU, false)).Float64Values()
	k := float64(c.GradAccum)
	return []float64{v[0] / k, v[1] / k, v[2] / k, v[3]}, tokens, nil
}
