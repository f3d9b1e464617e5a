package train

import (
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
)

// Apply is one optimizer step from a scalar loss, for trainers outside this
// package (fine-tuning): the gradients of loss with respect to the
// optimizer's parameters (asked of the autograd engine as new tensors, see
// gradients), clipped to the global norm clipNorm (0: no clipping), then the
// update at learning rate lr. The gradients belong to s, as does the
// returned global norm before clipping (a [1]-element tensor, on the device).
func (o *Optimizer) Apply(s *backend.Scope, loss *ts.Tensor, lr, clipNorm float64) (*ts.Tensor, error) {
	params := make([]*ts.Tensor, len(o.params))
	for i, p := range o.params {
		params[i] = p.Tensor
	}
	grads, err := gradients(loss, params)
	if err != nil {
		return nil, err
	}
	for _, g := range grads {
		if g != nil {
			s.T(g)
		}
	}
	norm, factor := clipGrads(s, grads, clipNorm)
	o.step(lr, grads, factor)
	return norm, nil
}
