package kernels

// The multi-tensor LAMB/AdamW update (albert_lamb_foreach) came after ABI 5
// without changing it: a library built before it loads, lacks the symbol
// (load leaves lambForeach nil), and ForeachEnabled is then false.

/*
#include <stdlib.h>

typedef char *(*lamb_foreach_fn)(void **, void **, void **, void **, int, void *, double, double, double, double, double, double, double, int);

static char *call_lamb_foreach(void *f, void **w, void **g, void **m, void **v, int n, void *s,
		double lr, double b1, double b2, double eps, double wd, double mc, double vc, int trust) {
	return ((lamb_foreach_fn)f)(w, g, m, v, n, s, lr, b1, b2, eps, wd, mc, vc, trust);
}
*/
import "C"

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/kernels/native"
)

// ForeachEnabled reports whether LAMBForeach can run: the kernels are
// enabled (Enabled: loaded, and neither ALBERT_KERNELS=off nor Disable) and
// the library has the multi-tensor update (one built before it has not;
// callers then use the composed ops, as without the library).
func ForeachEnabled() bool {
	return foreachUnavailable() == nil
}

// ForeachStatus says in one line whether LAMBForeach can run, and if not, why.
func ForeachStatus() string {
	if err := foreachUnavailable(); err != nil {
		return "no multi-tensor LAMB: " + err.Error()
	}
	return "multi-tensor LAMB (albert_lamb_foreach in " + native.Library + ")"
}

// foreachUnavailable says why LAMBForeach cannot run, or nil.
func foreachUnavailable() error {
	if !Enabled() {
		return unavailable()
	}
	if lambForeach == nil {
		return fmt.Errorf("%s has no albert_lamb_foreach (built before it: run make setup)", native.Library)
	}
	return nil
}

// LAMBForeach is LAMB for a list of parameters at once: ws[i] and its
// moments ms[i], vs[i] are updated in place from gradient gs[i], times
// gscale (a one-element tensor, the clipping factor) when it is not nil.
// All the parameters take a's weight decay and trust-ratio setting, so
// callers group them (decayed matrices with LAMB's trust ratio; LayerNorm
// and bias without either). The tensors may be on any device, CUDA
// included, all on one, of one floating dtype; gradients nil are an error
// (leave such parameters out).
//
// It is the update of LAMB in ATen's multi-tensor (_foreach_) ops: about
// ten calls for the whole list where the composed ops take 7-15 per
// parameter, each a kernel launch on a GPU, and nothing read back to the
// host. It equals the composed update to float rounding; on the CPU,
// kernels.LAMB is faster (it makes two passes over memory per parameter,
// this one about ten) and is what train.Optimizer uses there.
func LAMBForeach(ws, gs, ms, vs []*ts.Tensor, gscale *ts.Tensor, a LAMBArgs) error {
	if err := foreachUnavailable(); err != nil {
		return err
	}
	n := len(ws)
	if len(gs) != n || len(ms) != n || len(vs) != n {
		return fmt.Errorf("kernels: LAMBForeach: %d parameters but %d gradients, %d m and %d v", n, len(gs), len(ms), len(vs))
	}
	if n == 0 {
		return nil
	}
	if n > math.MaxInt32 {
		return fmt.Errorf("kernels: LAMBForeach: %d parameters", n)
	}
	// The handles go in C memory: cgo may not pass Go memory holding pointers.
	ptr := C.size_t(unsafe.Sizeof(unsafe.Pointer(nil)))
	mem := C.malloc(4 * C.size_t(n) * ptr)
	defer C.free(mem)
	arr := unsafe.Slice((*unsafe.Pointer)(mem), 4*n)
	for k, list := range [][]*ts.Tensor{ws, gs, ms, vs} {
		for i, x := range list {
			if x == nil {
				return fmt.Errorf("kernels: LAMBForeach: %s %d is nil", [...]string{"parameter", "gradient", "m", "v"}[k], i)
			}
			arr[k*n+i] = ctensor(x)
		}
	}
	s, trust, mc, vc := a.cArgs(gscale)
	list := func(k int) *unsafe.Pointer { return &arr[k*n] }
	return cError(C.call_lamb_foreach(lambForeach, list(0), list(1), list(2), list(3), C.int(n), s,
		C.double(a.LR), C.double(a.Beta1), C.double(a.Beta2), C.double(a.Eps), C.double(a.WeightDecay),
		C.double(mc), C.double(vc), trust))
}
