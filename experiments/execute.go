package experiments

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/reproml/albert/results"
	"github.com/reproml/albert/train"
)

// Trainer trains one claimed run. It must call job.Store.Heartbeat(job.RunID,
// step) at least every StaleAfter/3 (a run whose heartbeat goes stale is
// taken over by another process), write its metrics through job.Store, and
// keep checkpoints under job.Dir so that a Resume job continues from the last
// one. A job that is not a Resume finds no checkpoint in job.Dir (Execute
// moves an earlier attempt's files to job.Dir/attempt-N) and starts at step
// 0. It returns Outcome{Status: done or diverged}; an error marks the run
// failed with the error as its reason. An error wrapping
// results.ErrClaimLost means another process owns the run now: it is left
// alone.
type Trainer interface {
	Train(ctx context.Context, job Job) (Outcome, error)
}

// TrainerFunc adapts a function to Trainer.
type TrainerFunc func(ctx context.Context, job Job) (Outcome, error)

// Train calls fn.
func (fn TrainerFunc) Train(ctx context.Context, job Job) (Outcome, error) { return fn(ctx, job) }

// Job is one run handed to a Trainer.
type Job struct {
	Run     Run
	RunID   int64
	Resume  bool           // the run was claimed from a dead owner: continue from the checkpoint in Dir
	Attempt int            // 1, or 1 + how many times --retry restarted the run from step 0
	Device  string         // "cpu", "cuda:0", …
	Dir     string         // the run's checkpoint directory, <RunsDir>/<config hash>
	Store   *results.Store // the store that claimed the run: heartbeats and metrics go through it
}

// Outcome is how a run ended.
type Outcome struct {
	Status  results.Status // results.StatusDone or results.StatusDiverged; empty means done
	Reason  string         // e.g. "loss NaN at step 312"
	Seconds float64        // training wall time across resumes; 0: Execute uses its own measure of this attempt
}

// Options configure Execute.
type Options struct {
	DB         string        // database path; default DefaultDB
	RunsDir    string        // checkpoint root; default "out/runs"
	Owner      string        // claim owner; default "host:pid"
	Devices    []string      // one worker per CUDA device; CPU-only lists run one at a time; default ["cpu"]
	Shard      Shard         // this process's share of the plan; zero = all
	Retry      bool          // retry failed and diverged runs
	StaleAfter time.Duration // a running run whose heartbeat is older is taken over; default DefaultStaleAfter
	Trainer    Trainer
	Log        io.Writer // one line per run; nil = discard
}

// Defaults of Options.
const (
	DefaultDB         = "out/exp.db"
	DefaultRunsDir    = "out/runs"
	DefaultStaleAfter = 5 * time.Minute
)

// deadOwnerGrace is how old a dead local owner's heartbeat must be before its
// run is taken over without waiting for StaleAfter: longer than any claim can
// wait for the database lock, so a takeover never races a live claim.
var deadOwnerGrace = results.BusyTimeout + 5*time.Second

// Summary counts what Execute did with the runs of its shard.
type Summary struct {
	Planned  int // runs in the plan
	Shard    int // runs in this shard
	Done     int // trained to the end now
	Resumed  int // of Done+Diverged+Failed: resumed from a dead owner's checkpoint
	Retried  int // of Done+Diverged+Failed: restarted from step 0 by Retry
	Skipped  int // already done, or failed/diverged without Retry
	Busy     int // running under another live process
	Diverged int
	Failed   int
	// Preempted: stopped by a context cancelled with train.ErrPreempted,
	// after a checkpoint; recorded as preempted for the next claim to resume.
	Preempted int
	Elapsed   time.Duration
}

func (s Summary) String() string {
	b := fmt.Sprintf("done %d, skipped %d, diverged %d, failed %d", s.Done, s.Skipped, s.Diverged, s.Failed)
	if s.Busy > 0 {
		b += fmt.Sprintf(", busy elsewhere %d", s.Busy)
	}
	if s.Preempted > 0 {
		b += fmt.Sprintf(", preempted %d", s.Preempted)
	}
	if s.Resumed > 0 {
		b += fmt.Sprintf(" (%d resumed)", s.Resumed)
	}
	if s.Retried > 0 {
		b += fmt.Sprintf(" (%d retried from step 0)", s.Retried)
	}
	if s.Shard != s.Planned {
		b += fmt.Sprintf("; shard of %d/%d runs", s.Shard, s.Planned)
	}
	return b + fmt.Sprintf(" in %s", s.Elapsed.Round(time.Second))
}

