package train

import (
	"context"
	"strings"
	"testing"

	"github.com/reproml/albert/data"
)

// A loss past diverge_loss stops the run as diverged, naming the step and
// the reason, without an error: a degrading model is a result, not a crash.
func TestDivergenceStopsTheRun(t *testing.T) {
	defer lockThread()()
	job := tinyJob(t, data.ObjectiveNSP, 50)
	job.Train.DivergeLoss = 1 // any real loss of an untrained model exceeds it
	res, err := Run(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Diverged || !strings.Contains(res.Reason, "exceeds diverge_loss") || !strings.Contains(res.Reason, "step 1") {
		t.Fatalf("result %+v, want diverged at step 1", res)
	}
	if res.Step != 1 {
		t.Fatalf("ran %d steps after diverging", res.Step)
	}
}
