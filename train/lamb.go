package train

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/kernels"
	"github.com/reproml/albert/model"
)

// Optimizer is the official ALBERT optimizer family, with its state in
// tensors we own (gotch's optimizers can neither do LAMB nor save state):
//
//	m ← β1·m + (1-β1)·g
//	v ← β2·v + (1-β2)·g²
//	m̂, v̂ ← m, v                      (no bias correction: the official code, the default)
//	m̂, v̂ ← m/(1-β1^t), v/(1-β2^t)    (train.bias_correction: the LAMB paper, PyTorch's AdamW)
//	u ← m̂ / (√v̂ + ε) + wd·w           (decoupled weight decay; not for LayerNorm or bias)
//	r ← ‖w‖ / ‖u‖                     (LAMB's trust ratio; 1 if either norm is 0; not clipped)
//	w ← w - lr·r·u
//
// LAMB (lamb_optimizer.py) applies r to every parameter except LayerNorm and
// bias; AdamW (BERT's AdamWeightDecayOptimizer) is the same update with r = 1.
//
// The update runs one of three ways (Path), all equal to float rounding:
// on the CPU in float32, one fused kernel per parameter (kernels.LAMB);
// on CUDA, the whole update in a few multi-tensor calls per group of
// parameters (kernels.LAMBForeach); else, or with the kernels off
// (ALBERT_KERNELS=off, kernels.Disable) or missing, composed libtorch ops
// per parameter.
type Optimizer struct {
	Name        string // "lamb" or "adamw"
	Beta1       float64
	Beta2       float64
	Eps         float64
	WeightDecay float64
	BiasCorr    bool       // divide the moments by 1-β^t
	t           int64      // updates applied so far
	tt          *ts.Tensor // t as a float64 [1] tensor for checkpoints (opt_t)
	params      []model.Param
	m, v        []*ts.Tensor
	c1, c2      *ts.Scalar // 1-β1, 1-β2
	eps, wd     *ts.Scalar
	zeroS       *ts.Scalar
	one, zero   *ts.Tensor
	fused       bool // kernels.LAMB instead of composed ops (CPU float32)
	foreach     bool // else kernels.LAMBForeach (CUDA)
}

// The update paths Path names.
const (
	PathFused    = "fused"    // kernels.LAMB, one call per parameter (CPU float32)
	PathForeach  = "foreach"  // kernels.LAMBForeach, one call per group of parameters (CUDA)
	PathComposed = "composed" // libtorch ops, 7-15 per parameter
)

// forceForeach makes every optimizer that would run the composed ops run
// kernels.LAMBForeach instead, the CPU included: for tests, which compare
// the paths on the CPU and run the composed-path tests through it.
var forceForeach bool

// Path names how Step updates: PathFused, PathForeach or PathComposed.
func (o *Optimizer) Path() string {
	switch {
	case o.fused:
		return PathFused
	case o.foreach || forceForeach:
		return PathForeach
	}
	return PathComposed
}

// NewOptimizer makes zeroed moments for every parameter.
func NewOptimizer(c Config, params []model.Param) (*Optimizer, error) {
	if c.Optimizer != "lamb" && c.Optimizer != "adamw" {
		return nil, fmt.Errorf("train: unknown optimizer %q", c.Optimizer)
	}
	o := &Optimizer{Name: c.Optimizer, Beta1: c.Beta1, Beta2: c.Beta2, Eps: c.Eps, WeightDecay: c.WeightDecay,
		BiasCorr: c.BiasCorrection, params: params}
	for _, p := range params {
		o.m = append(o.m, p.Tensor.MustZerosLike(false))
		o.v = append(o.v, p.Tensor.MustZerosLike(false))
	}
	o.c1, o.c2 = ts.FloatScalar(1-c.Beta1), ts.FloatScalar(1-c.Beta2)
	o.eps, o.wd = ts.FloatScalar(c.Eps), ts.FloatScalar(c.WeightDecay)
	o.zeroS = ts.FloatScalar(0)
	dev := params[0].Tensor.MustDevice()
	o.one = ts.MustOnes([]int64{1}, gotch.Float, dev)
	o.zero = ts.MustZeros([]int64{1}, gotch.Float, dev)
	o.tt = ts.MustZeros([]int64{1}, gotch.Double, gotch.CPU)
	o.fused = true
	same := true // one device and dtype, as the multi-tensor update needs
	for _, p := range params {
		o.fused = o.fused && kernels.Applies(p.Tensor)
		same = same && p.Tensor.MustDevice() == dev && p.Tensor.DType() == params[0].Tensor.DType()
	}
	// Only on CUDA: on the CPU the fused kernel is faster, and where it does
	// not apply the composed ops stay, so CPU runs keep their results.
	o.foreach = !o.fused && same && dev.IsCuda() && kernels.ForeachEnabled()
	return o, nil
}

