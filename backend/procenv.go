package backend

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// SetProcessEnv prepares the process environment that libgomp and the C
// allocator read once, when they are loaded — before any Go code runs — by
// re-executing the program with it, unless it is already in place:
//
//   - OMP_WAIT_POLICY=PASSIVE (unless set): libtorch's OpenMP threads sleep,
//     not spin, while they wait for work. With two cores, spinning threads
//     that share the machine with any other busy process slow every small op
//     by an order of magnitude (measured: a CPU-profile training run went
//     from 499 to ~6,000 tokens/s next to another process).
//   - LD_PRELOAD of tcmalloc (Debian's libtcmalloc-minimal4), when it is
//     installed and ALBERT_MALLOC is not "glibc". Under glibc's malloc the
//     training step's large, short-lived tensors fragment the heap: peak RSS
//     of a tiny-all run grew 14% from step 200 to 1200. With tcmalloc it
//     stayed flat to the byte, 60 MiB lower, and the step was ~5% faster
//     (bench/RESULTS.md).
//
// Call it first thing in main; it returns only if no re-exec happened.
func SetProcessEnv() {
	var add []string
	if _, set := os.LookupEnv("OMP_WAIT_POLICY"); !set {
		add = append(add, "OMP_WAIT_POLICY=PASSIVE")
	}
	if lib := tcmalloc(); lib != "" && os.Getenv("ALBERT_MALLOC") != "glibc" && !strings.Contains(os.Getenv("LD_PRELOAD"), "tcmalloc") {
		pre := lib
		if old := os.Getenv("LD_PRELOAD"); old != "" {
			pre = lib + ":" + old
		}
		add = append(add, "LD_PRELOAD="+pre)
	}
	if len(add) == 0 {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	env := os.Environ()
	for _, kv := range add {
		env = setEnv(env, kv)
	}
	syscall.Exec(exe, os.Args, env) // returns only on failure: then run as we are
}

// setEnv replaces or appends key=value in env.
func setEnv(env []string, kv string) []string {
	key := kv[:strings.IndexByte(kv, '=')+1]
	for i, e := range env {
		if strings.HasPrefix(e, key) {
			env[i] = kv
			return env
		}
	}
	return append(env, kv)
}

// tcmalloc is the path of an installed libtcmalloc_minimal, or "".
func tcmalloc() string {
	for _, dir := range []string{"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"} {
		p := filepath.Join(dir, "libtcmalloc_minimal.so.4")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Malloc names the C allocator this process runs with: "tcmalloc" when it
// is preloaded, else "glibc".
func Malloc() string {
	if strings.Contains(os.Getenv("LD_PRELOAD"), "tcmalloc") {
		return "tcmalloc"
	}
	return "glibc"
}
