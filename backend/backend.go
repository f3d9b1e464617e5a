// Package backend sets up the libtorch runtime in one place: intra-op
// threads, seeding, device choice, and the facts `exp doctor` reports.
//
// gotch has no Go binding for at_manual_seed or the thread-count calls; the
// wrapper library built by internal/torchbuild exports them, and this package
// finds them at run time (dlsym), so it needs no link flags of its own.
package backend

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>

static void *find(const char *name) { return dlsym(RTLD_DEFAULT, name); }
static void call_i64(void *f, int64_t v) { ((void (*)(int64_t))f)(v); }
static void call_int(void *f, int v) { ((void (*)(int))f)(v); }
static int call_ret_int(void *f) { return ((int (*)(void))f)(); }
static const char *call_ret_str(void *f) { return ((const char *(*)(void))f)(); }
static char *call_err(void *f) { return ((char *(*)(void))f)(); }
static int call_int_ret_int(void *f, int v) { return ((int (*)(int))f)(v); }
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/sugarme/gotch"
)

func sym(name string) (unsafe.Pointer, error) {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	p := C.find(cs)
	if p == nil {
		return nil, fmt.Errorf("backend: %s not found in the loaded torch wrapper (rebuild it with `make setup`)", name)
	}
	return p, nil
}

// lastError returns and clears the wrapper's thread-local error.
func lastError() error {
	f, err := sym("get_and_reset_last_err")
	if err != nil {
		return err
	}
	p := C.call_err(f)
	if p == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(p))
	return fmt.Errorf("torch: %s", C.GoString(p))
}

// Seed seeds libtorch's generators (CPU and CUDA): parameter initialisation,
// dropout and random tensors are then reproducible.
func Seed(seed int64) error {
	f, err := sym("at_manual_seed")
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	C.call_i64(f, C.int64_t(seed))
	return lastError()
}

// SetThreads sets libtorch's intra-op thread count; n <= 0 means one per CPU.
func SetThreads(n int) error {
	if n <= 0 {
		n = runtime.NumCPU()
	}
	f, err := sym("at_set_num_threads")
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	C.call_int(f, C.int(n))
	return lastError()
}

// setGradEnabled sets grad mode on this thread and returns the previous
// mode. (gotch's GradSetEnabled reads the C int result as a Go int, 8 bytes
// from a 4-byte value, so its returned state is unreliable.)
func setGradEnabled(on bool) (bool, error) {
	f, err := sym("at_grad_set_enabled")
	if err != nil {
		return false, err
	}
	v := 0
	if on {
		v = 1
	}
	prev := C.call_int_ret_int(f, C.int(v))
	if err := lastError(); err != nil {
		return false, err
	}
	return prev == 1, nil
}

// Threads is libtorch's current intra-op thread count.
func Threads() int {
	f, err := sym("at_get_num_threads")
	if err != nil {
		return 0
	}
	return int(C.call_ret_int(f))
}

// BuildInfo is what torchbuild compiled into the wrapper library.
type BuildInfo struct {
	LibtorchVersion string   `json:"libtorch_version"`
	LibtorchDir     string   `json:"libtorch_dir"`
	CUDABuild       bool     `json:"cuda_build"`
	GotchVersion    string   `json:"gotch_version"`
	Compiler        string   `json:"compiler"`
	Stubbed         []string `json:"stubbed"`
}

// WrapperInfo reads the build facts of the loaded wrapper library.
func WrapperInfo() (BuildInfo, error) {
	var bi BuildInfo
	f, err := sym("atx_build_info")
	if err != nil {
		return bi, err
	}
	if err := json.Unmarshal([]byte(C.GoString(C.call_ret_str(f))), &bi); err != nil {
		return bi, fmt.Errorf("backend: wrapper build info: %w", err)
	}
	return bi, nil
}

var initOnce struct {
	sync.Once
	err error
}

// Init applies the process-wide defaults once: intra-op threads from
// ALBERT_THREADS or one per CPU (libtorch's own default here is 1).
func Init() error {
	initOnce.Do(func() {
		n := 0
		if v := os.Getenv("ALBERT_THREADS"); v != "" {
			var err error
			if n, err = strconv.Atoi(v); err != nil {
				initOnce.err = fmt.Errorf("backend: ALBERT_THREADS=%q is not a number", v)
				return
			}
		}
		initOnce.err = SetThreads(n)
	})
	return initOnce.err
}

// CUDADevices is the number of CUDA devices libtorch sees (0 without CUDA).
func CUDADevices() int {
	cu := gotch.CUDA
	if !cu.IsAvailable() {
		return 0
	}
	return int(cu.DeviceCount())
}

// Device parses a device name: "auto" (CUDA 0 when available, else CPU),
// "cpu", "cuda" or "cuda:N".
func Device(name string) (gotch.Device, error) {
	switch name := strings.TrimSpace(name); {
	case name == "" || name == "auto":
		if CUDADevices() > 0 {
			return gotch.CudaBuilder(0), nil
		}
		return gotch.CPU, nil
	case name == "cpu":
		return gotch.CPU, nil
	case name == "cuda" || strings.HasPrefix(name, "cuda:"):
		idx := 0
		if i := strings.IndexByte(name, ':'); i >= 0 {
			v, err := strconv.Atoi(name[i+1:])
			if err != nil || v < 0 {
				return gotch.CPU, fmt.Errorf("device %q: bad CUDA index", name)
			}
			idx = v
		}
		if n := CUDADevices(); idx >= n {
			return gotch.CPU, fmt.Errorf("device %q: libtorch sees %d CUDA device(s)", name, n)
		}
		return gotch.CudaBuilder(uint(idx)), nil
	default:
		return gotch.CPU, fmt.Errorf("device %q: want auto, cpu, cuda or cuda:N", name)
	}
}

// DeviceName renders a device as Device parses it.
func DeviceName(d gotch.Device) string {
	if d.IsCuda() {
		return fmt.Sprintf("cuda:%d", d.Value)
	}
	return "cpu"
}

func cpus() int { return runtime.NumCPU() }