// Step applies one update with learning rate lr, reading each parameter's
// gradient (already clipped). Tensors it makes are freed before it returns.
func (o *Optimizer) Step(lr float64) {
	var s backend.Scope
	defer s.Free()
	grads := make([]*ts.Tensor, len(o.params))
	for i, p := range o.params {
		if g := s.T(p.Tensor.MustGrad(false)); g.MustDefined() {
			grads[i] = g
		}
	}
	o.step(lr, grads, nil)
}

// step is Step with the gradients given (nil: the parameter has none),
// each to be multiplied by gscale (the clipping factor, one element) unless
// it is nil. On the CPU it is one kernels.LAMB call per parameter: two
// passes over memory. On CUDA it is one kernels.LAMBForeach call per group
// (stepForeach). Otherwise, per parameter it is 7 tensor ops, 15 with
// decay and the trust ratio, and nothing it makes outlives it:
//
//	m.lerp_(g, 1-β1)                  m ← β1·m + (1-β1)·g
//	v.lerp_(g², 1-β2)                 v ← β2·v + (1-β2)·g²
//	den = sqrt(v) + ε
//	u = wd·w; u.addcdiv_(m, den)      u ← m/den + wd·w    (decay)
//	w.addcmul_(u, -lr·r)              w ← w - lr·r·u
//
// lerp rounds differently from β·a + (1-β)·b: results agree to float
// rounding (TestLAMBHandComputed holds to 2e-5, as before).
func (o *Optimizer) step(lr float64, grads []*ts.Tensor, gscale *ts.Tensor) {
	o.t++
	mc, vc := o.corrections()
	if o.Path() == PathForeach {
		o.stepForeach(lr, grads, gscale, mc, vc)
		return
	}
	if o.fused {
		for i, p := range o.params {
			if grads[i] == nil {
				continue
			}
			a := kernels.LAMBArgs{LR: lr, Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps,
				TrustRatio: p.Decay && o.Name == "lamb", MCorr: mc, VCorr: vc}
			if p.Decay {
				a.WeightDecay = o.WeightDecay
			}
			if err := kernels.LAMB(p.Tensor, grads[i], o.m[i], o.v[i], gscale, a); err != nil {
				panic(fmt.Errorf("train: %s: %w", p.Name, err)) // tensors this package made: a bug, not input
			}
		}
		return
	}
	var s backend.Scope
	defer s.Free()
	backend.NoGrad(func() {
		neg := ts.FloatScalar(-lr)
		defer neg.MustDrop()
		var mcS, vcS *ts.Scalar
		if o.BiasCorr {
			mcS, vcS = ts.FloatScalar(mc), ts.FloatScalar(vc)
			defer mcS.MustDrop()
			defer vcS.MustDrop()
		}
		negLR := s.T(o.one.MustMulScalar(neg, false)) // [1]: -lr as a tensor, for addcmul_
		// Each parameter's temporaries go before the next one's: at most one
		// parameter-sized set alive (holding them all to the end of the
		// step cost 1.3 GB of peak RSS on base-none).
		var ps backend.Scope
		defer ps.Free()
		for i, p := range o.params {
			g := grads[i]
			if g == nil {
				continue // not used by this objective (e.g. no sentence loss)
			}
			ps.Free()
			s := &ps
			if gscale != nil {
				g = s.T(g.MustMul(gscale, false))
			}
			m, v, w := o.m[i], o.v[i], p.Tensor
			inPlace(m, func() { m.MustLerp_(g, o.c1) })
			inPlace(v, func() { v.MustLerp_(s.T(g.MustSquare(false)), o.c2) })
			mh, vh := m, v // m̂, v̂
			if o.BiasCorr {
				mh, vh = s.T(m.MustMulScalar(mcS, false)), s.T(v.MustMulScalar(vcS, false))
			}
			den := s.T(vh.MustSqrt(false))
			inPlace(den, func() { den.MustAddScalar_(o.eps) })
			var u *ts.Tensor
			if p.Decay && o.WeightDecay != 0 {
				u = s.T(w.MustMulScalar(o.wd, false))
				inPlace(u, func() { u.MustAddcdiv_(mh, den) })
			} else {
				u = s.T(mh.MustDiv(den, false))
			}
			scale := negLR
			if p.Decay && o.Name == "lamb" {
				scale = s.T(o.trustRatio(s, w, u).MustMul(negLR, false))
			}
			inPlace(w, func() { w.MustAddcmul_(u, scale) })
		}
	})
}

