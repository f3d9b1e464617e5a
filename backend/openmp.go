package backend

import (
	"os"
	"syscall"
)

// PassiveOpenMP makes libtorch's OpenMP threads sleep, not spin, while they
// wait for work, by re-executing the program with OMP_WAIT_POLICY=PASSIVE
// unless the variable is already set. libgomp reads it once, when it is
// loaded — before any Go code runs — so setting it later has no effect.
//
// Why: with two cores, spinning threads that share the machine with any
// other busy process (a second run, a test, a browser) slow every small op
// by an order of magnitude (measured: a CPU-profile training run went from
// 499 to ~6,000 tokens/s next to another process). When the machine is
// idle the cost of passive waiting is small (see bench/RESULTS.md).
//
// Call it first thing in main; it returns only if no re-exec happened.
func PassiveOpenMP() {
	if _, set := os.LookupEnv("OMP_WAIT_POLICY"); set {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	env := append(os.Environ(), "OMP_WAIT_POLICY=PASSIVE")
	syscall.Exec(exe, os.Args, env) // returns only on failure: then run as we are
}
