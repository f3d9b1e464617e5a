package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reproml/albert/data"
)

// repoWithCorpus is the repository root; it skips the test when the default
// corpus (out/cache, filled by `make setup`) is missing.
func repoWithCorpus(t *testing.T) string {
	t.Helper()
	repo, _ := filepath.Abs("../..")
	if _, err := os.Stat(data.CorpusPath(filepath.Join(repo, cacheRoot))); err != nil {
		t.Skipf("default corpus not fetched (run `make setup`): %v", err)
	}
	return repo
}

// buildExp builds this command into dir and returns the binary's path.
func buildExp(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "exp")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// killAtCheckpoint starts cmd, sends it SIGKILL as soon as a file matching
// pattern appears (the riskiest moment: the checkpoint just written) and
// returns what it printed. It fails the test after 3 minutes without one.
func killAtCheckpoint(t *testing.T, cmd *exec.Cmd, pattern, what string) string {
	t.Helper()
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if ck, _ := filepath.Glob(pattern); len(ck) > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no %s within 3 minutes:\n%s", what, log.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	return log.String()
}