// Shard is a deterministic share of a plan: the runs whose Index mod N == I.
// The zero value is the whole plan.
type Shard struct{ I, N int }

// ParseShard reads "i/N" with 0 <= i < N.
func ParseShard(s string) (Shard, error) {
	if s == "" {
		return Shard{}, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(strings.TrimSpace(a))
	n, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return Shard{}, fmt.Errorf("shard %q: want i/N with 0 <= i < N, e.g. 0/4", s)
	}
	return Shard{I: i, N: n}, nil
}

// Of returns the runs of this shard, in plan order.
func (s Shard) Of(runs []Run) []Run {
	if s.N <= 1 {
		return runs
	}
	var out []Run
	for _, r := range runs {
		if r.Index%s.N == s.I {
			out = append(out, r)
		}
	}
	return out
}

// ParseDevices reads --device: "cpu", "auto" (every CUDA device, else cpu),
// "cuda" (every CUDA device) or a list "cuda:0,cuda:1". cudaCount reports
// the CUDA devices present.
func ParseDevices(s string, cudaCount func() int) ([]string, error) {
	s = strings.TrimSpace(s)
	n := 0
	if cudaCount != nil {
		n = cudaCount()
	}
	all := func() []string {
		var ds []string
		for i := 0; i < n; i++ {
			ds = append(ds, fmt.Sprintf("cuda:%d", i))
		}
		return ds
	}
	switch s {
	case "", "auto":
		if n == 0 {
			return []string{"cpu"}, nil
		}
		return all(), nil
	case "cuda":
		if n == 0 {
			return nil, errors.New("--device cuda: no CUDA device found")
		}
		return all(), nil
	}
	var ds []string
	seen := map[string]bool{}
	for _, d := range strings.Split(s, ",") {
		d = strings.TrimSpace(d)
		if d == "cuda" {
			d = "cuda:0"
		}
		if d != "cpu" {
			idx, ok := strings.CutPrefix(d, "cuda:")
			k, err := strconv.Atoi(idx)
			if !ok || err != nil || k < 0 {
				return nil, fmt.Errorf("--device %q: want cpu, auto, cuda or cuda:N[,cuda:M…]", d)
			}
			if cudaCount != nil && k >= n {
				return nil, fmt.Errorf("--device %s: only %d CUDA device(s) found", d, n)
			}
		}
		if seen[d] {
			return nil, fmt.Errorf("--device %s is listed twice", d)
		}
		seen[d] = true
		ds = append(ds, d)
	}
	return ds, nil
}

// workers maps devices to worker slots: one per CUDA device; CPU runs go one
// at a time (each already uses every core).
func workers(devices []string) []string {
	var out []string
	cpu := false
	for _, d := range devices {
		if d == "cpu" {
			if !cpu {
				out = append(out, d)
			}
			cpu = true
			continue
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		out = []string{"cpu"}
	}
	return out
}

// DefaultOwner is "host:pid", the claim owner of this process.
func DefaultOwner() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "localhost"
	}
	return fmt.Sprintf("%s:%d", h, os.Getpid())
}

