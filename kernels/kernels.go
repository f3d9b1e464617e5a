// Package kernels binds the fused CPU kernels of native/cpp/albert_kernels.cpp:
// the tanh GELU, batched matmul and softmax-with-dropout for attention,
// dropout (alone or with the residual add), the LAMB/AdamW update, the
// global gradient norm, and a dense layer that sums shared gradients inside
// the GEMM. They replace chains of libtorch eager ops that, on the CPU, cost
// far more than their arithmetic (ProfileStart/ProfileStop, behind
// exp bench --ops, show where a step's time goes). One entry runs on any
// device: LAMBForeach (foreach.go), the whole LAMB/AdamW update in a few
// multi-tensor ATen calls, which the trainer uses on CUDA, where the
// per-tensor chain would be hundreds of small kernel launches.
//
// torchbuild compiles the kernels into libalbert_kernels.so next to
// libtch.so; this package opens it at first use. Where the library is
// missing, the tensors are not CPU float32, CPU autocast is on (bf16
// training), or ALBERT_KERNELS=off, callers use the composed libtorch ops
// instead (Enabled reports which), so the kernels change speed, not results:
// tests hold each kernel to its composed counterpart.
package kernels

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

typedef int (*abi_fn)(void);
typedef char *(*unary_fn)(void *, void **);
typedef char *(*binary_fn)(void *, void *, void **);
typedef char *(*ternary_fn)(void *, void *, void *, void **);
typedef void (*void_fn)(void);
typedef char *(*start_fn)(void);
typedef char *(*norm_fn)(void **, int, double, void **, void **);
typedef char *(*stop_fn)(char **);
typedef char *(*dropout_fn)(void *, double, unsigned long long, void **);
typedef char *(*dropout_add_fn)(void *, void *, double, unsigned long long, void **);
typedef char *(*softmax_dropout_fn)(void *, void *, double, double, unsigned long long, void **);
typedef char *(*lamb_fn)(void *, void *, void *, void *, void *, double, double, double, double, double, double, double, int);

static void *open_kernels(const char *name, char **err) {
	void *h = dlopen(name, RTLD_NOW | RTLD_GLOBAL);
	if (h == NULL) *err = dlerror();
	return h;
}
static int call_abi(void *f) { return ((abi_fn)f)(); }
static char *call_unary(void *f, void *x, void **out) { return ((unary_fn)f)(x, out); }
static char *call_binary(void *f, void *a, void *b, void **out) { return ((binary_fn)f)(a, b, out); }
static char *call_ternary(void *f, void *a, void *b, void *c, void **out) { return ((ternary_fn)f)(a, b, c, out); }
static void call_void(void *f) { ((void_fn)f)(); }
static char *call_start(void *f) { return ((start_fn)f)(); }
static char *call_norm(void *f, void **ts, int n, double max, void **norm, void **factor) {
	return ((norm_fn)f)(ts, n, max, norm, factor);
}
static char *call_stop(void *f, char **out) { return ((stop_fn)f)(out); }
static char *call_dropout(void *f, void *x, double p, unsigned long long key, void **out) { return ((dropout_fn)f)(x, p, key, out); }
static char *call_dropout_add(void *f, void *x, void *r, double p, unsigned long long key, void **out) {
	return ((dropout_add_fn)f)(x, r, p, key, out);
}
static char *call_softmax_dropout(void *f, void *s, void *m, double scale, double p, unsigned long long key, void **out) {
	return ((softmax_dropout_fn)f)(s, m, scale, p, key, out);
}
static char *call_lamb(void *f, void *w, void *g, void *m, void *v, void *s, double lr, double b1, double b2, double eps, double wd, double mc, double vc, int trust) {
	return ((lamb_fn)f)(w, g, m, v, s, lr, b1, b2, eps, wd, mc, vc, trust);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/kernels/native"
)

// abi is the C ABI version this package speaks (albert_kernels_abi).
const abi = 5

var (
	once     sync.Once
	loadErr  error // the library did not load
	offErr   error // ALBERT_KERNELS=off: loaded, but the kernels are not used
	gelu     unsafe.Pointer
	bmm      unsafe.Pointer
	drop     unsafe.Pointer
	softDrop unsafe.Pointer
	lambStep unsafe.Pointer
	dense    unsafe.Pointer
	newPass  unsafe.Pointer
	profOn   unsafe.Pointer
	profOff  unsafe.Pointer
	normAll  unsafe.Pointer
	dropAdd  unsafe.Pointer
	// the precision switches (precision.go)
	autocastSet, autocastIs, tf32Set unsafe.Pointer
	// the multi-tensor update (foreach.go); optional: nil in a library built
	// before it, which still speaks ABI 5
	lambForeach unsafe.Pointer
)

