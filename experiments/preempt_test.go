package experiments

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/reproml/albert/results"
	"github.com/reproml/albert/train"
)

// A trainer stopped by a preemption leaves its run preempted (not failed,
// not running), and the next Execute resumes it at once.
func TestPreemptedRunIsResumedNext(t *testing.T) {
	plan := goodPlan(t)
	db := filepath.Join(t.TempDir(), "exp.db")
	ctx, cancel := context.WithCancelCause(context.Background())
	first := plan.Runs[0].Hash
	f := &fake{outcome: func(j Job) (Outcome, error) {
		if j.Run.Hash == first {
			cancel(fmt.Errorf("SIGUSR2: %w", train.ErrPreempted))
			return Outcome{}, fmt.Errorf("train: checkpointed at step 3 and stopped: %w", context.Cause(ctx))
		}
		return Outcome{Status: results.StatusDone}, nil
	}}
	sum, err := Execute(ctx, plan, Options{DB: db, RunsDir: t.TempDir(), Trainer: f})
	if err == nil || sum.Preempted != 1 || sum.Failed != 0 {
		t.Fatalf("preempted sweep: %+v, %v", sum, err)
	}
	if st := statuses(t, db)[plan.Runs[0].Label]; st != results.StatusPreempted {
		t.Fatalf("preempted run is %s", st)
	}
	g := &fake{}
	sum, err = Execute(context.Background(), plan, Options{DB: db, RunsDir: t.TempDir(), Trainer: g})
	if err != nil || sum.Resumed != 1 || sum.Done != len(plan.Runs) {
		t.Fatalf("next sweep: %+v, %v", sum, err)
	}
	for _, j := range g.jobs {
		if j.Run.Hash == first && !j.Resume {
			t.Fatal("the preempted run was not handed over as a resume")
		}
	}
}
