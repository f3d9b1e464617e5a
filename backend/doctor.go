package backend

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Facts is what `exp doctor` reports; the JSON keys are a stable interface.
type Facts struct {
	GoVersion       string   `json:"go_version"`
	GotchVersion    string   `json:"gotch_version"`
	LibtorchVersion string   `json:"libtorch_version"`
	LibtorchDir     string   `json:"libtorch_dir"`
	Wrapper         string   `json:"wrapper"` // the libtch.so actually loaded
	BLAS            string   `json:"blas"`    // BLAS libraries actually loaded
	Threads         int      `json:"threads"`
	CPUs            int      `json:"cpus"`
	CUDA            bool     `json:"cuda"`
	CUDADevices     []string `json:"cuda_devices"`
	StubbedOps      int      `json:"stubbed_ops"`
	MatmulGFLOPS    float64  `json:"matmul_gflops"` // fp32, measured now on the default device
	OMPWaitPolicy   string   `json:"omp_wait_policy"`
	Malloc          string   `json:"malloc"` // tcmalloc (preloaded by exp) or glibc
	Host            string   `json:"host"`
}

// Doctor gathers the facts; measuring the matmul rate takes about a second.
func Doctor() (Facts, error) {
	if err := Init(); err != nil {
		return Facts{}, err
	}
	f := Facts{GoVersion: runtime.Version(), GotchVersion: GotchVersion(), Threads: Threads(), CPUs: runtime.NumCPU()}
	f.Host, _ = os.Hostname()
	f.OMPWaitPolicy = os.Getenv("OMP_WAIT_POLICY")
	f.Malloc = Malloc()
	bi, err := WrapperInfo()
	if err != nil {
		return f, err
	}
	f.LibtorchVersion, f.LibtorchDir, f.StubbedOps = bi.LibtorchVersion, bi.LibtorchDir, len(bi.Stubbed)
	n := CUDADevices()
	f.CUDA = n > 0
	f.CUDADevices = cudaNames(n)
	dev, _ := Device("auto")
	if f.MatmulGFLOPS, err = MatmulGFLOPS(dev, 1024); err != nil {
		return f, err
	}
	f.Wrapper, f.BLAS = loadedLibraries() // after the matmul: BLAS may load lazily
	return f, nil
}

// GotchVersion is gotch's module version in this binary's build info.
func GotchVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/sugarme/gotch" {
				return d.Version
			}
		}
	}
	return "unknown"
}

// loadedLibraries reads /proc/self/maps for the wrapper and BLAS libraries
// really mapped into this process (symlinks resolved: Debian's libblas.so.3
// is an alternative that points at OpenBLAS or the slow reference BLAS).
func loadedLibraries() (wrapper, blas string) {
	fh, err := os.Open("/proc/self/maps")
	if err != nil {
		return "", "unknown (no /proc/self/maps)"
	}
	defer fh.Close()
	seen := map[string]bool{}
	var blasLibs []string
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		p := fields[len(fields)-1]
		if seen[p] || !strings.HasPrefix(p, "/") {
			continue
		}
		seen[p] = true
		base := strings.ToLower(filepath.Base(p))
		switch {
		case strings.HasPrefix(base, "libtch.so"):
			wrapper = p
		case strings.Contains(base, "blas") || strings.Contains(base, "mkl") || strings.Contains(base, "lapack"):
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				real = p
			}
			blasLibs = append(blasLibs, real)
		}
	}
	sort.Strings(blasLibs)
	if len(blasLibs) == 0 {
		return wrapper, "none loaded (libtorch's own kernels or MKL linked statically)"
	}
	return wrapper, strings.Join(blasLibs, ", ")
}

// MatmulGFLOPS measures fp32 n×n matrix products on dev: the ceiling that
// benchmarks compare a training step's achieved rate against.
func MatmulGFLOPS(dev gotch.Device, n int64) (float64, error) {
	return MatmulGFLOPSOf(dev, n, gotch.Float)
}

// MatmulGFLOPSOf times n×n products of dtype on dev for half a second (at
// least 3 after a warm-up), waiting for queued GPU work before reading the
// clock: the ceiling for a step run in that precision (bf16 for autocast).
func MatmulGFLOPSOf(dev gotch.Device, n int64, dtype gotch.DType) (float64, error) {
	var s Scope
	defer s.Free()
	operand := func() (*ts.Tensor, error) {
		x, err := ts.Randn([]int64{n, n}, gotch.Float, dev)
		if err != nil {
			return nil, err
		}
		s.T(x)
		if dtype == gotch.Float {
			return x, nil
		}
		y, err := x.Totype(dtype, false)
		if err != nil {
			return nil, fmt.Errorf("a %v matmul operand on %s: %w", dtype, DeviceName(dev), err)
		}
		return s.T(y), nil
	}
	a, err := operand()
	if err != nil {
		return 0, err
	}
	b, err := operand()
	if err != nil {
		return 0, err
	}
	run := func() error {
		c, err := a.Matmul(b, false)
		if err != nil {
			return fmt.Errorf("a %v matmul on %s: %w", dtype, DeviceName(dev), err)
		}
		return c.Drop()
	}
	// sync waits for queued GPU work: reading a value back orders after it.
	sync := func() error {
		sum, err := a.Sum(gotch.Float, false)
		if err != nil {
			return err
		}
		defer sum.MustDrop()
		_ = Float64s(sum)
		return nil
	}
	if err := run(); err != nil { // warm-up
		return 0, err
	}
	if err := sync(); err != nil {
		return 0, err
	}
	reps, start := 0, time.Now()
	for time.Since(start) < 500*time.Millisecond || reps < 3 {
		if err := run(); err != nil {
			return 0, err
		}
		reps++
		if dev.IsCuda() && reps%50 == 0 {
			if err := sync(); err != nil {
				return 0, err
			}
		}
	}
	if err := sync(); err != nil {
		return 0, err
	}
	return 2 * float64(n*n*n) * float64(reps) / time.Since(start).Seconds() / 1e9, nil
}

// cudaNames asks nvidia-smi for device names (libtorch has no C API for
// them); it falls back to "cuda:N".
func cudaNames(n int) []string {
	names := []string{}
	if n == 0 {
		return names
	}
	out, err := exec.Command("nvidia-smi", "--query-gpu=name", "--format=csv,noheader").Output()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i := 0; i < n; i++ {
		if err == nil && i < len(lines) && lines[i] != "" {
			names = append(names, strings.TrimSpace(lines[i]))
		} else {
			names = append(names, "cuda:"+string(rune('0'+i)))
		}
	}
	return names
}

// BLAS names the BLAS libraries mapped into this process right now.
func BLAS() string {
	_, b := loadedLibraries()
	return b
}
