// Command exp runs the ALBERT ablations: it expands experiment files into runs,
// trains them, stores every number in SQLite and draws the paper's figures and
// tables next to what was reproduced.
//
// Each subcommand lives in its own file and adds itself to root in init; this
// package only wires flags to the packages that do the work.
package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/reproml/albert/backend"
)

var root = &cobra.Command{
	Use:           "exp",
	Short:         "Reproduce the ALBERT paper's ablations and compare them with the paper",
	SilenceUsage:  true,
	SilenceErrors: true,
}

func main() {
	backend.SetProcessEnv()
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "exp:", err)
		os.Exit(1)
	}
}

// libtorch's grad mode and error slot are per OS thread: keep every torch
// call of the CLI on the main thread (see backend/thread.go).
func init() { runtime.LockOSThread() }
