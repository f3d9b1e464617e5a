// Package distributed is data-parallel training's communication: a world of
// N processes (ranks) joined through torch's c10d — a TCPStore for the
// rendezvous and ProcessGroupGloo (CPU) or ProcessGroupNCCL (CUDA) for the
// collectives — with the few operations a data-parallel trainer needs:
// all-reduce of a list of gradient tensors (bucketed, summed or averaged),
// broadcast (identical initial parameters and optimizer state), barrier,
// and the store's key/value pairs (rank 0 tells the others which run to
// train). Every collective is bounded by a timeout, so a rank that dies
// ends the others with an error instead of a hang.
//
// The binding is native/cpp/albert_dist.cpp, which torchbuild compiles into
// libalbert_dist.so next to libtch.so; this package opens it at first use.
// Launch starts a local world (exp run --nproc N); FromEnv finds a process's
// rank and world in its environment (Launch's variables, or Slurm's).
//
// NCCL is compiled in only against a CUDA libtorch with nccl.h, and has not
// been run: no GPU was available when this package was written.
package distributed

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

typedef int (*abi_fn)(void);
typedef const char *(*str_fn)(void);
typedef char *(*init_fn)(const char *, const char *, int, int, int, long long, const char *, int, void **);
typedef char *(*allreduce_fn)(void *, void **, int, int, long long);
typedef char *(*broadcast_fn)(void *, void **, int, int);
typedef char *(*barrier_fn)(void *);
typedef char *(*set_fn)(void *, const char *, const char *, int);
typedef char *(*get_fn)(void *, const char *, long long, char **, int *);
typedef void (*destroy_fn)(void *);

static void *open_dist(const char *name, char **err) {
	void *h = dlopen(name, RTLD_NOW | RTLD_GLOBAL);
	if (h == NULL) *err = dlerror();
	return h;
}
static int call_abi(void *f) { return ((abi_fn)f)(); }
static const char *call_str(void *f) { return ((str_fn)f)(); }
static char *call_init(void *f, const char *backend, const char *host, int port, int rank, int world, long long timeout, const char *ifname, int cuda, void **out) {
	return ((init_fn)f)(backend, host, port, rank, world, timeout, ifname, cuda, out);
}
static char *call_allreduce(void *f, void *h, void **ts, int n, int avg, long long bucket) { return ((allreduce_fn)f)(h, ts, n, avg, bucket); }
static char *call_broadcast(void *f, void *h, void **ts, int n, int root) { return ((broadcast_fn)f)(h, ts, n, root); }
static char *call_barrier(void *f, void *h) { return ((barrier_fn)f)(h); }
static char *call_set(void *f, void *h, const char *k, const char *v, int n) { return ((set_fn)f)(h, k, v, n); }
static char *call_get(void *f, void *h, const char *k, long long timeout, char **v, int *n) { return ((get_fn)f)(h, k, timeout, v, n); }
static void call_destroy(void *f, void *h) { ((destroy_fn)f)(h); }
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/distributed/native"
)

// abi is the C ABI version this package speaks (albert_dist_abi).
const abi = 1

var (
	once      sync.Once
	loadErr   error
	fnInit    unsafe.Pointer
	fnReduce  unsafe.Pointer
	fnBcast   unsafe.Pointer
	fnBarrier unsafe.Pointer
	fnSet     unsafe.Pointer
	fnGet     unsafe.Pointer
	fnDestroy unsafe.Pointer
	backends  string
	torchVer  string
)

func load() {
	once.Do(func() {
		name := C.CString(native.Library)
		defer C.free(unsafe.Pointer(name))
		var cerr *C.char
		h := C.open_dist(name, &cerr)
		if h == nil {
			loadErr = fmt.Errorf("%s: %s (make setup builds it; it needs Gloo's headers, on Debian libgloo-dev)", native.Library, C.GoString(cerr))
			return
		}
		sym := func(n string) unsafe.Pointer {
			cn := C.CString(n)
			defer C.free(unsafe.Pointer(cn))
			return C.dlsym(h, cn)
		}
		ver := sym("albert_dist_abi")
		fnInit, fnReduce, fnBcast, fnBarrier = sym("albert_dist_init"), sym("albert_dist_allreduce"), sym("albert_dist_broadcast"), sym("albert_dist_barrier")
		fnSet, fnGet, fnDestroy = sym("albert_dist_store_set"), sym("albert_dist_store_get"), sym("albert_dist_destroy")
		bk, tv := sym("albert_dist_backends"), sym("albert_dist_torch_version")
		switch {
		case ver == nil:
			loadErr = fmt.Errorf("%s has no albert_dist_abi (stale build: run make setup)", native.Library)
		case C.call_abi(ver) != abi:
			loadErr = fmt.Errorf("%s speaks ABI %d, this binary %d (stale build: run make setup)", native.Library, C.call_abi(ver), abi)
		case fnInit == nil || fnReduce == nil || fnBcast == nil || fnBarrier == nil || fnSet == nil || fnGet == nil || fnDestroy == nil || bk == nil || tv == nil:
			loadErr = fmt.Errorf("%s lacks a symbol (stale build: run make setup)", native.Library)
		default:
			backends, torchVer = C.GoString(C.call_str(bk)), C.GoString(C.call_str(tv))
		}
	})
}

