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
func (sp *Stepper) Close() {
	sp.sp.close()
	sp.Opt.Close()
}

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

// stepper runs the steps of one model and optimizer. It holds the
// parameters' gradient tensors once backward has defined them: libtorch
// accumulates into a defined gradient in place, so the same tensors serve
// every later step, and zeroing, clipping and the update need no per-step
// lookups.
type stepper struct {
	m     *model.Model
	opt   *Optimizer
	c     Config
	dev   gotch.Device
	grads []*ts.Tensor // per parameter; nil until defined
	scale *ts.Scalar   // 1/GradAccum
}

func newStepper(m *model.Model, opt *Optimizer, c Config, dev gotch.Device) *stepper {
	return &stepper{m: m, opt: opt, c: c, dev: dev, grads: make([]*ts.Tensor, len(m.Params)),
		scale: ts.FloatScalar(1 / float64(max(1, c.GradAccum)))}
}

func (sp *stepper) close() {
	for i, g := range sp.grads {
		if g != nil {
			g.MustDrop()
			sp.grads[i] = nil
		}
	}
}

// zero sets the held gradients to 0 (backward then accumulates into them).
func (sp *stepper) zero() {
	backend.NoGrad(func() {
		for _, g := range sp.grads {
			if g != nil {
				inPlace(g, func() { g.MustZero_() })
			}
		}
	})
}

// hold picks up gradients that backward has newly defined.
func (sp *stepper) hold() {
	for i, p := range sp.m.Params {
		if sp.grads[i] != nil {
			continue
		}
		g := p.Tensor.MustGrad(false)
		if g.MustDefined() {
			sp.grads[i] = g
		} else {
			g.MustDrop()
		}
	}
}

// step is one optimizer step (see Stepper.Step).
func (sp *stepper) step(next func() (data.Batch, error), lr float64, read bool) ([]float64, int, error) {
	c := sp.c
	var s backend.Scope
	defer s.Free()
	sp.zero()
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
		if c.GradAccum > 1 {
			s.T(loss.MustMulScalar(sp.scale, false)).MustBackward()
		} else {
			loss.MustBackward()
		}
		if read {
			lossSum, mlmSum, sentSum = acc(&s, lossSum, loss), acc(&s, mlmSum, mlm), acc(&s, sentSum, sent)
		}
	}
	sp.hold()
	norm := clipGrads(&s, sp.grads, c.ClipNorm)
	sp.opt.step(lr, sp.grads)
	if !read {
		return nil, tokens, nil
	}
	v := backend.Float64s(s.T(ts.MustStack([]*ts.Tensor{lossSum, mlmSum, sentSum, norm}, 0)))
	k := float64(c.GradAccum)
	return []float64{v[0] / k, v[1] / k, v[2] / k, v[3]}, tokens, nil
}
