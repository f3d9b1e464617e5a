package torchbuild

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/reproml/albert/distributed/native"
)

// distStamp records which source and flags built the c10d binding.
const distStamp = "albert_dist.stamp"

// distFeatures are the process groups the binding can compile against this
// libtorch, and the flags that select them: Gloo where Gloo's headers are
// found (Debian: libgloo-dev; libtorch ships ProcessGroupGloo but not the
// headers it includes), NCCL where the libtorch is a CUDA one and nccl.h is
// found (a PyTorch wheel's nvidia/nccl/include). Neither is an error: the
// binding then says at init which backend it lacks.
type distFeatures struct {
	Gloo, NCCL bool
	Flags      []string // -D and -isystem flags
	Link       []string // extra libraries (CUDA's, for NCCL)
}

func probeDist(lt Libtorch) distFeatures {
	return probeDistIn(lt, []string{"/usr/include", "/usr/local/include"})
}

// probeDistIn is probeDist searching system, after libtorch's own include
// folders, for Gloo's and NCCL's headers.
func probeDistIn(lt Libtorch, system []string) distFeatures {
	var f distFeatures
	incs := append(append([]string{}, lt.IncludeDirs...), system...)
	for _, d := range incs {
		if fileExists(filepath.Join(d, "gloo", "algorithm.h")) {
			f.Gloo = true
			f.Flags = append(f.Flags, "-DUSE_C10D_GLOO")
			break
		}
	}
	if lt.CUDA {
		// A wheel's CUDA headers live beside torch/ in site-packages/nvidia/*/include.
		var extra []string
		nv, _ := filepath.Glob(filepath.Join(filepath.Dir(lt.Dir), "nvidia", "*", "include"))
		extra = append(extra, nv...)
		if len(system) > 0 {
			extra = append(extra, "/usr/local/cuda/include")
		}
		for _, d := range append(incs, extra...) {
			if fileExists(filepath.Join(d, "nccl.h")) {
				f.NCCL = true
				break
			}
		}
		if f.NCCL {
			f.Flags = append(f.Flags, "-DUSE_C10D_NCCL", "-DUSE_CUDA")
			for _, d := range extra {
				if fileExists(d) {
					f.Flags = append(f.Flags, "-isystem", d)
				}
			}
			f.Link = []string{"-Wl,--no-as-needed", "-ltorch_cuda", "-lc10_cuda", "-Wl,--as-needed"}
		}
	}
	return f
}

// buildDist compiles the c10d binding (distributed/native/cpp) into
// libalbert_dist.so in libDir unless the library there was built from the
// same source with the same flags (its own stamp, as the kernels: editing
// it never rebuilds libtch). It is a library of its own, not part of the
// kernels', because it needs headers and libraries the kernels do not
// (Gloo's, CUDA's for NCCL): a libtorch without them keeps its kernels.
func buildDist(ctx context.Context, o Options, lt Libtorch, libDir string) (rebuilt bool, err error) {
	f := probeDist(lt)
	if !f.Gloo && !f.NCCL {
		return false, fmt.Errorf("%s: neither Gloo's headers (gloo/algorithm.h; on Debian: apt-get install libgloo-dev) nor NCCL's were found for %s", native.Library, lt)
	}
	compile := append(append(lt.CompileFlags(), "-O2"), f.Flags...)
	link := append([]string{"-shared", "-Wl,-soname," + native.Library}, kernelLinkFlags(lt)...)
	link = append(link, f.Link...)
	return buildNative(ctx, o, libDir, nativeLib{
		Library: native.Library, Source: native.Source, Stem: "albert_dist", Stamp: distStamp,
		Temp: "dist-", What: fmt.Sprintf("the c10d binding (gloo %v, nccl %v)", f.Gloo, f.NCCL), Compile: compile, Link: link,
	})
}

// distOrWarn builds the binding and only warns when that fails: only
// `exp run --nproc` (and a Slurm world) needs it, and it says so then.
func distOrWarn(ctx context.Context, o Options, lt Libtorch, libDir string) {
	if _, err := buildDist(ctx, o, lt, libDir); err != nil {
		fmt.Fprintf(o.Log, "torchbuild: warning: %v\ntorchbuild: exp run --nproc (data-parallel training) will be unavailable\n", err)
	}
}