func load() {
	once.Do(func() {
		// Off still opens the library: the precision switches (precision.go)
		// live there and are not kernels to compare against composed ops.
		if v := os.Getenv("ALBERT_KERNELS"); v == "off" || v == "0" {
			offErr = errors.New("turned off by ALBERT_KERNELS=" + v)
		}
		name := C.CString(native.Library)
		defer C.free(unsafe.Pointer(name))
		var cerr *C.char
		h := C.open_kernels(name, &cerr)
		if h == nil {
			loadErr = fmt.Errorf("%s: %s (run make setup to build it)", native.Library, C.GoString(cerr))
			return
		}
		sym := func(n string) unsafe.Pointer {
			cn := C.CString(n)
			defer C.free(unsafe.Pointer(cn))
			return C.dlsym(h, cn)
		}
		ver := sym("albert_kernels_abi")
		gelu, bmm, drop, lambStep = sym("albert_gelu_tanh"), sym("albert_bmm"), sym("albert_dropout"), sym("albert_lamb")
		softDrop = sym("albert_softmax_dropout")
		dense, newPass = sym("albert_linear"), sym("albert_linear_pass")
		profOn, profOff = sym("albert_profile_start"), sym("albert_profile_stop")
		normAll, dropAdd = sym("albert_global_norm"), sym("albert_dropout_add")
		autocastSet, autocastIs, tf32Set = sym("albert_autocast"), sym("albert_autocast_on"), sym("albert_tf32")
		lambForeach = sym("albert_lamb_foreach")
		switch {
		case ver == nil:
			loadErr = fmt.Errorf("%s has no albert_kernels_abi (stale build: run make setup)", native.Library)
		case C.call_abi(ver) != abi:
			loadErr = fmt.Errorf("%s speaks ABI %d, this binary %d (stale build: run make setup)", native.Library, C.call_abi(ver), abi)
		case gelu == nil || bmm == nil || drop == nil || softDrop == nil || lambStep == nil || dense == nil || newPass == nil || profOn == nil || profOff == nil || normAll == nil || dropAdd == nil:
			loadErr = fmt.Errorf("%s lacks a kernel symbol (stale build: run make setup)", native.Library)
		}
	})
}

// unavailable says why the kernels are not in use: the library's error,
// else ALBERT_KERNELS, else Disable.
func unavailable() error {
	load()
	switch {
	case loadErr != nil:
		return loadErr
	case offErr != nil:
		return offErr
	}
	return errors.New("turned off by kernels.Disable")
}

// disabled is set by Disable.
var disabled atomic.Bool

// Enabled reports whether the fused kernels are loaded and allowed.
func Enabled() bool {
	load()
	return loadErr == nil && offErr == nil && !disabled.Load()
}

// Disable turns the kernels off until restore is called, for tests and
// benchmarks that compare the fused and composed paths in one process
// (ALBERT_KERNELS=off does it for a whole process). An optimizer decides
// when it is made, so make it after Disable.
func Disable() (restore func()) {
	prev := disabled.Swap(true)
	return func() { disabled.Store(prev) }
}

// Status says in one line whether the kernels are in use, and if not, why.
func Status() string {
	if Enabled() {
		return "fused CPU kernels (" + native.Library + ")"
	}
	return "composed libtorch ops: " + unavailable().Error()
}

// Applies reports whether the kernels are enabled for these tensors: all on
// the CPU and float32, and CPU autocast off on this thread. The kernels are
// fp32 autograd functions outside libtorch's autocast dispatch, so under
// autocast (train.precision = "bf16") the composed ops run, which it casts.
func Applies(xs ...*ts.Tensor) bool {
	if !Enabled() || AutocastOn(false) {
		return false
	}
	for _, x := range xs {
		// gotch reports the CPU as {CPU, 1}, not gotch.CPU's {CPU, -1}
		if x.MustDevice().IsCuda() || x.DType() != gotch.Float {
			return false
		}
	}
	return true
}

func ctensor(t *ts.Tensor) unsafe.Pointer { return t.Ctensor() }

func result(cerr *C.char, out unsafe.Pointer) (*ts.Tensor, error) {
	if err := cError(cerr); err != nil {
		return nil, err
	}
	return ts.New(lib.Ctensor(out)), nil
}

func cError(cerr *C.char) error {
	if cerr == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(cerr))
	return errors.New(C.GoString(cerr))
}

