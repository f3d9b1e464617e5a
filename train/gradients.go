package train

import (
	"fmt"

	"github.com/sugarme/gotch/ts"

	lib "github.com/sugarme/gotch/libtch"
)

// gradients runs backward from the scalar loss and returns d loss/d p for
// each of params, as new tensors the caller owns; nil where the loss does not
// depend on p (the pooler and sentence head of an MLM-only model).
//
// This is torch.autograd.grad, not loss.backward(): nothing accumulates into
// p.grad, so no gradient buffer lives between steps. With backward(), the
// gradients of the last step stay allocated (and must be zeroed) through the
// next forward pass, when the activations are alive too; here each gradient
// is allocated during backward, as activations are being released, and
// freed after the update. PyTorch's zero_grad(set_to_none=True) gets the same
// effect; gotch can neither reset a .grad nor call the engine correctly for
// more than one input (its RunBackward passes a pointer to one element as
// the array), so this calls the wrapper's at_run_backward directly.
func gradients(loss *ts.Tensor, params []*ts.Tensor) ([]*ts.Tensor, error) {
	if len(params) == 0 {
		return nil, nil
	}
	roots := []lib.Ctensor{lib.Ctensor(loss.Ctensor())}
	inputs := make([]lib.Ctensor, len(params))
	for i, p := range params {
		inputs[i] = lib.Ctensor(p.Ctensor())
	}
	outputs := make([]lib.Ctensor, len(params))
	lib.AtRunBackward(&roots[0], 1, &inputs[0], len(inputs), &outputs[0], 0, 0)
	if err := ts.TorchErr(); err != nil {
		for _, c := range outputs {
			if c != nil {
				lib.AtFree(c)
			}
		}
		return nil, fmt.Errorf("train: backward: %w", err)
	}
	grads := make([]*ts.Tensor, len(params))
	for i, c := range outputs {
		g := ts.New(c)
		if !g.MustDefined() {
			g.MustDrop()
			continue
		}
		grads[i] = g
	}
	return grads, nil
}