// ownerDead reports whether owner is a process of this host that is gone.
func ownerDead(owner string) bool {
	h, pidStr, ok := strings.Cut(owner, ":")
	me, err := os.Hostname()
	if !ok || err != nil || h != me {
		return false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// Execute records the plan in the store and trains this shard's runs that
// are not done: pending runs, stale running runs (resumed), and with Retry
// failed or diverged ones. Each run is claimed in a transaction, so
// processes sharing a database never train one config twice. A trainer
// error marks its run failed and the sweep goes on; the returned error is
// only for the store itself or a cancelled context.
func Execute(ctx context.Context, plan *Plan, opt Options) (Summary, error) {
	start := time.Now()
	if opt.Trainer == nil {
		return Summary{}, errors.New("experiments: execute: no trainer")
	}
	if opt.DB == "" {
		opt.DB = DefaultDB
	}
	if opt.RunsDir == "" {
		opt.RunsDir = DefaultRunsDir
	}
	if opt.Owner == "" {
		opt.Owner = DefaultOwner()
	}
	if opt.StaleAfter <= 0 {
		opt.StaleAfter = DefaultStaleAfter
	}
	if opt.Log == nil {
		opt.Log = io.Discard
	}
	if err := checkPrecisions(plan, opt.Devices); err != nil {
		return Summary{}, err
	}
	st, err := results.Open(opt.DB)
	if err != nil {
		return Summary{}, err
	}
	defer st.Close()
	expID, err := st.EnsureExperiment(plan.Experiment, plan.File, plan.ContentHash)
	if err != nil {
		return Summary{}, err
	}
	ids := make([]int64, len(plan.Runs))
	byHash := map[string]int64{}
	for i, r := range plan.Runs {
		id, err := addPlanned(st, expID, r, byHash)
		if err != nil {
			return Summary{}, err
		}
		ids[i], byHash[r.Hash] = id, id
	}
	mine := opt.Shard.Of(plan.Runs)
	sum := Summary{Planned: len(plan.Runs), Shard: len(mine)}
	x := &executor{st: st, opt: opt, sum: &sum, total: len(mine)}
	// Pretraining runs first, then the fine-tuning runs that start from them.
	for _, phase := range phases(mine) {
		jobs := make(chan int)
		var wg sync.WaitGroup
		for _, dev := range workers(opt.Devices) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range jobs {
					x.one(ctx, plan.Runs[i], ids[i], dev)
				}
			}()
		}
	feed:
		for _, r := range phase {
			select {
			case jobs <- r.Index:
			case <-ctx.Done():
				break feed
			}
		}
		close(jobs)
		wg.Wait()
	}
	sum.Elapsed = time.Since(start)
	if x.storeErr != nil {
		return sum, x.storeErr
	}
	if err := ctx.Err(); err != nil {
		return sum, fmt.Errorf("experiments: interrupted: %w", err)
	}
	return sum, nil
}

// RunSpec is what the store records about a planned run.
func RunSpec(r Run) results.RunSpec {
	return results.RunSpec{ConfigHash: r.Hash, Name: r.Label, ConfigJSON: r.ConfigJSON, Profile: r.Profile,
		ScaleJSON: r.Scale.JSON(), Seed: r.Seed, TotalSteps: r.Train.Steps, Params: r.Params()}
}

type executor struct {
	st       *results.Store
	opt      Options
	mu       sync.Mutex
	sum      *Summary
	n, total int
	storeErr error
}

func (x *executor) count(fn func(s *Summary), r Run, what string, detail string, args ...any) {
	x.mu.Lock()
	defer x.mu.Unlock()
	fn(x.sum)
	x.n++
	fmt.Fprintf(x.opt.Log, "[%d/%d] %-11s %s  %s", x.n, x.total, what, r.Hash[:12], r.Label)
	if detail != "" {
		fmt.Fprintf(x.opt.Log, "  ("+detail+")", args...)
	}
	fmt.Fprintln(x.opt.Log)
}

func (x *executor) fail(err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.storeErr == nil {
		x.storeErr = err
	}
}

