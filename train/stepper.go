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
	sp    *stepper
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
	return &Stepper{Model: m, Opt: opt, Train: c, sp: newStepper(m, opt, c, m.Device)}, nil
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
	return sp.sp.step(next, lr, read)
}

// stepper runs the steps of one model and optimizer. Gradients are new
// tensors each step (gradients): allocated during backward, freed after the
// update, never zeroed.
type stepper struct {
	m      *model.Model
	opt    *Optimizer
	c      Config
	dev    gotch.Device
	params []*ts.Tensor
	scale  *ts.Scalar // 1/GradAccum
}

func newStepper(m *model.Model, opt *Optimizer, c Config, dev gotch.Device) *stepper {
	params := make([]*ts.Tensor, len(m.Params))
	for i, p := range m.Params {
		params[i] = p.Tensor
	}
	return &stepper{m: m, opt: opt, c: c, dev: dev, params: params,
		scale: ts.FloatScalar(1 / float64(max(1, c.GradAccum)))}
}

// step is one optimizer step (see Stepper.Step).
func (sp *stepper) step(next func() (data.Batch, error), lr float64, read bool) ([]float64, int, error) {
	c := sp.c
	var s backend.Scope
	defer s.Free()
	var grads []*ts.Tensor
	var lossSum, mlmSum, sentSum *ts.Tensor
	tokens := 0
	for i := 0; i < c.GradAccum; i++ {
		b, err := next()
		if err != nil {
			return nil, 0, err
		}
		t := toDevice(&s, b, sp.dev)
		tokens += t.tokens
		out := sp.m.Forward(&s, t.in, true, false)
		mlm := mlmLoss(&s, out.MLMLogits, t)
		loss := mlm
		sent := mlm // placeholder when there is no sentence head
		if out.SentenceLogits != nil {
			sent = sentenceLoss(&s, out.SentenceLogits, t)
			loss = s.T(mlm.MustAdd(sent, false))
		}
		scaled := loss
		if c.GradAccum > 1 {
			scaled = s.T(loss.MustMulScalar(sp.scale, false))
		}
		g, err := gradients(scaled, sp.params)
		if err != nil {
			return nil, 0, err
		}
		grads = accumulate(&s, grads, g)
		if read {
			lossSum, mlmSum, sentSum = acc(&s, lossSum, loss), acc(&s, mlmSum, mlm), acc(&s, sentSum, sent)
		}
	}
	norm, factor := clipGrads(&s, grads, c.ClipNorm)
	sp.opt.step(lr, grads, factor)
	if !read {
		return nil, tokens, nil
	}
	v := backend.Float64s(s.T(ts.MustStack([]*ts.Tensor{lossSum, mlmSum, sentSum, norm}, 0)))
	k := float64(c.GradAccum)
	return []float64{v[0] / k, v[1] / k, v[2] / k, v[3]}, tokens, nil
}

// accumulate adds a micro-batch's gradients g into sum (the first
// micro-batch's become the sum) and hands every tensor to s.
func accumulate(s *backend.Scope, sum, g []*ts.Tensor) []*ts.Tensor {
	if sum == nil {
		for _, t := range g {
			if t != nil {
				s.T(t)
			}
		}
		return g
	}
	backend.NoGrad(func() {
		for i, t := range g {
			switch {
			case t == nil:
			case sum[i] == nil:
				sum[i] = s.T(t)
			default:
				inPlace(sum[i], func() { sum[i].MustAdd_(t) })
				t.MustDrop()
			}
		}
	})
	return sum
}
