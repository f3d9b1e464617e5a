package train

import (
	"github.com/sugarme/gotch/ts"

	lib "github.com/sugarme/gotch/libtch"
)

// inPlace runs one of gotch's in-place ops (the Must…_ methods) on t and
// frees the handle the op orphans. gotch's in-place wrappers set t's C
// handle to a new alias of the same tensor and drop the old handle without
// freeing it; the orphan holds a reference to the tensor, so a temporary
// modified in place (the optimizer's update u) was never freed: ~one copy of
// the parameters leaked per step (+7 MiB/step on tiny-all, measured with
// `exp bench --memory`), and every in-place op on a long-lived tensor leaked
// a handle. t's current handle stays valid, so other holders of the same
// *ts.Tensor (the VarStore, Param) see no change.
func inPlace(t *ts.Tensor, op func()) {
	old := t.Ctensor()
	op()
	if t.Ctensor() != old {
		lib.AtFree(lib.Ctensor(old))
	}
}
