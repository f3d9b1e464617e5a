package train

import (
	"fmt"
	"sync"

	"github.com/sugarme/gotch"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/kernels"
	"github.com/reproml/albert/model"
)

// forward is the step's forward pass of m. Under bf16 it runs inside
// libtorch's autocast on dev (kernels.Autocast): dense layers and the
// attention matmuls in bf16 on casts of the fp32 weights, LayerNorm, softmax
// and the logits in fp32 (model), the fused fp32 CPU kernels stepped aside.
// Autocast is off again when forward returns, panic or not, so the losses,
// backward (autograd casts the gradients back to the fp32 parameters), the
// clipping and the optimizer run in fp32 on the fp32 master weights.
func forward(s *backend.Scope, m *model.Model, in model.Inputs, c Config, dev gotch.Device) (model.Outputs, error) {
	if c.Precision != PrecisionBF16 {
		return m.Forward(s, in, true, false), nil
	}
	restore, err := kernels.Autocast(dev.IsCuda())
	if err != nil {
		return model.Outputs{}, fmt.Errorf("train: precision bf16: %w", err)
	}
	defer restore()
	return m.Forward(s, in, true, false), nil
}

// cudaTF32 is libtorch's TF32 switch for CUDA matmuls, shared by the CUDA
// runs in progress in this process (one per device under exp run).
var cudaTF32 struct {
	sync.Mutex
	on   bool // the setting the runs in progress share
	runs int  // CUDA runs in progress
	was  bool // the setting before the first of them
}

// usePrecision readies the process for c's precision on dev and returns
// what undoes it. bf16 needs the autocast switch (in the kernels library).
// On CUDA, tf32 turns on TF32 for fp32 matmuls (held for the whole run:
// forward, backward and evaluation), fp32 and bf16 keep it off. libtorch
// holds that switch process-wide, so CUDA runs sharing a process must agree
// on it: a run that does not is refused, not trained in the other's
// arithmetic.
func usePrecision(c Config, dev gotch.Device) (release func(), err error) {
	if c.PrecisionName() == PrecisionBF16 {
		// Probe the switch now, not at the first step: on and off again.
		restore, err := kernels.Autocast(dev.IsCuda())
		if err != nil {
			return nil, fmt.Errorf("train: precision bf16: %w", err)
		}
		restore()
	}
	if !dev.IsCuda() {
		return func() {}, nil
	}
	return holdTF32(c.PrecisionName(), c.PrecisionName() == PrecisionTF32)
}

// holdTF32 holds libtorch's TF32 switch at want for a CUDA run in precision
// prec until release, or says why it cannot: another run in the process
// holds it at the other setting.
func holdTF32(prec string, want bool) (release func(), err error) {
	t := &cudaTF32
	t.Lock()
	defer t.Unlock()
	switch {
	case t.runs > 0 && t.on != want:
		return nil, fmt.Errorf("train: precision %s needs CUDA's TF32 matmuls %s, but a run in progress in this process has them %s (a process-wide libtorch setting): train these runs in separate exp run commands",
			prec, onOff(want), onOff(t.on))
	case t.runs == 0:
		was, err := kernels.SetTF32(want)
		if err != nil && want {
			return nil, fmt.Errorf("train: precision %s: %w", prec, err)
		}
		// Without the switch (no kernels library) fp32 and bf16 still run:
		// TF32 is then at libtorch's default, off since 1.12.
		t.on, t.was = want, was
	}
	t.runs++
	return func() {
		t.Lock()
		defer t.Unlock()
		if t.runs--; t.runs == 0 {
			_, _ = kernels.SetTF32(t.was) // cannot fail: it worked when the first run set it
		}
	}, nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
