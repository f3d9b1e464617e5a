package experiments

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reproml/albert/internal/exptest"
	"github.com/reproml/albert/results"
	"github.com/reproml/albert/train"
)

// A run small enough to train several times in a test: 20 steps, a
// checkpoint every 4, the loss logged every step.
var tinyRun = exptest.Experiment{Name: "retry", Objective: "none", Data: exptest.EvalData, Train: exptest.Train{Steps: 20, BatchSize: 8, WarmupSteps: 2, LR: 0.005, LogEvery: 1, CheckpointEvery: 4}}.TOML()

// realTrainer trains with train.Run in this process, as `exp run` does;
// edit (may be nil) changes the trainer's job first, e.g. to force a
// divergence that the planned config does not have.
func realTrainer(t *testing.T, progress *strings.Builder, edit func(Job, *train.Job)) Trainer {
	t.Helper()
	cache := filepath.Join(exptest.Repo(t), exptest.Cache)
	return TrainerFunc(func(ctx context.Context, j Job) (Outcome, error) {
		tj := TrainJob(j, cache, progress)
		if edit != nil {
			edit(j, &tj)
		}
		res, err := train.Run(ctx, tj)
		if err != nil {
			return Outcome{}, err
		}
		return OutcomeOf(res), nil
	})
}

func tinyPlan(t *testing.T) *Plan {
	t.Helper()
	f, err := Parse("retry.toml", []byte(tinyRun))
	if err != nil {
		t.Fatal(err)
	}
	return mustPlan(t, f, "")
}

// oneRun is the plan's only run as stored, and its loss curve.
func oneRun(t *testing.T, db string) (results.Run, []results.Point, *results.Store) {
	t.Helper()
	st, err := results.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	runs, err := st.Runs(results.RunFilter{})
	if err != nil || len(runs) != 1 {
		t.Fatalf("%d runs, %v", len(runs), err)
	}
	curve, err := st.Curve(runs[0].ID, "train", "loss")
	if err != nil {
		t.Fatal(err)
	}
	return runs[0], curve, st
}

// --retry with the real trainer: a run that diverged after writing
// checkpoints is trained again from step 0 (not resumed from its last
// checkpoint, which deterministically diverges again), its old curve is kept
// apart under attempt 1 and none of it is mixed into the new one, and the
// new attempt ends done with exactly the curve of a run never diverged.
func TestRetryRestartsDivergedRunFromStepZero(t *testing.T) {
	dir := t.TempDir()
	db, runsDir := filepath.Join(dir, "exp.db"), filepath.Join(dir, "runs")
	p := tinyPlan(t)
	var progress strings.Builder
	// Attempt 1 only: a learning rate a million times too large (it
	// diverges at step 3), and a checkpoint every step before that.
	tr := realTrainer(t, &progress, func(j Job, tj *train.Job) {
		if j.Attempt == 1 {
			tj.Train.LR *= 1e6
			tj.Train.CheckpointEvery = 1
		}
	})
	var log strings.Builder
	sum, err := Execute(context.Background(), p, Options{DB: db, RunsDir: runsDir, Devices: []string{"cpu"}, Trainer: tr, Log: &log})
	if err != nil || sum.Diverged != 1 {
		t.Fatalf("attempt 1: %+v %v\n%s", sum, err, log.String())
	}
	run, old, _ := oneRun(t, db)
	if run.Status != results.StatusDiverged || len(old) < 2 {
		t.Fatalf("attempt 1: %s after %d loss rows (%s)", run.Status, len(old), run.Reason)
	}
	divergedAt := old[len(old)-1].Step
	runDir := filepath.Join(runsDir, p.Runs[0].Hash)
	if ck, _ := filepath.Glob(filepath.Join(runDir, "step-*.pt")); len(ck) == 0 {
		t.Fatalf("attempt 1 diverged at step %d before any checkpoint: the retry could not have resumed", divergedAt)
	}

	// Without --retry it stays diverged; with it, it is a fresh attempt.
	if sum, _ := Execute(context.Background(), p, Options{DB: db, RunsDir: runsDir, Trainer: tr}); sum.Skipped != 1 {
		t.Fatalf("without --retry: %+v", sum)
	}
	log.Reset()
	progress.Reset()
	sum, err = Execute(context.Background(), p, Options{DB: db, RunsDir: runsDir, Devices: []string{"cpu"}, Trainer: tr, Log: &log, Retry: true})
	if err != nil || sum.Done != 1 || sum.Retried != 1 || sum.Resumed != 0 {
		t.Fatalf("retry: %+v %v\n%s", sum, err, log.String())
	}
	if !strings.Contains(log.String(), "done") || !strings.Contains(log.String(), "(retry 1; ") {
		t.Errorf("retry log does not say retry 1:\n%s", log.String())
	}
	if !strings.Contains(progress.String(), "(retry 1)") {
		t.Errorf("progress does not say retry 1:\n%s", progress.String())
	}
	run, cur, st := oneRun(t, db)
	if run.Status != results.StatusDone || run.Retries != 1 || run.Step != 20 {
		t.Fatalf("after retry: %s, retries %d, step %d", run.Status, run.Retries, run.Step)
	}
	if len(cur) != 20 || cur[0].Step != 1 || cur[19].Step != 20 {
		t.Fatalf("new attempt's loss rows: %d, steps %d..%d; want 1..20", len(cur), cur[0].Step, cur[len(cur)-1].Step)
	}
	// The old attempt's rows are kept, under attempt 1, and are not the
	// new ones.
	kept, err := st.RetriedCurve(run.ID, 1, "train", "loss")
	if err != nil || len(kept) != len(old) {
		t.Fatalf("attempt 1 kept %d rows of %d: %v", len(kept), len(old), err)
	}
	if kept[len(kept)-1].Value == cur[divergedAt-1].Value {
		t.Errorf("step %d: the new attempt has the diverged loss %v", divergedAt, kept[len(kept)-1].Value)
	}
	if ck, _ := filepath.Glob(filepath.Join(runDir, "attempt-1", "step-*.pt")); len(ck) == 0 {
		t.Error("attempt 1's checkpoints were not kept under attempt-1/")
	}
	if _, err := os.Stat(filepath.Join(runDir, "attempt-1", "checkpoint.json")); err != nil {
		t.Error(err)
	}

	// The retried curve is the curve of a run that never diverged: nothing
	// of attempt 1 (parameters, optimizer state, data cursor) leaked in.
	ref := filepath.Join(dir, "ref.db")
	if sum, err := Execute(context.Background(), p, Options{DB: ref, RunsDir: filepath.Join(dir, "ref-runs"), Devices: []string{"cpu"},
		Trainer: realTrainer(t, &strings.Builder{}, nil)}); err != nil || sum.Done != 1 {
		t.Fatalf("reference run: %+v %v", sum, err)
	}
	_, want, _ := oneRun(t, ref)
	for i := range want {
		if cur[i] != want[i] {
			t.Fatalf("retried curve differs from a fresh run at step %d: %v vs %v", want[i].Step, cur[i].Value, want[i].Value)
		}
	}
}

