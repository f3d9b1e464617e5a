package slurm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/reproml/albert/experiments"
	"github.com/reproml/albert/results"
	"github.com/reproml/albert/train"
)

// TaskOptions configure RunTask.
type TaskOptions struct {
	SweepDir     string
	Hash         string
	Trainer      experiments.Trainer
	Devices      []string
	Log          io.Writer
	PublishEvery time.Duration // snapshot interval while training; default 30 s
}

// DefaultMaxRequeues is how many preemptions a run may take before its
// task stops requeuing it and marks it failed.
const DefaultMaxRequeues = 10

// RunTask is one array task: it trains the sweep's run with config hash
// o.Hash in that run's own database (LiveDB), publishing a snapshot every
// PublishEvery and when it stops. On SIGUSR2 (Slurm's warning before a
// preemption or the time limit) the trainer checkpoints at the next step
// boundary, the run is recorded as preempted and the task requeues itself
// with scontrol, unless the run has been preempted more than the sweep's
// MaxRequeues times (then it is marked failed). SIGTERM and SIGINT
// checkpoint and stop the same way without requeuing.
func RunTask(ctx context.Context, o TaskOptions) error {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.PublishEvery <= 0 {
		o.PublishEvery = 30 * time.Second
	}
	sw, err := LoadSweep(o.SweepDir)
	if err != nil {
		return err
	}
	sr, ok := sw.Run(o.Hash)
	if !ok {
		return fmt.Errorf("slurm: run %s is not in sweep %s", o.Hash, o.SweepDir)
	}
	run, err := planned(sw, sr)
	if err != nil {
		return err
	}
	me := taskID()
	live, snap := LiveDB(sw.Root, sr.Hash), SnapshotDB(sw.Root, sr.Hash)
	st, err := results.Open(live)
	if err != nil {
		return err
	}
	defer st.Close()
	stale, err := register(ctx, st, sw, sr, run, me)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	var mu sync.Mutex
	var got os.Signal
	go func() {
		for s := range sigs {
			mu.Lock()
			if got == nil {
				got = s
				fmt.Fprintf(o.Log, "slurm task %s: %v: checkpointing at the next step\n", me, s)
				cancel(fmt.Errorf("%v: %w", s, train.ErrPreempted))
			}
			mu.Unlock()
		}
	}()
	publish := func() {
		if err := st.Snapshot(snap); err != nil {
			fmt.Fprintf(o.Log, "slurm task %s: %v\n", me, err)
		}
	}
	stopPub := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		t := time.NewTicker(o.PublishEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				publish()
			case <-stopPub:
				return
			}
		}
	}()

	plan := &experiments.Plan{Experiment: run.Experiment, Profile: run.Profile, Runs: []experiments.Run{run}}
	e := sw.Experiments[sr.Experiments[0]]
	plan.File, plan.ContentHash = e.File, e.ContentHash
	sum, xerr := experiments.Execute(ctx, plan, experiments.Options{DB: live, RunsDir: sw.RunsDir,
		Owner: me + " " + experiments.DefaultOwner(), Devices: o.Devices, StaleAfter: stale, Retry: sw.Retry, Trainer: o.Trainer, Log: o.Log})
	close(stopPub)
	<-pubDone
	fmt.Fprintf(o.Log, "slurm task %s: %s\n", me, sum)

	rows, err := st.Runs(results.RunFilter{ConfigHash: sr.Hash})
	if err != nil || len(rows) != 1 {
		publish()
		return fmt.Errorf("slurm: task %s: read run back: %v", me, err)
	}
	r := rows[0]
	mu.Lock()
	sig := got
	mu.Unlock()
	if sig == nil {
		publish()
		if xerr != nil {
			return xerr
		}
		switch r.Status {
		case results.StatusDone, results.StatusDiverged:
			return nil
		case results.StatusRunning:
			if sum.Busy > 0 {
				fmt.Fprintf(o.Log, "slurm task %s: run %s is trained by %s\n", me, short(sr.Hash), r.Owner)
				return nil
			}
		}
		return fmt.Errorf("slurm: task %s: run %s ended %s: %s", me, short(sr.Hash), r.Status, r.Reason)
	}
	if r.Status == results.StatusDone || r.Status == results.StatusDiverged || r.Status == results.StatusFailed {
		publish()
		return nil // it finished before the signal took effect
	}
	if sig != syscall.SIGUSR2 {
		publish()
		return fmt.Errorf("slurm: task %s: stopped by %v at step %d of run %s (%s); `exp slurm` again resumes it", me, sig, r.Step, short(sr.Hash), r.Status)
	}
	if r.Preemptions > sw.MaxRequeues {
		msg := fmt.Sprintf("preempted %d times, more than the requeue limit %d (exp slurm --max-requeues)", r.Preemptions, sw.MaxRequeues)
		if err := st.FinishRun(r.ID, results.StatusFailed, msg, r.Device, r.Seconds); err != nil {
			return err
		}
		publish()
		return fmt.Errorf("slurm: task %s: run %s %s", me, short(sr.Hash), msg)
	}
	publish()
	if err := st.Close(); err != nil { // the next instance may open it on another node
		return err
	}
	if me == "local" {
		return fmt.Errorf("slurm: run %s preempted at step %d outside Slurm: nothing to requeue", short(sr.Hash), r.Step)
	}
	if err := Requeue(context.Background(), me); err != nil && !killedByRequeue(err) {
		return err
	}
	fmt.Fprintf(o.Log, "slurm task %s: run %s preempted at step %d (%d of %d requeues), requeued\n", me, short(sr.Hash), r.Step, r.Preemptions, sw.MaxRequeues)
	return nil
}

