package kernels

/*
typedef char *(*autocast_fn)(int, int, int *);
typedef int (*autocast_on_fn)(int);
typedef char *(*tf32_fn)(int, int *);

static char *call_autocast(void *f, int cuda, int on, int *was) { return ((autocast_fn)f)(cuda, on, was); }
static int call_autocast_on(void *f, int cuda) { return ((autocast_on_fn)f)(cuda); }
static char *call_tf32(void *f, int on, int *was) { return ((tf32_fn)f)(on, was); }
*/
import "C"

import (
	"fmt"
	"runtime"

	"github.com/reproml/albert/kernels/native"
)

// The precision switches train.precision needs and gotch does not expose:
// libtorch's autocast on the CPU or CUDA in bfloat16, and TF32 for CUDA
// matmuls. They are in the kernels library (native/cpp) but are not
// kernels: ALBERT_KERNELS=off and Disable leave them working.

// switches reports whether the library with the switches is loaded. A
// library built before them lacks them (its kernels still work).
func switches() error {
	load()
	switch {
	case loadErr != nil:
		return fmt.Errorf("the precision switches: %w", loadErr)
	case autocastSet == nil || autocastIs == nil || tf32Set == nil:
		return fmt.Errorf("%s has no precision switches (built before them: run make build)", native.Library)
	}
	return nil
}

// Autocast runs the calling goroutine's libtorch ops on the CPU (cuda
// false) or CUDA under autocast in bfloat16 until restore is called:
// matmuls and dense layers compute in bf16 on bf16 casts of their fp32
// inputs (cached per weight until restore), ops autocast keeps in fp32 stay
// there, and Applies is false on the CPU so the fp32 kernels step aside.
// Autocast is per OS thread in libtorch, so the goroutine is locked to its
// thread until restore, which puts back the state found and frees the
// cache. Call restore on the same goroutine (defer it: a panic must not
// leave the thread in bf16).
func Autocast(cuda bool) (restore func(), err error) {
	if err := switches(); err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	was, err := setAutocast(cuda, true)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	return func() {
		defer runtime.UnlockOSThread()
		if _, err := setAutocast(cuda, was); err != nil {
			panic(fmt.Sprintf("kernels: restoring autocast: %v", err)) // turning it off cannot fail short of a broken libtorch
		}
	}, nil
}

func setAutocast(cuda, on bool) (was bool, err error) {
	var w C.int
	if err := cError(C.call_autocast(autocastSet, cbool(cuda), cbool(on), &w)); err != nil {
		return false, fmt.Errorf("kernels: autocast: %w", err)
	}
	return w != 0, nil
}

// AutocastOn reports whether autocast is on for the calling OS thread's CPU
// (cuda false) or CUDA ops; false without the switches.
func AutocastOn(cuda bool) bool {
	return switches() == nil && C.call_autocast_on(autocastIs, cbool(cuda)) != 0
}

// SetTF32 sets whether CUDA float32 matmuls may use TF32 tensor cores and
// returns the previous setting. libtorch holds it process-wide (every
// thread, backward's included); on the CPU it changes nothing.
func SetTF32(on bool) (was bool, err error) {
	if err := switches(); err != nil {
		return false, err
	}
	var w C.int
	if err := cError(C.call_tf32(tf32Set, cbool(on), &w)); err != nil {
		return false, fmt.Errorf("kernels: TF32: %w", err)
	}
	return w != 0, nil
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
