package results

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The claim helper: when the test binary is started with these variables it
// claims every run of the database as one separate process and prints the
// ids it was granted.
const (
	helperDB   = "RESULTS_CLAIM_HELPER_DB"
	helperGo   = "RESULTS_CLAIM_HELPER_T0" // unix ns: run i is claimed at T0 + i*slot by every process
	helperName = "RESULTS_CLAIM_HELPER_NAME"
)

func TestMain(m *testing.M) {
	if db := os.Getenv(helperDB); db != "" {
		os.Exit(claimHelper(db, os.Getenv(helperGo), os.Getenv(helperName)))
	}
	os.Exit(m.Run())
}

// slot spaces the claims so that all processes hit the same run at the same
// moment (wall-clock barrier), which is the contention being tested.
const slot = 5 * time.Millisecond

func claimHelper(db, t0s, name string) int {
	t0ns, err := strconv.ParseInt(t0s, 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	t0 := time.Unix(0, t0ns)
	s, err := Open(db)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	runs, err := s.Runs(RunFilter{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for i, r := range runs {
		time.Sleep(time.Until(t0.Add(time.Duration(i) * slot)))
		c, err := s.ClaimRun(r.ID, name, time.Hour, false)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if c.Granted {
			fmt.Println(r.ID)
		}
	}
	return 0
}

// Separate processes claiming the same runs: each run goes to exactly one.
func TestClaimRaceProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "exp.db")
	s := openT(t, path)
	exp, _ := s.EnsureExperiment("e", "e.toml", "h")
	const nRuns, nProcs = 60, 3
	for i := 0; i < nRuns; i++ {
		if _, _, err := s.AddRun(exp, spec(fmt.Sprint("r", i))); err != nil {
			t.Fatal(err)
		}
	}
	// Start far enough ahead for every process to have opened the database.
	t0 := time.Now().Add(time.Second).UnixNano()
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for p := 0; p < nProcs; p++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperDB+"="+path, helperGo+"="+strconv.FormatInt(t0, 10), helperName+"="+fmt.Sprintf("proc:%d", p))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, &out)
	}
	seen := map[int64]int{}
	for p, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper %d: %v", p, err)
		}
		n := 0
		sc := bufio.NewScanner(outs[p])
		for sc.Scan() {
			id, err := strconv.ParseInt(sc.Text(), 10, 64)
			if err != nil {
				t.Fatalf("helper %d printed %q", p, sc.Text())
			}
			seen[id]++
			n++
		}
		t.Logf("process %d was granted %d runs", p, n)
	}
	if len(seen) != nRuns {
		t.Errorf("%d distinct runs granted, want %d", len(seen), nRuns)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("run %d granted %d times", id, n)
		}
	}
	if n := count(t, s, `SELECT COUNT(*) FROM runs WHERE status = 'running' AND attempts = 1`); n != nRuns {
		t.Errorf("%d runs running with one attempt, want %d", n, nRuns)
	}
}
