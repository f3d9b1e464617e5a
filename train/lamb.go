package train

import (
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/model"
)

// Optimizer is the official ALBERT optimizer family, with its state in
// tensors we own (gotch's optimizers can neither do LAMB nor save state):
//
//	m ← β1·m + (1-β1)·g
//	v ← β2·v + (1-β2)·g²              (no bias correction, as the official code)
//	u ← m / (√v + ε) + wd·w           (decoupled weight decay; not for LayerNorm or bias)
//	r ← ‖w‖ / ‖u‖                     (LAMB's trust ratio; 1 if either norm is 0; not clipped)
//	w ← w - lr·r·u
//
// LAMB (lamb_optimizer.py) applies r to every parameter except LayerNorm and
// bias; AdamW (BERT's AdamWeightDecayOptimizer) is the same update with r = 1.
type Optimizer struct {
	Name        string // "lamb" or "adamw"
	Beta1       float64
	Beta2       float64
	Eps         float64
	WeightDecay float64
	params      []model.Param
	m, v        []*ts.Tensor
	b1, b2      *ts.Scalar // β1, β2
	c1, c2      *ts.Scalar // 1-β1, 1-β2
	eps, wd     *ts.Scalar
	zeroS       *ts.Scalar
	one, zero   *ts.Tensor
}

// NewOptimizer makes zeroed moments for every parameter.
func NewOptimizer(c Config, params []model.Param) (*Optimizer, error) {
	if c.Optimizer != "lamb" && c.Optimizer != "adamw" {
		return nil, fmt.Errorf("train: unknown optimizer %q", c.Optimizer)
	}
	o := &Optimizer{Name: c.Optimizer, Beta1: c.Beta1, Beta2: c.Beta2, Eps: c.Eps, WeightDecay: c.WeightDecay, params: params}
	for _, p := range params {
		o.m = append(o.m, p.Tensor.MustZerosLike(false))
		o.v = append(o.v, p.Tensor.MustZerosLike(false))
	}
	o.b1, o.b2 = ts.FloatScalar(c.Beta1), ts.FloatScalar(c.Beta2)
	o.c1, o.c2 = ts.FloatScalar(1-c.Beta1), ts.FloatScalar(1-c.Beta2)
	o.eps, o.wd = ts.FloatScalar(c.Eps), ts.FloatScalar(c.WeightDecay)
	o.zeroS = ts.FloatScalar(0)
	dev := params[0].Tensor.MustDevice()
	o.one = ts.MustOnes([]int64{1}, gotch.Float, dev)
	o.zero = ts.MustZeros([]int64{1}, gotch.Float, dev)
	return o, nil
}

// Step applies one update with learning rate lr, reading each parameter's
// gradient (already clipped). Tensors it makes are freed before it returns.
func (o *Optimizer) Step(lr float64) {
	var s backend.Scope
	defer s.Free()
	lrS := ts.FloatScalar(lr)
	backend.NoGrad(func() {
		for i, p := range o.params {
			g := s.T(p.Tensor.MustGrad(false))
			if !g.MustDefined() {
				continue // not used by this objective (e.g. no sentence loss)
			}
			m, v, w := o.m[i], o.v[i], p.Tensor
			m.MustMulScalar_(o.b1)
			m.MustAdd_(s.T(g.MustMulScalar(o.c1, false)))
			v.MustMulScalar_(o.b2)
			v.MustAdd_(s.T(s.T(g.MustSquare(false)).MustMulScalar(o.c2, false)))
			den := s.T(s.T(v.MustSqrt(false)).MustAddScalar(o.eps, false))
			u := s.T(m.MustDiv(den, false))
			if p.Decay && o.WeightDecay != 0 {
				u.MustAdd_(s.T(w.MustMulScalar(o.wd, false)))
			}
			if p.Decay && o.Name == "lamb" {
				u.MustMul_(o.trustRatio(&s, w, u))
			}
			u.MustMulScalar_(lrS)
			w.MustSub_(u)
		}
	})
}

// trustRatio is ‖w‖/‖u‖, or 1 where either norm is 0.
func (o *Optimizer) trustRatio(s *backend.Scope, w, u *ts.Tensor) *ts.Tensor {
	wn := s.T(w.MustNorm(false))
	un := s.T(u.MustNorm(false))
	ok := s.T(s.T(wn.MustGt(o.zeroS, false)).MustLogicalAnd(s.T(un.MustGt(o.zeroS, false)), false))
	r := s.T(wn.MustDiv(s.T(un.MustWhereSelf(ok, o.one, false)), false))
	return s.T(r.MustWhereSelf(ok, o.one, false))
}

// State lists the moments as named tensors for a checkpoint.
func (o *Optimizer) State() []ts.NamedTensor {
	var out []ts.NamedTensor
	for i, p := range o.params {
		out = append(out, ts.NamedTensor{Name: "opt_m/" + p.Name, Tensor: o.m[i]}, ts.NamedTensor{Name: "opt_v/" + p.Name, Tensor: o.v[i]})
	}
	return out
}

// Load copies moments saved by State.
func (o *Optimizer) Load(named map[string]*ts.Tensor) error {
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
}
