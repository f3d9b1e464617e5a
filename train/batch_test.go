package train

import (
	"fmt"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
)

// The packed copy (one int64 and one float buffer, views of them on the
// device) hands the step exactly the arrays the per-array copy does, with
// the same shapes and counts: on the CPU without pinning, and on
// ALBERT_TEST_DEVICE=cuda pinned and asynchronous, as toDevice uses it there
// (scripts/gpu-bench.sh runs it).
func TestPackedBatchEqualsPerArray(t *testing.T) {
	defer backend.LockThread()()
	dev := testDevice(t)
	b := syntheticBatch(7, 3, 16, 4, 500)
	var s backend.Scope
	defer s.Free()
	want := toDevice(&s, b, gotch.CPU)
	got, err := toDevicePacked(&s, b, dev, dev.IsCuda())
	if err != nil {
		t.Fatal(err)
	}
	viaToDevice := toDevice(&s, b, dev) // on CUDA: the packed path, unless it failed and fell back
	for _, g := range []tensors{got, viaToDevice} {
		pairs := map[string][2]*ts.Tensor{
			"ids": {want.in.IDs, g.in.IDs}, "segments": {want.in.Segments, g.in.Segments},
			"mask": {want.in.Mask, g.in.Mask}, "masked positions": {want.in.MaskedPositions, g.in.MaskedPositions},
			"masked ids": {want.mlmIDs, g.mlmIDs}, "masked weights": {want.mlmW, g.mlmW}, "labels": {want.labels, g.labels},
		}
		for name, p := range pairs {
			onCPU := s.T(p[1].MustTo(gotch.CPU, false))
			if ws, gs := p[0].MustSize(), onCPU.MustSize(); fmt.Sprint(ws) != fmt.Sprint(gs) {
				t.Fatalf("%s: shape %v, want %v", name, gs, ws)
			}
			if p[0].DType() != onCPU.DType() {
				t.Fatalf("%s: dtype %v, want %v", name, onCPU.DType(), p[0].DType())
			}
			if !p[0].MustEqual(onCPU, false) {
				t.Errorf("%s: values differ from the per-array copy", name)
			}
		}
		if g.tokens != want.tokens || g.predicts != want.predicts || g.weights != want.weights || g.size != want.size {
			t.Errorf("counts %d/%d/%g/%d, want %d/%d/%g/%d", g.tokens, g.predicts, g.weights, g.size,
				want.tokens, want.predicts, want.weights, want.size)
		}
	}
}