// killedByRequeue reports whether scontrol failed only because the requeue
// it asked for had begun: Slurm ends this very task with SIGTERM to its
// process group, scontrol included, sometimes before scontrol exits (exp
// itself ignores it: it has stopped already).
func killedByRequeue(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM
}

// taskID is this array task as "<array job>_<task>", or "local" outside Slurm.
func taskID() string {
	a, t := os.Getenv("SLURM_ARRAY_JOB_ID"), os.Getenv("SLURM_ARRAY_TASK_ID")
	if a == "" || t == "" {
		if j := os.Getenv("SLURM_JOB_ID"); j != "" {
			return j
		}
		return "local"
	}
	return a + "_" + t
}

// planned rebuilds the experiments.Run of a sweep run from its stored
// config, refusing one this program would hash differently.
func planned(sw *Sweep, sr Run) (experiments.Run, error) {
	cfg, err := experiments.ParseRunConfig(sr.ConfigJSON)
	if err != nil {
		return experiments.Run{}, fmt.Errorf("slurm: run %s: %w", short(sr.Hash), err)
	}
	if h, err := cfg.Hash(); err != nil || h != sr.Hash {
		return experiments.Run{}, fmt.Errorf("slurm: run %s: this exp reads its config as %s (built from other sources than the submitting exp?)", short(sr.Hash), h)
	}
	var scale experiments.Scale
	if sr.ScaleJSON != "" {
		if err := json.Unmarshal([]byte(sr.ScaleJSON), &scale); err != nil {
			return experiments.Run{}, fmt.Errorf("slurm: run %s: scale: %w", short(sr.Hash), err)
		}
	}
	if len(sr.Experiments) == 0 {
		return experiments.Run{}, fmt.Errorf("slurm: run %s: no experiment", short(sr.Hash))
	}
	return experiments.Run{Experiment: sw.Experiments[sr.Experiments[0]].Name, Profile: sr.Profile, Label: sr.Label,
		Scale: scale, Seed: cfg.Seed, Objective: cfg.Objective, Model: cfg.Model, Data: cfg.Data, Train: cfg.Train,
		Hash: sr.Hash, ConfigJSON: sr.ConfigJSON}, nil
}

// register records the run and its experiments in its database and returns
// the staleness to claim it with: the default, unless an earlier instance of
// a Slurm task holds it and is gone (this very task, requeued, or a task
// squeue no longer runs), which is taken over at once.
func register(ctx context.Context, st *results.Store, sw *Sweep, sr Run, run experiments.Run, me string) (time.Duration, error) {
	for _, i := range sr.Experiments {
		e := sw.Experiments[i]
		id, err := st.EnsureExperiment(e.Name, e.File, e.ContentHash)
		if err != nil {
			return 0, err
		}
		if _, _, err := st.AddRun(id, experiments.RunSpec(run)); err != nil {
			return 0, err
		}
	}
	rows, err := st.Runs(results.RunFilter{ConfigHash: sr.Hash})
	if err != nil || len(rows) != 1 {
		return 0, fmt.Errorf("slurm: run %s: %v", short(sr.Hash), err)
	}
	r := rows[0]
	if r.Status != results.StatusRunning {
		return experiments.DefaultStaleAfter, nil
	}
	prev, _, _ := strings.Cut(r.Owner, " ")
	if prev == me && me != "local" {
		return time.Millisecond, nil // Slurm runs one instance of a task at a time: the holder is dead
	}
	job, task, ok := strings.Cut(prev, "_")
	if !ok {
		return experiments.DefaultStaleAfter, nil // not a Slurm task: its heartbeat decides
	}
	tasks, err := Query(ctx, job)
	if err != nil {
		return experiments.DefaultStaleAfter, nil
	}
	var idx int
	fmt.Sscan(task, &idx)
	if t, ok := tasks[idx]; ok && t.Active() {
		return experiments.DefaultStaleAfter, nil
	}
	return time.Millisecond, nil
}

func short(h string) string { return h[:min(12, len(h))] }