// GeluTanh is GELU with the tanh approximation the official code uses,
// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), differentiable. It evaluates
// tanh with a rational approximation accurate to a few float ulp.
func GeluTanh(x *ts.Tensor) (*ts.Tensor, error) {
	if !Enabled() {
		return nil, unavailable()
	}
	var out unsafe.Pointer
	cerr := C.call_unary(gelu, ctensor(x), &out)
	return result(cerr, out)
}

// Matmul is a @ b over the leading dimensions of two 3-D or 4-D CPU tensors
// ([..., m, k] @ [..., k, n]), any strides, differentiable. Each (batch,
// head) block is one single-threaded GEMM and the threads split the blocks,
// where libtorch's bmm runs the blocks one after another.
func Matmul(a, b *ts.Tensor) (*ts.Tensor, error) {
	if !Enabled() {
		return nil, unavailable()
	}
	var out unsafe.Pointer
	cerr := C.call_binary(bmm, ctensor(a), ctensor(b), &out)
	return result(cerr, out)
}

// Dropout is inverted dropout of x with drop probability p, differentiable:
// each element is kept with probability 1-p and scaled by 1/(1-p). The
// keep mask is a function of key, the same SplitMix64 stream as
// model/dropout.go's Go mask (element 2j and 2j+1 take the low and high 32
// bits of output j; kept when ≥ round(p·2³²)), so both paths draw the same
// masks. It is drawn and applied in one pass and kept for backward as one
// byte per element.
func Dropout(x *ts.Tensor, p float64, key uint64) (*ts.Tensor, error) {
	if !Enabled() {
		return nil, unavailable()
	}
	var out unsafe.Pointer
	cerr := C.call_dropout(drop, ctensor(x), C.double(p), C.ulonglong(key), &out)
	return result(cerr, out)
}

// DropoutAdd is Dropout(x, p, key) + res in one pass (the residual
// connection after a sublayer), differentiable in both; the same mask as
// Dropout for the same key.
func DropoutAdd(x, res *ts.Tensor, p float64, key uint64) (*ts.Tensor, error) {
	if !Enabled() {
		return nil, unavailable()
	}
	var out unsafe.Pointer
	cerr := C.call_dropout_add(dropAdd, ctensor(x), ctensor(res), C.double(p), C.ulonglong(key), &out)
	return result(cerr, out)
}

// SoftmaxDropout is attention's probabilities, dropout(softmax(scale·scores
// + mask)) over the last dimension, differentiable in scores: scores
// [B, nh, S, S], mask the additive [B,1,1,S] padding mask, and the dropout
// mask that Dropout draws for key (p = 0: none). One pass per row forward
// and one backward, where the composed ops make five passes over the
// largest activations of a small model.
func SoftmaxDropout(scores, mask *ts.Tensor, scale, p float64, key uint64) (*ts.Tensor, error) {
	if !Enabled() {
		return nil, unavailable()
	}
	var out unsafe.Pointer
	cerr := C.call_softmax_dropout(softDrop, ctensor(scores), ctensor(mask), C.double(scale), C.double(p), C.ulonglong(key), &out)
	return result(cerr, out)
}

// Linear is x·Wᵀ + b over the last dimension of x (w [out, in], b [out]),
// differentiable, like libtorch's linear but for the weight gradient of a
// layer used more than once. Under grad mode each call is a use of w, and
// the uses of w since the last NewPass share one weight and bias gradient:
// each use's backward adds its product into the sum inside the GEMM, and the
// last one to run returns the sum (the others return none, which autograd
// counts as zero). With cross-layer sharing that replaces L gradients,
// each zeroed by BLAS, and L-1 additions by L accumulating GEMMs.
//
// So: call NewPass at the start of every forward pass, let every use in a
// pass reach the loss that pass's backward starts from, and backpropagate a
// graph once. Model.Forward does the first; the model's graph does the second.
func Linear(x, w, b *ts.Tensor) (*ts.Tensor, error) {
	if !Enabled() {
		return nil, unavailable()
	}
	var out unsafe.Pointer
	cerr := C.call_ternary(dense, ctensor(x), ctensor(w), ctensor(b), &out)
	return result(cerr, out)
}

// NewPass starts a new forward pass for Linear: later uses of a weight do
// not join the gradient sums of earlier ones. A no-op without the kernels.
func NewPass() {
	if Enabled() {
		C.call_void(newPass)
	}
}