// Available reports why data-parallel training cannot run here (nil: it
// can with at least one backend).
func Available() error {
	load()
	return loadErr
}

// Backends lists the process groups the binding was compiled with ("gloo",
// "nccl"); empty when it is not loaded.
func Backends() []string {
	if Available() != nil || backends == "" {
		return nil
	}
	return strings.Split(backends, ",")
}

// Status says in one line what the binding offers, for exp doctor.
func Status() string {
	if err := Available(); err != nil {
		return "unavailable: " + err.Error()
	}
	s := fmt.Sprintf("%s (backends %s; built against libtorch %s)", native.Library, backends, torchVer)
	if strings.Contains(backends, "nccl") {
		s += "; NCCL has not been run by this project's tests"
	}
	return s
}

// BackendFor is the backend a device uses: NCCL on CUDA, Gloo otherwise.
func BackendFor(device string) string {
	if strings.HasPrefix(device, "cuda") {
		return "nccl"
	}
	return "gloo"
}

// ErrWorld marks an error of the world itself — a collective that failed
// or timed out, most often because another rank died — as opposed to an
// error of this rank's own work. errors.Is(err, ErrWorld) tells them apart.
var ErrWorld = errors.New("distributed world broken")

// Config says how to join a world.
type Config struct {
	Backend   string        // "gloo" or "nccl"
	Host      string        // rank 0's address: it serves the TCPStore there
	Port      int           // the TCPStore's port
	Rank      int           // this process, 0 ≤ Rank < World
	World     int           // how many processes
	Timeout   time.Duration // bounds the rendezvous and every collective (default DefaultTimeout)
	Interface string        // network interface for Gloo ("" = loopback for a local world, else the host's address)
	CUDAIndex int           // the CUDA device of this rank (NCCL)
}

// DefaultTimeout bounds a collective: long enough for rank 0's held-out
// evaluation and checkpoint, during which the others wait in the next one.
const DefaultTimeout = 10 * time.Minute

// Group is this process's membership of a world. Its methods must be called
// by every rank in the same order with tensors of the same shapes and
// dtypes; they are not safe for concurrent use.
type Group struct {
	h       unsafe.Pointer
	cfg     Config
	closed  bool
	collect int // collectives so far, for error messages
}