// one claims and trains one run on dev.
func (x *executor) one(ctx context.Context, r Run, id int64, dev string) {
	if ctx.Err() != nil {
		return
	}
	if why, err := x.waiting(r); err != nil {
		x.fail(err)
		return
	} else if why != "" {
		x.count(func(s *Summary) { s.Skipped++ }, r, "waiting", "%s", why)
		return
	}
	c, err := x.st.ClaimRun(id, x.opt.Owner, x.opt.StaleAfter, x.opt.Retry)
	if err != nil {
		x.fail(err)
		return
	}
	if !c.Granted && c.Prev == results.StatusRunning && c.Owner != "" && ownerDead(c.Owner) {
		c, err = x.takeOver(ctx, id)
		if err != nil {
			x.fail(err)
			return
		}
	}
	if !c.Granted {
		switch c.Prev {
		case results.StatusDone:
			x.count(func(s *Summary) { s.Skipped++ }, r, "skipped", "done")
		case results.StatusFailed, results.StatusDiverged:
			x.count(func(s *Summary) { s.Skipped++ }, r, "skipped", "%s; --retry to run it again", c.Prev)
		default:
			x.count(func(s *Summary) { s.Busy++ }, r, "busy", "running under %s", c.Owner)
		}
		return
	}
	job := Job{Run: r, RunID: id, Resume: c.Resume, Attempt: c.Attempt, Device: dev, Dir: filepath.Join(x.opt.RunsDir, r.Hash), Store: x.st}
	// A fresh attempt starts from an empty folder; a resume of this attempt
	// keeps its checkpoints. A resume whose folder belongs to an earlier
	// attempt (a retry whose process died before it got here) starts fresh:
	// the claim moved that attempt's metric rows already.
	t0 := time.Now()
	moved, terr := prepareDir(job.Dir, c.Attempt, c.Resume)
	job.Resume = c.Resume && !moved
	var out Outcome
	if terr == nil {
		out, terr = x.opt.Trainer.Train(ctx, job)
	}
	secs := out.Seconds
	if secs == 0 {
		secs = time.Since(t0).Seconds()
	}
	resumed := func(s *Summary) {
		if job.Resume {
			s.Resumed++
		}
		if c.Retry {
			s.Retried++
		}
	}
	// note prefixes a retry's log detail with its number.
	note := func(detail string) string {
		if c.Attempt > 1 {
			return fmt.Sprintf("retry %d; ", c.Attempt-1) + detail
		}
		return detail
	}
	switch {
	case terr != nil && errors.Is(terr, results.ErrClaimLost):
		x.count(func(s *Summary) { s.Busy++ }, r, "lost", "another process took the run over: %v", terr)
		return
	case terr != nil && errors.Is(terr, train.ErrPreempted):
		if _, err := x.st.PreemptRun(id, terr.Error()); err != nil {
			if errors.Is(err, results.ErrClaimLost) {
				x.count(func(s *Summary) { s.Busy++ }, r, "lost", "another process took the run over")
				return
			}
			x.fail(err)
			return
		}
		x.count(func(s *Summary) { s.Preempted++ }, r, "preempted", "the next claim resumes it from its checkpoint")
		return
	case terr != nil && ctx.Err() != nil:
		// Interrupted: the run stays running; its heartbeat goes stale and the
		// next `exp run` resumes it from its checkpoint.
		x.count(func(*Summary) {}, r, "interrupted", "the next exp run resumes it")
		return
	case terr != nil:
		if err := x.st.FinishRun(id, results.StatusFailed, terr.Error(), dev, secs); err != nil && !errors.Is(err, results.ErrClaimLost) {
			x.fail(err)
		}
		x.count(func(s *Summary) { s.Failed++; resumed(s) }, r, "failed", note("%v"), terr)
		return
	}
	status := out.Status
	if status == "" {
		status = results.StatusDone
	}
	if status != results.StatusDone && status != results.StatusDiverged {
		msg := fmt.Sprintf("trainer returned status %q", status)
		if err := x.st.FinishRun(id, results.StatusFailed, msg, dev, secs); err != nil {
			x.fail(err)
		}
		x.count(func(s *Summary) { s.Failed++; resumed(s) }, r, "failed", note("%s"), msg)
		return
	}
	if err := x.st.FinishRun(id, status, out.Reason, dev, secs); err != nil {
		if errors.Is(err, results.ErrClaimLost) {
			x.count(func(s *Summary) { s.Busy++ }, r, "lost", "another process took the run over")
			return
		}
		x.fail(err)
		return
	}
	if status == results.StatusDiverged {
		x.count(func(s *Summary) { s.Diverged++; resumed(s) }, r, "diverged", note("%s"), out.Reason)
		return
	}
	x.count(func(s *Summary) { s.Done++; resumed(s) }, r, "done", note("%s on %s"), time.Duration(secs*float64(time.Second)).Round(100*time.Millisecond), dev)
}

