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
	Model   *model.Model
	Opt     *Optimizer
	Train   Config
	sp      *stepper
	release func() // usePrecision's
}

// NewStepper makes an optimizer for m under c, in c's precision on m's
// device (as Run: CheckPrecision, usePrecision). Close frees it.
func NewStepper(m *model.Model, c Config) (*Stepper, error) {
	if c.GradAccum <= 0 {
		c.GradAccum = 1
	}
	if err := c.CheckPrecision(m.Device.IsCuda()); err != nil {
		return nil, err
	}
	release, err := usePrecision(c, m.Device)
	if err != nil {
		return nil, err
	}
	opt, err := NewOptimizer(c, m.Params)
	if err != nil {
		release()
		return nil, err
	}
	return &Stepper{Model: m, Opt: opt, Train: c, sp: newStepper(m, opt, c, m.Device), release: release}, nil
}

// Close frees the optimizer state and gives back the precision's settings.
func (sp *Stepper) Close() {
	sp.Opt.Close()
	sp.sp.close()
	sp.release()
}

// SetWorld makes the steps data-parallel over w: each rank feeds its own
// shard of the global batch (BatchSize/GradAccum/w.Size() rows a
// micro-batch) and the gradients are averaged over the world before the
// update. nil trains alone.
func (sp *Stepper) SetWorld(w World) { sp.sp.world = w }

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
	m       *model.Model
	opt     *Optimizer
	c       Config
	dev     gotch.Device
	params  []*ts.Tensor
	scale   *ts.Scalar // 1/GradAccum
	world   World      // nil: alone
	nScalar *ts.Scalar // the world's size (worldScale)
}

func newStepper(m *model.Model, opt *Optimizer, c Config, dev gotch.Device) *stepper {
	params := make([]*ts.Tensor, len(m.Params))
	for i, p := range m.Params {
		params[i] = p.Tensor
	}
	return &stepper{m: m, opt: opt, c: c, dev: dev, params: params,
		scale: ts.FloatScalar(1 / float64(max(1, c.GradAccum)))}
}

// close frees the stepper's scalars.
func (sp *stepper) close() {
	sp.scale.MustDrop()
	if sp.nScalar != nil {
		sp.nScalar.MustDrop()
	}
}

// step is one optimizer step (see Stepper.Step).
//
// In a world of N ranks each rank's micro-batch is its shard of the global
// one, and the gradients are averaged over the ranks: the update is the one
// a process alone would make from the whole global batch (to float
// rounding), as long as each rank's loss is its share of the global loss
// times N. For the sentence loss (a mean over examples, N equal shards) that
// is the rank's own mean; the MLM loss is Σ w·nll over the global batch's
// Σ w, so each rank divides its numerator by the world's Σ w (one small
// all-reduce per micro-batch) and multiplies by N.
func (sp *stepper) step(next func() (data.Batch, error), lr float64, read bool) ([]float64, int, error) {
	c := sp.c
	var s backend.Scope
	defer s.Free()
	var grads []*ts.Tensor
	var lossSum, mlmSum, sentSum *ts.Tensor
	n, dist := worldSize(sp.world), sp.world != nil
	tokens := 0
	for i := 0; i < c.GradAccum; i++ {
		b, err := next()
		if err != nil {
			return nil, 0, err
		}
		t := toDevice(&s, b, sp.dev)
		tokens += t.tokens
		var den *ts.Tensor // nil: this batch's own Σ w
		if dist {
			if den, err = sp.worldWeights(&s, t); err != nil {
				return nil, 0, err
			}
		}
		out, err := forward(&s, sp.m, t.in, c, sp.dev)
		if err != nil {
			return nil, 0, err
		}
		mlm := mlmLossOver(&s, out.MLMLogits, t, den)
		if n > 1 {
			mlm = s.T(mlm.MustMulScalar(sp.worldScale(), false))
		}
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
	var sums *ts.Tensor
	if read {
		sums = s.T(ts.MustStack([]*ts.Tensor{lossSum, mlmSum, sentSum}, 0))
	}
	if dist { // a world of 1 (exp run --nproc 1) too: the same path as N
		// One all-reduce (bucketed) of every gradient, and of the losses
		// when they are read: every rank then clips and steps identically.
		var xs []*ts.Tensor
		for _, g := range grads {
			if g != nil {
				xs = append(xs, g)
			}
		}
		if sums != nil {
			xs = append(xs, sums)
		}
		if err := sp.world.AllReduceMean(xs); err != nil {
			return nil, 0, fmt.Errorf("train: averaging gradients: %w", err)
		}
	}
	norm, factor := clipGrads(&s, grads, c.ClipNorm)
	sp.opt.step(lr, grads, factor)
	if !read {
		return nil, tokens, nil
	}
	v := backend.Float64s(s.T(ts.MustCat([]*ts.Tensor{sums, s.T(norm.MustReshape([]int64{1}, false))}, 0)))
	k := float64(c.GradAccum)
	return []float64{v[0] / k, v[1] / k, v[2] / k, v[3]}, tokens, nil
}

// worldWeights is the MLM loss's denominator over the world's shards of
// this micro-batch, Σ w + 1e-5, on the device.
func (sp *stepper) worldWeights(s *backend.Scope, t tensors) (*ts.Tensor, error) {
	w := s.T(ts.MustOfSlice([]float32{t.weights}))
	if err := sp.world.AllReduceSum([]*ts.Tensor{w}); err != nil {
		return nil, fmt.Errorf("train: summing the masked tokens over the world: %w", err)
	}
	if sp.dev.IsCuda() {
		w = s.T(w.MustTo(sp.dev, false))
	}
	eps := ts.FloatScalar(1e-5)
	defer eps.MustDrop()
	return s.T(s.T(w.MustSum(gotch.Float, false)).MustAddScalar(eps, false)), nil
}

// worldScale is the world's size as a scalar, made once.
func (sp *stepper) worldScale() *ts.Scalar {
	if sp.nScalar == nil {
		sp.nScalar = ts.FloatScalar(float64(worldSize(sp.world)))
	}
	return sp.nScalar
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
