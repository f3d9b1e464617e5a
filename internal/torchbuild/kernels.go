package torchbuild

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/reproml/albert/kernels/native"
)

// kernelsStamp records which source and flags built the kernels library.
const kernelsStamp = "albert_kernels.stamp"

// buildKernels compiles the fused CPU kernels (kernels/native/cpp) into
// libalbert_kernels.so in libDir unless the library there was built from the
// same source with the same flags. It has its own stamp, not the wrapper's
// cache key, so editing a kernel recompiles one file (~15 s), not libtch.
//
// The unit is compiled with -fopenmp, because ATen's parallel_for is an
// inline OpenMP loop, but linked without an OpenMP runtime: its GOMP symbols
// bind to the one libtorch already loaded (Debian's libgomp, or the copy a
// PyTorch wheel bundles), so the process never holds two thread pools.
//
// The multi-tensor LAMB (albert_lamb_foreach) is the newest ATen API the
// library uses and the one most likely to differ across libtorch versions;
// if the whole unit does not compile, it is compiled once more without it
// (-DALBERT_NO_FOREACH), so the other kernels and the precision switches
// survive and the trainer uses composed ops for the update.
func buildKernels(ctx context.Context, o Options, lt Libtorch, libDir string) (rebuilt bool, err error) {
	compile := append(lt.CompileFlags(), "-O3", "-fopenmp", "-fno-math-errno")
	link := append([]string{"-shared", "-Wl,-soname," + native.Library}, kernelLinkFlags(lt)...)
	lib := nativeLib{
		Library: native.Library, Source: native.Source, Stem: "albert_kernels", Stamp: kernelsStamp,
		Temp: "kernels-", What: "the fused kernels", Compile: compile, Link: link,
	}
	rebuilt, err = buildNative(ctx, o, libDir, lib)
	if err == nil || ctx.Err() != nil {
		return rebuilt, err
	}
	fmt.Fprintf(o.Log, "torchbuild: warning: %v\ntorchbuild: retrying without the multi-tensor LAMB (albert_lamb_foreach)\n", err)
	lib.Compile = append(compile[:len(compile):len(compile)], "-DALBERT_NO_FOREACH")
	lib.What = "the fused kernels without the multi-tensor LAMB"
	rebuilt, rerr := buildNative(ctx, o, libDir, lib)
	if rerr != nil {
		return false, fmt.Errorf("%w; and without the multi-tensor LAMB: %w", err, rerr)
	}
	return rebuilt, nil
}

// kernelsOrWarn builds the kernels and only warns when that fails: the
// wrapper works without them (package kernels falls back to composed ops,
// and exp doctor says so), so a libtorch the kernels do not compile against
// still gets a working build. This repository's tests require the kernels
// (kernels.TestKernelsLoaded), so CI does not pass without them.
func kernelsOrWarn(ctx context.Context, o Options, lt Libtorch, libDir string) {
	if _, err := buildKernels(ctx, o, lt, libDir); err != nil {
		fmt.Fprintf(o.Log, "torchbuild: warning: %v\ntorchbuild: exp will run the composed libtorch ops instead of the fused kernels\n", err)
	}
}

// kernelLinkFlags link the kernels against libtorch's CPU library only: the
// one entry that runs on CUDA (albert_lamb_foreach) calls ATen through the
// dispatcher, which finds the CUDA kernels in libtorch_cuda, already loaded
// by libtch.so; the OpenMP runtime comes from libtorch.
func kernelLinkFlags(lt Libtorch) []string {
	return []string{"-L" + lt.LibDir, "-Wl,-rpath," + lt.LibDir, "-ltorch_cpu", "-lc10"}
}

// nativeLib is one of our C++ libraries that torchbuild compiles beside the
// wrapper (the kernels, the c10d binding): one source file, its own stamp.
type nativeLib struct {
	Library string // the shared library's file name
	Source  []byte // the C++ source
	Stem    string // the source's and object's file name without extension
	Stamp   string // the stamp's file name in libDir
	Temp    string // the prefix of the build folder made in libDir
	What    string // what the log says is being compiled
	Compile []string
	Link    []string
}

// buildNative compiles n into libDir unless the library there was built
// from the same source with the same compiler and flags, as its stamp (the
// sha256 of those) says. The library is built in a folder of its own and
// renamed into place, then stamped, so a failed build leaves neither.
func buildNative(ctx context.Context, o Options, libDir string, n nativeLib) (rebuilt bool, err error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n", o.CXX, strings.Join(n.Compile, " "), strings.Join(n.Link, " "))
	h.Write(n.Source)
	want := hex.EncodeToString(h.Sum(nil))
	lib := filepath.Join(libDir, n.Library)
	if got, err := os.ReadFile(filepath.Join(libDir, n.Stamp)); err == nil && string(got) == want && fileExists(lib) {
		return false, nil
	}
	fmt.Fprintf(o.Log, "torchbuild: compiling %s into %s\n", n.What, lib)
	tmp, err := os.MkdirTemp(libDir, n.Temp)
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, n.Stem+".cpp")
	if err := os.WriteFile(src, n.Source, 0o644); err != nil {
		return false, err
	}
	obj := filepath.Join(tmp, n.Stem+".o")
	so := filepath.Join(tmp, n.Library)
	steps := [][]string{
		append(n.Compile[:len(n.Compile):len(n.Compile)], "-c", src, "-o", obj),
		append([]string{"-o", so, obj}, n.Link...),
	}
	for _, args := range steps {
		cmd := exec.CommandContext(ctx, o.CXX, args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return false, fmt.Errorf("torchbuild: building %s: %v\n%s", n.Library, err, tail(string(out), 3000))
		}
	}
	if err := os.Rename(so, lib); err != nil {
		return false, err
	}
	return true, os.WriteFile(filepath.Join(libDir, n.Stamp), []byte(want), 0o644)
}