// takeOver claims a run whose owner is a dead process of this host (kill -9)
// without waiting StaleAfter. It waits until the dead owner's last heartbeat
// is deadOwnerGrace old, then claims with exactly that staleness: a live
// process that claimed the run in the meantime has a newer heartbeat and is
// not overridden.
func (x *executor) takeOver(ctx context.Context, id int64) (results.Claim, error) {
	run, err := x.st.Run(id)
	if err != nil {
		return results.Claim{}, err
	}
	age := time.Since(run.HeartbeatAt)
	if wait := deadOwnerGrace - age; wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return results.Claim{RunID: id, Prev: results.StatusRunning, Owner: run.Owner}, nil
		}
	}
	return x.st.ClaimRun(id, x.opt.Owner, time.Since(run.HeartbeatAt), x.opt.Retry)
}

// Request is one `exp run` invocation.
type Request struct {
	Files      []string
	Profile    string   // "" = each file's default
	Sets       []string // --set key=value
	DryRun     bool
	NewTrainer func() (Trainer, error) // called once, only when there is something to train
	Options                            // DB, devices, shard, retry, …
	// DataDir is the downstream data root ("" = DefaultDataDir()).
	DataDir string
	// BuildStandIns writes the stand-in tasks under the data root; called
	// before training when a planned stand-in's files are absent.
	BuildStandIns func(root string) error
}

// ErrRunsFailed is returned (wrapped) by RunFiles when some runs failed.
var ErrRunsFailed = errors.New("runs failed")

// RunFiles is `exp run`: it loads and plans every file — all of them valid
// before the database is opened, so a bad file writes nothing — then either
// prints the plans (DryRun) or executes them in order, printing a summary
// per file to out.
func RunFiles(ctx context.Context, out io.Writer, req Request) error {
	var plans []*Plan
	for _, path := range req.Files {
		f, err := Load(path)
		if err != nil {
			return err
		}
		p, err := f.Plan(req.Profile, req.Sets)
		if err != nil {
			return err
		}
		if err := planDownstream(out, f, p, &req); err != nil {
			return err
		}
		plans = append(plans, p)
	}
	if req.DryRun {
		for _, p := range plans {
			if err := WritePlan(out, p); err != nil {
				return err
			}
		}
		return nil
	}
	if req.NewTrainer == nil {
		return errors.New("this build has no trainer (use --dry-run to see the plan)")
	}
	if err := buildStandIns(out, plans, req); err != nil {
		return err
	}
	tr, err := req.NewTrainer()
	if err != nil {
		return err
	}
	opt := req.Options
	opt.Trainer = tr
	if opt.Log == nil {
		opt.Log = out
	}
	failed := 0
	for _, p := range plans {
		db := opt.DB
		if db == "" {
			db = DefaultDB
		}
		fmt.Fprintf(out, "%s: %d runs, profile %s, db %s\n", p.Experiment, len(p.Runs), p.Profile, db)
		sum, err := Execute(ctx, p, opt)
		fmt.Fprintf(out, "%s: %s\n", p.Experiment, sum)
		if err != nil {
			return err
		}
		failed += sum.Failed
	}
	if failed > 0 {
		return fmt.Errorf("%d %w (see `exp status`; --retry runs them again)", failed, ErrRunsFailed)
	}
	return nil
}

// TrainJob is the trainer's job for a claimed run: its resolved config, its
// folder and attempt, progress to progress, data under cacheRoot.
func TrainJob(j Job, cacheRoot string, progress io.Writer) train.Job {
	r := j.Run
	return train.Job{
		RunID: j.RunID, Name: r.Label, Seed: r.Seed, Objective: r.Objective,
		Model: r.Model, Data: r.Data, Train: r.Train,
		Dir: j.Dir, Attempt: j.Attempt, Device: j.Device, CacheRoot: cacheRoot, Store: j.Store, Progress: progress,
	}
}

// OutcomeOf is how a run that train.Run returned from ended.
func OutcomeOf(res train.Result) Outcome {
	out := Outcome{Status: results.StatusDone, Seconds: res.Seconds}
	if res.Diverged {
		out.Status, out.Reason = results.StatusDiverged, res.Reason
	}
	return out
}