// Init joins the world c describes; it returns when every rank has joined
// (or c.Timeout has passed).
func Init(c Config) (*Group, error) {
	if err := Available(); err != nil {
		return nil, fmt.Errorf("distributed: %w", err)
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Backend == "" {
		c.Backend = "gloo"
	}
	if !strings.Contains(","+backends+",", ","+c.Backend+",") {
		return nil, fmt.Errorf("distributed: backend %q is not compiled into %s (it has %q)", c.Backend, native.Library, backends)
	}
	if c.World < 1 || c.Rank < 0 || c.Rank >= c.World {
		return nil, fmt.Errorf("distributed: rank %d is not in a world of %d", c.Rank, c.World)
	}
	be, host, ifn := C.CString(c.Backend), C.CString(c.Host), C.CString(c.Interface)
	defer C.free(unsafe.Pointer(be))
	defer C.free(unsafe.Pointer(host))
	defer C.free(unsafe.Pointer(ifn))
	var h unsafe.Pointer
	cerr := C.call_init(fnInit, be, host, C.int(c.Port), C.int(c.Rank), C.int(c.World), C.longlong(c.Timeout.Milliseconds()), ifn, C.int(c.CUDAIndex), &h)
	if err := cError(cerr); err != nil {
		return nil, fmt.Errorf("distributed: rank %d of %d joining %s world at %s:%d: %w: %w", c.Rank, c.World, c.Backend, c.Host, c.Port, ErrWorld, err)
	}
	return &Group{h: h, cfg: c}, nil
}

// Rank is this process's rank.
func (g *Group) Rank() int { return g.cfg.Rank }

// Size is the number of ranks.
func (g *Group) Size() int { return g.cfg.World }

// Backend is "gloo" or "nccl".
func (g *Group) Backend() string { return g.cfg.Backend }

// Timeout bounds each collective.
func (g *Group) Timeout() time.Duration { return g.cfg.Timeout }

// BucketBytes is the size of the buckets gradients are packed into for
// the all-reduce (torch's DistributedDataParallel uses 25 MiB).
const BucketBytes = 25 << 20

// AllReduceMean replaces each tensor with the mean of it over the ranks.
func (g *Group) AllReduceMean(xs []*ts.Tensor) error { return g.allReduce(xs, true) }

// AllReduceSum replaces each tensor with the sum of it over the ranks.
func (g *Group) AllReduceSum(xs []*ts.Tensor) error { return g.allReduce(xs, false) }

func (g *Group) allReduce(xs []*ts.Tensor, mean bool) error {
	if len(xs) == 0 {
		return nil
	}
	hs, free := handles(xs)
	defer free()
	avg := 0
	if mean {
		avg = 1
	}
	return g.check("all-reduce", C.call_allreduce(fnReduce, g.h, hs, C.int(len(xs)), C.int(avg), C.longlong(BucketBytes)))
}

// Broadcast copies root's tensors into every rank's, in place.
func (g *Group) Broadcast(xs []*ts.Tensor, root int) error {
	if len(xs) == 0 {
		return nil
	}
	hs, free := handles(xs)
	defer free()
	return g.check("broadcast", C.call_broadcast(fnBcast, g.h, hs, C.int(len(xs)), C.int(root)))
}

// Barrier returns when every rank has reached it.
func (g *Group) Barrier() error {
	return g.check("barrier", C.call_barrier(fnBarrier, g.h))
}

// Set stores value under key in the world's TCPStore.
func (g *Group) Set(key string, value []byte) error {
	k := C.CString(key)
	defer C.free(unsafe.Pointer(k))
	v := C.malloc(C.size_t(len(value) + 1))
	defer C.free(v)
	copy(unsafe.Slice((*byte)(v), len(value)+1), value)
	if err := cError(C.call_set(fnSet, g.h, k, (*C.char)(v), C.int(len(value)))); err != nil {
		return fmt.Errorf("distributed: rank %d: store set %q: %w: %w", g.cfg.Rank, key, ErrWorld, err)
	}
	return nil
}

// Get waits up to timeout for key in the world's TCPStore and returns its
// value.
func (g *Group) Get(key string, timeout time.Duration) ([]byte, error) {
	k := C.CString(key)
	defer C.free(unsafe.Pointer(k))
	var v *C.char
	var n C.int
	if err := cError(C.call_get(fnGet, g.h, k, C.longlong(timeout.Milliseconds()), &v, &n)); err != nil {
		return nil, fmt.Errorf("distributed: rank %d: waiting for %q from rank 0: %w: %w", g.cfg.Rank, key, ErrWorld, err)
	}
	defer C.free(unsafe.Pointer(v))
	return C.GoBytes(unsafe.Pointer(v), n), nil
}

// Close leaves the world and frees the group.
func (g *Group) Close() {
	if g == nil || g.closed {
		return
	}
	g.closed = true
	C.call_destroy(fnDestroy, g.h)
}

func (g *Group) check(op string, cerr *C.char) error {
	g.collect++
	if err := cError(cerr); err != nil {
		return fmt.Errorf("distributed: rank %d of %d: %s #%d failed (another rank died or stalled past the %v timeout?): %w: %w",
			g.cfg.Rank, g.cfg.World, op, g.collect, g.cfg.Timeout, ErrWorld, err)
	}
	return nil
}

// handles is a C array of the tensors' handles; free releases it.
func handles(xs []*ts.Tensor) (*unsafe.Pointer, func()) {
	arr := C.malloc(C.size_t(len(xs)) * C.size_t(unsafe.Sizeof(uintptr(0))))
	s := unsafe.Slice((*unsafe.Pointer)(arr), len(xs))
	for i, x := range xs {
		s[i] = x.Ctensor()
	}
	return (*unsafe.Pointer)(arr), func() { C.free(arr) }
}

func cError(cerr *C.char) error {
	if cerr == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(cerr))
	return errors.New(C.GoString(cerr))
}
