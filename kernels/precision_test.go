package kernels

import (
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
)

// Inside Autocast a dense layer and a matmul of fp32 tensors compute in
// bf16 and the fused kernels do not apply; after restore both are fp32
// again, the kernels apply, and autocast reports off.
func TestAutocast(t *testing.T) {
	defer backend.LockThread()()
	x := ts.MustOnes([]int64{2, 8}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	w := ts.MustOnes([]int64{4, 8}, gotch.Float, gotch.CPU)
	defer w.MustDrop()
	none := ts.NewTensor() // no bias
	defer none.MustDrop()
	dtypes := func() (lin, mm gotch.DType) {
		y := ts.MustLinear(x, w, none)
		defer y.MustDrop()
		xt := x.MustT(false)
		defer xt.MustDrop()
		z := x.MustMatmul(xt, false)
		defer z.MustDrop()
		return y.DType(), z.DType()
	}
	restore, err := Autocast(false)
	if err != nil {
		t.Fatal(err)
	}
	lin, mm := dtypes()
	on, applies := AutocastOn(false), Applies(x)
	restore()
	if lin != gotch.BFloat16 || mm != gotch.BFloat16 || !on || applies {
		t.Errorf("inside autocast: linear %v, matmul %v, on %v, kernels apply %v; want bf16, bf16, true, false", lin, mm, on, applies)
	}
	lin, mm = dtypes()
	if lin != gotch.Float || mm != gotch.Float || AutocastOn(false) || (Enabled() && !Applies(x)) {
		t.Errorf("after restore: linear %v, matmul %v, on %v, kernels apply %v; want float32, float32, false, true", lin, mm, AutocastOn(false), Applies(x))
	}
}

// SetTF32 returns the previous setting (on the CPU it only records it).
func TestSetTF32(t *testing.T) {
	was, err := SetTF32(true)
	if err != nil {
		t.Fatal(err)
	}
	if now, err := SetTF32(was); err != nil || !now {
		t.Errorf("SetTF32 back to %v: previous %v, error %v; want true, nil", was, now, err)
	}
}
