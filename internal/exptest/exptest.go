// Package exptest holds what the end-to-end tests of cmd/exp, slurm and
// experiments share: the repository root with its default corpus, the exp
// binary built once per test process, tiny experiment files, and waiting
// for (or killing a run at) a checkpoint.
//
// It is imported by tests only, and imports neither cmd/exp nor the
// packages whose tests use it (only data, for the corpus's path).
package exptest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reproml/albert/data"
)

// Cache is the default corpus cache, relative to the repository root (what
// `make setup` fills, and where exp reads it when run from the root).
const Cache = "out/cache"

// Repo is the repository root's absolute path. It skips the test when the
// default corpus (Cache, filled by `make setup`) is missing.
func Repo(t testing.TB) string {
	t.Helper()
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("exptest: cannot locate the repository")
	}
	repo := filepath.Join(filepath.Dir(self), "..", "..")
	if _, err := os.Stat(data.CorpusPath(filepath.Join(repo, Cache))); err != nil {
		t.Skipf("default corpus not fetched (run `make setup`): %v", err)
	}
	return repo
}

var exp struct {
	sync.Mutex
	main bool   // Main runs this process's tests
	dir  string // the binary's folder, removed when Main returns
	bin  string // set once built
	err  error  // the build's failure, reported to every caller
}

// Main runs a package's tests and then removes the exp binary Exp built.
// A package whose tests call Exp calls it from TestMain:
//
//	func TestMain(m *testing.M) { exptest.Main(m) }
func Main(m *testing.M) {
	exp.Lock()
	exp.main = true
	exp.Unlock()
	code := m.Run()
	if exp.dir != "" {
		os.RemoveAll(exp.dir)
	}
	os.Exit(code)
}

// Exp is the path of the exp command (cmd/exp), built the first time a test
// of this process asks for it; later tests get the same binary.
func Exp(t testing.TB) string {
	t.Helper()
	exp.Lock()
	defer exp.Unlock()
	if !exp.main {
		t.Fatal("exptest.Exp needs the package's TestMain to call exptest.Main (it removes the binary)")
	}
	if exp.bin == "" && exp.err == nil {
		exp.err = build()
	}
	if exp.err != nil {
		t.Fatal(exp.err)
	}
	return exp.bin
}

func build() error {
	dir, err := os.MkdirTemp("", "exptest-")
	if err != nil {
		return err
	}
	exp.dir = dir
	bin := filepath.Join(dir, "exp")
	_, self, _, _ := runtime.Caller(0)
	cmd := exec.Command("go", "build", "-o", bin, "github.com/reproml/albert/cmd/exp")
	cmd.Dir = filepath.Dir(self) // inside the module (and its go.work)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	exp.bin = bin
	return nil
}

// Experiment is a tiny pretraining experiment file: an ALBERT of E 16, H 32,
// 2 heads over 64-token sequences and an 8000-piece vocabulary, small
// enough to train several times in a test.
type Experiment struct {
	Name      string
	Objective string // "sop" when empty
	Seeds     []int  // [1] when empty
	Layers    int    // num_layers; 2 when 0
	Data      string // [base.data]'s lines after seq_len and max_predictions, e.g. EvalData
	Train     Train
	Tail      string // after [base.train], e.g. a [downstream] table
}

// EvalData is the Data of most tests: a small held-out set, every
// document seen once.
const EvalData = "eval_examples = 64\ndupe_factor = 0\n"

// Train is [base.train]: each key that is not zero, in this order.
type Train struct {
	Steps, BatchSize, WarmupSteps int
	LR                            float64
	LogEvery, EvalEvery           int
	CheckpointEvery               int
}

// TOML is the table's lines.
func (tr Train) TOML() string {
	var b strings.Builder
	for _, kv := range []struct {
		key string
		v   any
	}{{"steps", tr.Steps}, {"batch_size", tr.BatchSize}, {"warmup_steps", tr.WarmupSteps}, {"lr", tr.LR},
		{"log_every", tr.LogEvery}, {"eval_every", tr.EvalEvery}, {"checkpoint_every", tr.CheckpointEvery}} {
		if kv.v != 0 && kv.v != 0.0 {
			fmt.Fprintf(&b, "%s = %v\n", kv.key, kv.v)
		}
	}
	return b.String()
}

// TOML is the experiment file's text.
func (e Experiment) TOML() string {
	objective, layers, seeds := e.Objective, e.Layers, e.Seeds
	if objective == "" {
		objective = "sop"
	}
	if layers == 0 {
		layers = 2
	}
	if len(seeds) == 0 {
		seeds = []int{1}
	}
	s := make([]string, len(seeds))
	for i, v := range seeds {
		s[i] = fmt.Sprint(v)
	}
	return fmt.Sprintf(`name = %q
[base]
objective = %q
seeds = [%s]
[base.model]
vocab_size = 8000
embedding_size = 16
hidden_size = 32
num_layers = %d
num_heads = 2
max_positions = 64
[base.data]
seq_len = 64
max_predictions = 10
%s[base.train]
%s%s`, e.Name, objective, strings.Join(s, ", "), layers, e.Data, e.Train.TOML(), e.Tail)
}

// Write writes body to dir/name and returns its path.
func Write(t testing.TB, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// WaitForFile waits until a file matches pattern, looking every poll. After
// 3 minutes without one it fails the test, naming what it waited for with
// what onTimeout returns (which may also stop whatever should have
// written the file).
func WaitForFile(t testing.TB, pattern string, poll time.Duration, what string, onTimeout func() string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if ck, _ := filepath.Glob(pattern); len(ck) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 3 minutes:\n%s", what, onTimeout())
		}
		time.Sleep(poll)
	}
}

// KillAtCheckpoint starts cmd, sends it SIGKILL as soon as a file matching
// pattern appears (the riskiest moment: the checkpoint just written) and
// returns what it printed. It fails the test after 3 minutes without one.
func KillAtCheckpoint(t testing.TB, cmd *exec.Cmd, pattern, what string) string {
	t.Helper()
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	WaitForFile(t, pattern, 2*time.Millisecond, what, func() string {
		cmd.Process.Kill()
		return log.String()
	})
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	return log.String()
}
