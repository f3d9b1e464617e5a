package experiments

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reproml/albert/results"
)

// fake is a Trainer that records its jobs and answers from a script.
type fake struct {
	mu      sync.Mutex
	jobs    []Job
	calls   map[string]int // by config hash
	outcome func(j Job) (Outcome, error)
	delay   time.Duration
	active  atomic.Int32
	maxPar  atomic.Int32
}

func (f *fake) Train(ctx context.Context, j Job) (Outcome, error) {
	n := f.active.Add(1)
	defer f.active.Add(-1)
	for {
		m := f.maxPar.Load()
		if n <= m || f.maxPar.CompareAndSwap(m, n) {
			break
		}
	}
	f.mu.Lock()
	f.jobs = append(f.jobs, j)
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[j.Run.Hash]++
	f.mu.Unlock()
	if err := j.Store.Heartbeat(j.RunID, j.Run.Train.Steps); err != nil {
		return Outcome{}, err
	}
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	if f.outcome != nil {
		return f.outcome(j)
	}
	return Outcome{Status: results.StatusDone}, nil
}

func (f *fake) n() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.jobs)
}

func goodPlan(t *testing.T) *Plan {
	t.Helper()
	f, err := Parse("good.toml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	return mustPlan(t, f, "cpu")
}

func statuses(t *testing.T, db string) map[string]results.Status {
	t.Helper()
	st, err := results.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	runs, err := st.Runs(results.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]results.Status{}
	for _, r := range runs {
		m[r.Name] = r.Status
	}
	return m
}

func TestExecuteThenSkipAll(t *testing.T) {
	db := filepath.Join(t.TempDir(), "exp.db")
	p := goodPlan(t)
	tr := &fake{}
	var log strings.Builder
	sum, err := Execute(context.Background(), p, Options{DB: db, Trainer: tr, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Done != 4 || sum.Skipped != 0 || tr.n() != 4 {
		t.Fatalf("first run: %+v, %d trainer calls", sum, tr.n())
	}
	for name, s := range statuses(t, db) {
		if s != results.StatusDone {
			t.Errorf("%s is %s", name, s)
		}
	}
	// The store has the plan as planned: label, profile, scale, params, steps.
	st, _ := results.Open(db)
	runs, _ := st.Runs(results.RunFilter{Experiment: "t"})
	st.Close()
	if len(runs) != 4 || runs[0].Name != p.Runs[0].Label || runs[0].Profile != "cpu" || runs[0].Params != p.Runs[0].Params() ||
		runs[0].TotalSteps != 20 || !strings.Contains(runs[0].ScaleJSON, `"reference":"base"`) || runs[0].ConfigHash != p.Runs[0].Hash {
		t.Errorf("stored run %+v", runs[0])
	}
	start := time.Now()
	sum, err = Execute(context.Background(), p, Options{DB: db, Trainer: tr})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Skipped != 4 || sum.Done != 0 || tr.n() != 4 {
		t.Errorf("second run: %+v, %d trainer calls", sum, tr.n())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("skipping took %s", d)
	}
	if !strings.Contains(log.String(), "[4/4] done") {
		t.Errorf("log:\n%s", log.String())
	}
}

func TestFailedAndDivergedNeedRetry(t *testing.T) {
	db := filepath.Join(t.TempDir(), "exp.db")
	p := goodPlan(t)
	bad := &fake{outcome: func(j Job) (Outcome, error) {
		switch j.Run.Index {
		case 1:
			return Outcome{}, errors.New("out of memory")
		case 2:
			return Outcome{Status: results.StatusDiverged, Reason: "loss NaN at step 3"}, nil
		}
		return Outcome{}, nil
	}}
	sum, err := Execute(context.Background(), p, Options{DB: db, Trainer: bad})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Done != 2 || sum.Failed != 1 || sum.Diverged != 1 {
		t.Fatalf("%+v", sum)
	}
	st := statuses(t, db)
	if st[p.Runs[1].Label] != results.StatusFailed || st[p.Runs[2].Label] != results.StatusDiverged {
		t.Errorf("statuses %v", st)
	}
	s, _ := results.Open(db)
	r, _ := s.Run(2)
	s.Close()
	if r.Reason != "out of memory" {
		t.Errorf("failed run's reason %q", r.Reason)
	}

	again := &fake{}
	sum, _ = Execute(context.Background(), p, Options{DB: db, Trainer: again})
	if again.n() != 0 || sum.Skipped != 4 {
		t.Errorf("without --retry: %+v, %d calls", sum, again.n())
	}
	sum, _ = Execute(context.Background(), p, Options{DB: db, Trainer: again, Retry: true, RunsDir: t.TempDir()})
	if again.n() != 2 || sum.Done != 2 || sum.Skipped != 2 || sum.Retried != 2 {
		t.Errorf("with --retry: %+v, %d calls", sum, again.n())
	}
	for name, s := range statuses(t, db) {
		if s != results.StatusDone {
			t.Errorf("%s is %s after --retry", name, s)
		}
	}
	for _, j := range again.jobs {
		if j.Resume || j.Attempt != 2 {
			t.Errorf("retried job %s: resume %v attempt %d, want a fresh attempt 2", j.Run.Label, j.Resume, j.Attempt)
		}
	}
}

// claimAs marks run 0 of p as running under owner, as a crashed process
// leaves it.
func claimAs(t *testing.T, db string, p *Plan, owner string) int64 {
	t.Helper()
	st, err := results.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	exp, err := st.EnsureExperiment(p.Experiment, p.File, p.ContentHash)
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := st.AddRun(exp, RunSpec(p.Runs[0]))
	if err != nil {
		t.Fatal(err)
	}
	c, err := st.ClaimRun(id, owner, time.Hour, false)
	if err != nil || !c.Granted {
		t.Fatalf("claim: %+v %v", c, err)
	}
	return id
}

func TestStaleRunningIsResumed(t *testing.T) {
	db := filepath.Join(t.TempDir(), "exp.db")
	p := goodPlan(t)
	claimAs(t, db, p, "elsewhere:1")

	// Fresh heartbeat: another live process has it.
	tr := &fake{}
	sum, err := Execute(context.Background(), p, Options{DB: db, Trainer: tr, StaleAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Busy != 1 || sum.Done != 3 || tr.calls[p.Runs[0].Hash] != 0 {
		t.Fatalf("live owner: %+v", sum)
	}
	// Stale heartbeat: taken over and resumed.
	time.Sleep(30 * time.Millisecond)
	sum, err = Execute(context.Background(), p, Options{DB: db, Trainer: tr, StaleAfter: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Done != 1 || sum.Resumed != 1 || sum.Skipped != 3 {
		t.Fatalf("stale owner: %+v", sum)
	}
	last := tr.jobs[len(tr.jobs)-1]
	if !last.Resume || last.Run.Hash != p.Runs[0].Hash || last.Dir != filepath.Join(DefaultRunsDir, p.Runs[0].Hash) {
		t.Errorf("job %+v", last)
	}
}

// kill -9: the owner is a dead process of this host. Its run is taken over
// after a short grace, not after StaleAfter, and ends done exactly once.
func TestDeadLocalOwnerIsResumed(t *testing.T) {
	old := deadOwnerGrace
	deadOwnerGrace = 50 * time.Millisecond
	defer func() { deadOwnerGrace = old }()

	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("no `true` to make a dead pid:", err)
	}
	host, _ := os.Hostname()
	dead := fmt.Sprintf("%s:%d", host, cmd.Process.Pid)
	if !ownerDead(dead) {
		t.Skip("pid reused")
	}
	if ownerDead(DefaultOwner()) || ownerDead("otherhost:1") {
		t.Fatal("ownerDead is wrong about a live or remote owner")
	}
	db := filepath.Join(t.TempDir(), "exp.db")
	p := goodPlan(t)
	claimAs(t, db, p, dead)
	tr := &fake{}
	sum, err := Execute(context.Background(), p, Options{DB: db, Trainer: tr, StaleAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Done != 4 || sum.Resumed != 1 || len(tr.calls) != 4 {
		t.Fatalf("%+v, calls %v", sum, tr.calls)
	}
	for h, n := range tr.calls {
		if n != 1 {
			t.Errorf("%s trained %d times", h[:8], n)
		}
	}
}

func TestShardsPartitionThePlan(t *testing.T) {
	f, err := Parse("gzr.toml", []byte(gzr))
	if err != nil {
		t.Fatal(err)
	}
	p := mustPlan(t, f, "")
	for n := 1; n <= 5; n++ {
		seen := map[int]int{}
		for i := 0; i < n; i++ {
			for _, r := range (Shard{I: i, N: n}).Of(p.Runs) {
				seen[r.Index]++
			}
		}
		if len(seen) != len(p.Runs) {
			t.Errorf("N=%d covers %d of %d runs", n, len(seen), len(p.Runs))
		}
		for idx, c := range seen {
			if c != 1 {
				t.Errorf("N=%d: run %d in %d shards", n, idx, c)
			}
		}
	}
	// Three job-array members on one database train every run once.
	db := filepath.Join(t.TempDir(), "exp.db")
	tr := &fake{}
	total := 0
	for i := 0; i < 3; i++ {
		sum, err := Execute(context.Background(), p, Options{DB: db, Trainer: tr, Shard: Shard{I: i, N: 3}})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Shard != 12 || sum.Done != 12 {
			t.Errorf("shard %d/3: %+v", i, sum)
		}
		for _, j := range tr.jobs[total:] {
			if j.Run.Index%3 != i {
				t.Errorf("shard %d/3 trained run %d", i, j.Run.Index)
			}
		}
		total = len(tr.jobs)
	}
	if total != 36 || len(tr.calls) != 36 {
		t.Errorf("%d calls for %d configs", total, len(tr.calls))
	}
	for _, s := range []string{"3/3", "-1/2", "1", "a/b", "0/0"} {
		if _, err := ParseShard(s); err == nil {
			t.Errorf("ParseShard(%q) accepted", s)
		}
	}
	if s, err := ParseShard("2/4"); err != nil || s != (Shard{2, 4}) {
		t.Errorf("ParseShard(2/4) = %v, %v", s, err)
	}
}

// Two processes on one database never train a config twice.
func TestConcurrentExecutesClaimOnce(t *testing.T) {
	f, err := Parse("gzr.toml", []byte(gzr))
	if err != nil {
		t.Fatal(err)
	}
	p := mustPlan(t, f, "")
	db := filepath.Join(t.TempDir(), "exp.db")
	tr := &fake{delay: 2 * time.Millisecond}
	var wg sync.WaitGroup
	sums := make([]Summary, 2)
	for i := range sums {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Execute(context.Background(), p, Options{DB: db, Trainer: tr, Owner: fmt.Sprintf("proc%d:1", i)})
			if err != nil {
				t.Error(err)
			}
			sums[i] = s
		}()
	}
	wg.Wait()
	if sums[0].Done+sums[1].Done != 36 {
		t.Errorf("done %d + %d, want 36", sums[0].Done, sums[1].Done)
	}
	for h, n := range tr.calls {
		if n != 1 {
			t.Errorf("%s trained %d times", h[:8], n)
		}
	}
}

func TestDevicePool(t *testing.T) {
	f, err := Parse("gzr.toml", []byte(gzr))
	if err != nil {
		t.Fatal(err)
	}
	p := mustPlan(t, f, "", "seeds=1")
	for _, c := range []struct {
		devices []string
		par     int32
	}{{[]string{"cuda:0", "cuda:1"}, 2}, {[]string{"cpu"}, 1}, {nil, 1}} {
		tr := &fake{delay: 20 * time.Millisecond}
		sum, err := Execute(context.Background(), p, Options{DB: filepath.Join(t.TempDir(), "exp.db"), Trainer: tr, Devices: c.devices})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Done != 12 {
			t.Errorf("%v: %+v", c.devices, sum)
		}
		if got := tr.maxPar.Load(); got != c.par {
			t.Errorf("%v: %d runs at once, want %d", c.devices, got, c.par)
		}
		used := map[string]bool{}
		for _, j := range tr.jobs {
			used[j.Device] = true
		}
		if len(c.devices) == 2 && (!used["cuda:0"] || !used["cuda:1"]) {
			t.Errorf("devices used: %v", used)
		}
	}
	if got := workers([]string{"cpu", "cuda:0", "cpu"}); strings.Join(got, ",") != "cpu,cuda:0" {
		t.Errorf("workers = %v", got)
	}
	two := func() int { return 2 }
	for in, want := range map[string]string{"auto": "cuda:0,cuda:1", "cuda": "cuda:0,cuda:1", "cpu": "cpu", "cuda:1": "cuda:1"} {
		got, err := ParseDevices(in, two)
		if err != nil || strings.Join(got, ",") != want {
			t.Errorf("ParseDevices(%q) = %v, %v", in, got, err)
		}
	}
	if got, _ := ParseDevices("auto", func() int { return 0 }); strings.Join(got, ",") != "cpu" {
		t.Errorf("auto without CUDA = %v", got)
	}
	for _, in := range []string{"cuda:2", "gpu", "cuda:0,cuda:0", "cuda:x"} {
		if _, err := ParseDevices(in, two); err == nil {
			t.Errorf("ParseDevices(%q) accepted", in)
		}
	}
}

func TestClaimLostAndInterrupt(t *testing.T) {
	db := filepath.Join(t.TempDir(), "exp.db")
	p := goodPlan(t)
	lost := &fake{outcome: func(j Job) (Outcome, error) {
		return Outcome{}, fmt.Errorf("heartbeat: %w", results.ErrClaimLost)
	}}
	sum, err := Execute(context.Background(), p, Options{DB: db, Trainer: lost})
	if err != nil || sum.Busy != 4 || sum.Failed != 0 {
		t.Fatalf("claim lost: %+v %v", sum, err)
	}
	for name, s := range statuses(t, db) {
		if s != results.StatusRunning {
			t.Errorf("%s is %s; a lost run is left to its new owner", name, s)
		}
	}

	db = filepath.Join(t.TempDir(), "exp.db")
	ctx, cancel := context.WithCancel(context.Background())
	stop := &fake{outcome: func(j Job) (Outcome, error) {
		cancel()
		return Outcome{}, context.Canceled
	}}
	sum, err = Execute(ctx, p, Options{DB: db, Trainer: stop})
	if !errors.Is(err, context.Canceled) || stop.n() != 1 || sum.Failed != 0 {
		t.Fatalf("interrupt: %+v %v, %d calls", sum, err, stop.n())
	}
	if s := statuses(t, db)[p.Runs[0].Label]; s != results.StatusRunning {
		t.Errorf("interrupted run is %s, want running (resumed later)", s)
	}
}

func TestRunFilesDryRun(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "out", "exp.db")
	var out strings.Builder
	err := RunFiles(context.Background(), &out, Request{Files: []string{"../ablations/sharing.toml"}, DryRun: true, Options: Options{DB: db}})
	if err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"sharing (../ablations/sharing.toml) — profile cpu: 24 runs", "E=32 sharing=ffn seed=3", "690,432", "scale vs paper"} {
		if !strings.Contains(s, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, s)
		}
	}
	if n := strings.Count(s, " cpu "); n != 24 {
		t.Errorf("%d run lines, want 24 (8 configurations x 3 seeds):\n%s", n, s)
	}
	if _, err := os.Stat(filepath.Dir(db)); !os.IsNotExist(err) {
		t.Error("--dry-run touched the database directory")
	}
	out.Reset()
	err = RunFiles(context.Background(), &out, Request{Files: []string{"../ablations/sharing.toml"}, Profile: "paper", DryRun: true})
	if err != nil || !strings.Contains(out.String(), "31,114,752") {
		t.Errorf("paper dry-run: %v\n%s", err, out.String())
	}
}

func TestRunFilesExecutes(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "g.toml", good)
	db := filepath.Join(dir, "exp.db")
	tr := &fake{outcome: func(j Job) (Outcome, error) {
		if j.Run.Index == 3 {
			return Outcome{}, errors.New("boom")
		}
		return Outcome{}, nil
	}}
	var out strings.Builder
	err := RunFiles(context.Background(), &out, Request{Files: []string{path}, NewTrainer: func() (Trainer, error) { return tr, nil },
		Options: Options{DB: db}})
	if !errors.Is(err, ErrRunsFailed) {
		t.Errorf("err = %v, want ErrRunsFailed", err)
	}
	if !strings.Contains(out.String(), "t: done 3, skipped 0, diverged 0, failed 1") {
		t.Errorf("summary:\n%s", out.String())
	}
	st, err := OpenExisting(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var ls, status strings.Builder
	if err := WriteExperiments(&ls, st, "t"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ls.String(), "3 done, 1 failed") || !strings.Contains(ls.String(), "boom") {
		t.Errorf("exp ls:\n%s", ls.String())
	}
	if err := WriteStatus(&status, st, results.RunFilter{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(status.String(), "4 runs: 3 done, 0 running, 0 pending, 0 diverged, 1 failed") || !strings.Contains(status.String(), "20/20") {
		t.Errorf("exp status:\n%s", status.String())
	}
	if _, err := OpenExisting(filepath.Join(dir, "none.db")); err == nil {
		t.Error("OpenExisting created a database")
	}
}