// GlobalNorm returns √(Σ over xs of Σx²) as a float32 scalar tensor, and,
// when maxNorm > 0, the clipping factor maxNorm / max(norm, maxNorm) (else
// nil): one parallel pass over all the tensors, summed in float64, where
// the composed ops take a norm per tensor and the norm of the norms.
func GlobalNorm(xs []*ts.Tensor, maxNorm float64) (norm, factor *ts.Tensor, err error) {
	if !Enabled() {
		return nil, nil, unavailable()
	}
	// The handles go in C memory: cgo may not pass Go memory holding pointers.
	mem := C.malloc(C.size_t(max(1, len(xs))) * C.size_t(unsafe.Sizeof(unsafe.Pointer(nil))))
	defer C.free(mem)
	arr := unsafe.Slice((*unsafe.Pointer)(mem), len(xs))
	for i, x := range xs {
		arr[i] = ctensor(x)
	}
	var n, f unsafe.Pointer
	if err := cError(C.call_norm(normAll, (*unsafe.Pointer)(mem), C.int(len(xs)), C.double(maxNorm), &n, &f)); err != nil {
		return nil, nil, err
	}
	norm = ts.New(lib.Ctensor(n))
	if f != nil {
		factor = ts.New(lib.Ctensor(f))
	}
	return norm, factor, nil
}

// LAMBArgs are one update's hyperparameters.
type LAMBArgs struct {
	LR, Beta1, Beta2, Eps float64
	WeightDecay           float64 // decoupled; 0 for none
	TrustRatio            bool    // LAMB's ‖w‖/‖u‖; false gives AdamW
	// MCorr and VCorr multiply m and v inside the update: Adam's bias
	// correction 1/(1-β1^t) and 1/(1-β2^t) at step t. 0 means 1 (none, as
	// the official code).
	MCorr, VCorr float64
}

// cArgs are the C arguments both LAMB entries share: gscale's handle (nil
// for none), the trust-ratio flag, and the moment corrections (1 when
// unset).
func (a LAMBArgs) cArgs(gscale *ts.Tensor) (s unsafe.Pointer, trust C.int, mc, vc float64) {
	if gscale != nil {
		s = ctensor(gscale)
	}
	if a.TrustRatio {
		trust = 1
	}
	mc, vc = a.MCorr, a.VCorr
	if mc == 0 {
		mc = 1
	}
	if vc == 0 {
		vc = 1
	}
	return s, trust, mc, vc
}

// LAMB updates parameter w and its moments m, v in place from gradient g,
// scaled by gscale (a one-element tensor, the clipping factor) when it is
// not nil: the same update as train.Optimizer's composed ops, in two passes
// over memory.
func LAMB(w, g, m, v, gscale *ts.Tensor, a LAMBArgs) error {
	if !Enabled() {
		return unavailable()
	}
	s, trust, mc, vc := a.cArgs(gscale)
	return cError(C.call_lamb(lambStep, ctensor(w), ctensor(g), ctensor(m), ctensor(v), s,
		C.double(a.LR), C.double(a.Beta1), C.double(a.Beta2), C.double(a.Eps), C.double(a.WeightDecay),
		C.double(mc), C.double(vc), trust))
}

// OpStat is one name's line of a per-op profile.
type OpStat struct {
	Name  string        // ATen op ("aten::addmm"), autograd node, or kernel ("albert::linear")
	Calls int64         // times the scope ran
	Self  time.Duration // inside the scope but not inside a scope nested in it
	Total time.Duration // inside the scope
}

// ProfileStart starts a per-op profile of the calling OS thread (lock it):
// every ATen op, autograd node and kernel entry point libtorch's
// RecordFunction sees, timed and summed by name. A CPU backward runs on the
// calling thread, so a training step is seen whole. It works with the
// kernels turned off too (Disable), as long as the library is loaded.
func ProfileStart() error {
	load()
	if loadErr != nil {
		return loadErr
	}
	return cError(C.call_start(profOn))
}

// ProfileStop ends the profile and returns its lines, most self time first.
func ProfileStop() ([]OpStat, error) {
	load()
	if loadErr != nil {
		return nil, loadErr
	}
	var out *C.char
	if err := cError(C.call_stop(profOff, &out)); err != nil {
		return nil, err
	}
	text := C.GoString(out)
	C.free(unsafe.Pointer(out))
	var stats []OpStat
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.SplitN(line, "\t", 4)
		if len(f) != 4 {
			continue
		}
		calls, err1 := strconv.ParseInt(f[0], 10, 64)
		self, err2 := strconv.ParseFloat(f[1], 64)
		total, err3 := strconv.ParseFloat(f[2], 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("profile line %q: %w", line, err)
		}
		stats = append(stats, OpStat{Name: f[3], Calls: calls,
			Self: time.Duration(self * float64(time.Microsecond)), Total: time.Duration(total * float64(time.Microsecond))})
	}
	sort.Slice(stats, func(i, j int) bool { return stats[i].Self > stats[j].Self })
	return stats, nil
}
