package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// workerEnv marks a process started by --jobs, so that it trains instead of
// starting workers of its own.
const workerEnv = "EXP_RUN_WORKER"

// runWorkers is `exp run --jobs N` on the CPU: N copies of this command,
// each with cores/N libtorch threads (ALBERT_THREADS), that claim runs from
// the same database as separate `exp run`s on a cluster would. On the CPU
// profile's small models two one-thread runs train about as many tokens/s
// together as one two-thread run, and each overlaps the other's
// single-threaded parts (evals, batching, checkpoints). Each worker's lines
// are prefixed "[wK]". It returns an error if any worker failed.
func runWorkers(out io.Writer, n int, args []string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("exp run --jobs: %w", err)
	}
	threads := max(1, runtime.NumCPU()/n)
	var mu sync.Mutex // one line at a time
	errs := make([]error, n)
	var wg sync.WaitGroup
	for k := range n {
		if k > 0 {
			time.Sleep(time.Second) // the first worker creates and migrates the database alone
		}
		cmd := exec.Command(self, args...)
		cmd.Env = append(os.Environ(), workerEnv+"="+strconv.Itoa(k+1), "ALBERT_THREADS="+strconv.Itoa(threads))
		pr, pw := io.Pipe()
		cmd.Stdout, cmd.Stderr = pw, pw
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("exp run --jobs: worker %d: %w", k+1, err)
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				mu.Lock()
				fmt.Fprintf(out, "[w%d] %s\n", k+1, sc.Text())
				mu.Unlock()
			}
		}()
		go func() {
			defer wg.Done()
			errs[k] = cmd.Wait()
			pw.Close()
		}()
	}
	wg.Wait()
	for k, e := range errs {
		if e != nil {
			errs[k] = fmt.Errorf("worker %d: %w", k+1, e)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("exp run --jobs %d: %w", n, err)
	}
	return nil
}