// stepForeach is step in kernels.LAMBForeach, one call for each group of
// parameters that share the weight decay and the trust ratio: in practice
// two, the matrices (decay unless it is 0; under LAMB the trust ratio) and
// LayerNorm and bias (neither). Parameters without a gradient are left out.
func (o *Optimizer) stepForeach(lr float64, grads []*ts.Tensor, gscale *ts.Tensor, mc, vc float64) {
	type group struct{ w, g, m, v []*ts.Tensor }
	var groups [2][2]group // [decay][trust ratio]
	for i, p := range o.params {
		if grads[i] == nil {
			continue
		}
		d, r := 0, 0
		if p.Decay && o.WeightDecay != 0 {
			d = 1
		}
		if p.Decay && o.Name == "lamb" {
			r = 1
		}
		gr := &groups[d][r]
		gr.w, gr.g = append(gr.w, p.Tensor), append(gr.g, grads[i])
		gr.m, gr.v = append(gr.m, o.m[i]), append(gr.v, o.v[i])
	}
	for d := range groups {
		for r, gr := range groups[d] {
			if len(gr.w) == 0 {
				continue
			}
			a := kernels.LAMBArgs{LR: lr, Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps, TrustRatio: r == 1, MCorr: mc, VCorr: vc}
			if d == 1 {
				a.WeightDecay = o.WeightDecay
			}
			if err := kernels.LAMBForeach(gr.w, gr.g, gr.m, gr.v, gscale, a); err != nil {
				panic(fmt.Errorf("train: the multi-tensor update: %w", err)) // tensors this package made: a bug, not input
			}
		}
	}
}

// corrections are the factors m̂ = mc·m and v̂ = vc·v of update o.t:
// 1/(1-β^t) with bias correction, 1 without.
func (o *Optimizer) corrections() (mc, vc float64) {
	if !o.BiasCorr {
		return 1, 1
	}
	t := float64(o.t)
	return 1 / (1 - math.Pow(o.Beta1, t)), 1 / (1 - math.Pow(o.Beta2, t))
}

// trustRatio is ‖w‖/‖u‖, or 1 where either norm is 0.
func (o *Optimizer) trustRatio(s *backend.Scope, w, u *ts.Tensor) *ts.Tensor {
	wn := s.T(w.MustNorm(false))
	un := s.T(u.MustNorm(false))
	ok := s.T(s.T(wn.MustMinimum(un, false)).MustGt(o.zeroS, false))
	return s.T(s.T(wn.MustDiv(un, false)).MustWhereSelf(ok, o.one, false))
}

// State lists the update count (opt_t, which bias correction needs) and the
// moments as named tensors for a checkpoint; the optimizer owns them.
func (o *Optimizer) State() []ts.NamedTensor {
	backend.NoGrad(func() { o.tt.MustFill_(ts.FloatScalar(float64(o.t))) })
	out := []ts.NamedTensor{{Name: "opt_t", Tensor: o.tt}}
	for i, p := range o.params {
		out = append(out, ts.NamedTensor{Name: "opt_m/" + p.Name, Tensor: o.m[i]}, ts.NamedTensor{Name: "opt_v/" + p.Name, Tensor: o.v[i]})
	}
	return out
}

// Load copies the state saved by State. A checkpoint without opt_t (saved
// before bias correction existed) loads only without bias correction.
func (o *Optimizer) Load(named map[string]*ts.Tensor) error {
	switch t, ok := named["opt_t"]; {
	case ok:
		o.t = int64(backend.Float64s(t)[0])
	case o.BiasCorr:
		return fmt.Errorf("train: checkpoint has no opt_t (update count), which bias correction needs")
	}
	for i, p := range o.params {
		for _, pair := range []struct {
			key string
			dst *ts.Tensor
		}{{"opt_m/" + p.Name, o.m[i]}, {"opt_v/" + p.Name, o.v[i]}} {
			src, ok := named[pair.key]
			if !ok {
				return fmt.Errorf("train: checkpoint has no %s", pair.key)
			}
			backend.NoGrad(func() { pair.dst.Copy_(src) })
		}
	}
	return nil
}

// Close frees the moments.
func (o *Optimizer) Close() {
	for i := range o.m {
		o.m[i].MustDrop()
		o.v[i].MustDrop()
	}
	o.one.MustDrop()
	o.zero.MustDrop()
	o.tt.MustDrop()
}
