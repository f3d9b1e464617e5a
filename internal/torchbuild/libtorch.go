package torchbuild

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Libtorch describes one libtorch installation: Debian's (/usr), an official
// libtorch zip, or a PyTorch installation's torch/ folder.
type Libtorch struct {
	Dir         string   // what the user named (LIBTORCH)
	IncludeDirs []string // -I flags, in order
	LibDir      string   // holds libtorch.so, libc10.so, ...
	Version     string   // e.g. "1.13.0" from torch/version.h
	CUDA        bool     // libtorch_cuda.so is present
	CXX11ABI    bool     // built with _GLIBCXX_USE_CXX11_ABI=1
}

var (
	versionRe   = regexp.MustCompile(`#define\s+TORCH_VERSION_(MAJOR|MINOR|PATCH)\s+(\d+)`)
	versionPyRe = regexp.MustCompile(`(?m)^__version__\s*=\s*['"]([^'"]+)['"]`)
)

// Probe finds headers, libraries, version, CUDA and C++ ABI of the libtorch
// under dir, and says precisely what is missing when it is not one.
func Probe(dir string) (Libtorch, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Libtorch{}, err
	}
	lt := Libtorch{Dir: abs}

	// Headers: <dir>/include/torch/csrc/api/include/torch/version.h in every layout.
	inc := filepath.Join(abs, "include")
	api := filepath.Join(inc, "torch", "csrc", "api", "include")
	vh := filepath.Join(api, "torch", "version.h")
	src, err := os.ReadFile(vh)
	if err != nil {
		return Libtorch{}, fmt.Errorf("libtorch %s: no C++ headers (%s missing); on Debian install libtorch-dev, or point LIBTORCH at a libtorch or torch/ folder", abs, vh)
	}
	parts := map[string]string{}
	for _, m := range versionRe.FindAllSubmatch(src, -1) {
		parts[string(m[1])] = string(m[2])
	}
	switch {
	case len(parts) == 3:
		lt.Version = parts["MAJOR"] + "." + parts["MINOR"] + "." + parts["PATCH"]
	default:
		// A PyTorch installation's torch/ folder also has version.py; a
		// libtorch zip has build-version.
		if py, err := os.ReadFile(filepath.Join(abs, "version.py")); err == nil {
			if m := versionPyRe.FindSubmatch(py); m != nil {
				lt.Version = string(m[1])
			}
		}
		if bv, err := os.ReadFile(filepath.Join(abs, "build-version")); lt.Version == "" && err == nil {
			lt.Version = strings.TrimSpace(string(bv))
		}
		if lt.Version == "" {
			return Libtorch{}, fmt.Errorf("libtorch %s: cannot read the version from %s, version.py or build-version", abs, vh)
		}
	}
	lt.IncludeDirs = []string{inc, api}

	// Libraries: <dir>/lib (zip, torch/ folder) or Debian's multiarch folder.
	for _, cand := range []string{filepath.Join(abs, "lib"), filepath.Join(abs, "lib", "x86_64-linux-gnu"), filepath.Join(abs, "lib", "aarch64-linux-gnu")} {
		if fileExists(filepath.Join(cand, "libtorch_cpu.so")) {
			lt.LibDir = cand
			break
		}
	}
	if lt.LibDir == "" {
		return Libtorch{}, fmt.Errorf("libtorch %s: libtorch_cpu.so not found under lib/ (is this a libtorch folder?)", abs)
	}
	lt.CUDA = fileExists(filepath.Join(lt.LibDir, "libtorch_cuda.so"))

	// The C++ ABI: a libc10 built with the new ABI exports std::__cxx11 names.
	c10, err := os.ReadFile(filepath.Join(lt.LibDir, "libc10.so"))
	if err != nil {
		return Libtorch{}, fmt.Errorf("libtorch %s: %w", abs, err)
	}
	lt.CXX11ABI = bytes.Contains(c10, []byte("__cxx11"))
	return lt, nil
}

// CompileFlags are the C++ flags every translation unit of the wrapper uses.
func (lt Libtorch) CompileFlags() []string {
	abi := "0"
	if lt.CXX11ABI {
		abi = "1"
	}
	f := []string{"-std=c++17", "-fPIC", "-D_GLIBCXX_USE_CXX11_ABI=" + abi,
		"-Wno-deprecated-declarations", "-Wno-unused-variable", "-Wno-unused-function", "-Wno-sign-compare"}
	for _, d := range lt.IncludeDirs {
		if d == "/usr/include" || d == "/usr/local/include" {
			continue // already searched; naming it again breaks #include_next
		}
		f = append(f, "-isystem", d)
	}
	return f
}

// LinkFlags link the wrapper against libtorch, with CUDA only when present.
func (lt Libtorch) LinkFlags() []string {
	f := []string{"-L" + lt.LibDir, "-Wl,-rpath," + lt.LibDir, "-Wl,--no-as-needed"}
	if lt.CUDA {
		f = append(f, "-ltorch_cuda", "-lc10_cuda")
	}
	return append(f, "-ltorch", "-ltorch_cpu", "-lc10", "-Wl,--as-needed")
}

func (lt Libtorch) String() string {
	dev := "CPU"
	if lt.CUDA {
		dev = "CUDA"
	}
	return fmt.Sprintf("libtorch %s (%s) at %s", lt.Version, dev, strings.TrimSuffix(lt.Dir, "/"))
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