// A run whose checkpoints are all damaged fails with the checksum message
// when resumed, and --retry recovers it from step 0.
func TestDamagedCheckpointsFailThenRetryRecovers(t *testing.T) {
	dir := t.TempDir()
	db, runsDir := filepath.Join(dir, "exp.db"), filepath.Join(dir, "runs")
	p := tinyPlan(t)
	runDir := filepath.Join(runsDir, p.Runs[0].Hash)
	var progress strings.Builder

	// Interrupt attempt 1 once it has two checkpoints: it stays running,
	// to be resumed by the next exp run.
	ctx, cancel := context.WithCancel(context.Background())
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			if _, err := os.Stat(filepath.Join(runDir, "step-00000008.pt")); err == nil {
				cancel()
				return
			}
		}
	}()
	_, err := Execute(ctx, p, Options{DB: db, RunsDir: runsDir, Devices: []string{"cpu"}, Trainer: realTrainer(t, &progress, nil)})
	close(stop)
	if err == nil {
		t.Fatal("the interrupted sweep returned no error")
	}
	ck, _ := filepath.Glob(filepath.Join(runDir, "step-*.pt"))
	if len(ck) != 2 {
		t.Fatalf("checkpoints kept: %v, want the last two", ck)
	}
	for _, f := range ck { // cut short, as a write that never finished
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(f, st.Size()/2); err != nil {
			t.Fatal(err)
		}
	}

	var log strings.Builder
	tr := realTrainer(t, &progress, nil)
	sum, err := Execute(context.Background(), p, Options{DB: db, RunsDir: runsDir, Devices: []string{"cpu"}, Trainer: tr, Log: &log, StaleAfter: time.Nanosecond})
	if err != nil || sum.Failed != 1 {
		t.Fatalf("resume onto damaged checkpoints: %+v %v\n%s", sum, err, log.String())
	}
	run, _, _ := oneRun(t, db)
	if run.Status != results.StatusFailed || !strings.Contains(run.Reason, "is corrupt: sha256") || !strings.Contains(run.Reason, "previous checkpoint") {
		t.Fatalf("failed run: %s %q", run.Status, run.Reason)
	}

	log.Reset()
	sum, err = Execute(context.Background(), p, Options{DB: db, RunsDir: runsDir, Devices: []string{"cpu"}, Trainer: tr, Log: &log, Retry: true})
	if err != nil || sum.Done != 1 || sum.Retried != 1 {
		t.Fatalf("retry: %+v %v\n%s", sum, err, log.String())
	}
	run, cur, _ := oneRun(t, db)
	if run.Status != results.StatusDone || len(cur) != 20 || cur[0].Step != 1 {
		t.Fatalf("after retry: %s with %d loss rows from step %d", run.Status, len(cur), cur[0].Step)
	}
	if bad, _ := filepath.Glob(filepath.Join(runDir, "attempt-1", "step-*.pt")); len(bad) != 2 {
		t.Errorf("the damaged checkpoints were not kept under attempt-1/: %v", bad)
	}
}
