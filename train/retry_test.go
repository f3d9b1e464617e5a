package train

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reproml/albert/data"
)

// damageFile flips bytes in the middle of a file.
func damageFile(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(b) / 2; i < len(b)/2+16 && i < len(b); i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// stopAt runs job until step, then cancels it (checkpoints every 5).
func stopAt(t *testing.T, job Job, step int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	job.afterStep = func(s int) {
		if s == step {
			cancel()
		}
	}
	if _, err := Run(ctx, job); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
}

// The last two checkpoints are kept. A damaged newest one falls back to the
// previous one, says so and resumes from its step; the resumed curve still
// equals an uninterrupted run's. With both damaged the run fails with the
// checksum message, naming both.
func TestDamagedCheckpointFallsBackToPrevious(t *testing.T) {
	defer lockThread()()
	whole := tinyJob(t, data.ObjectiveNone, 20)
	whole.Train.CheckpointEvery, whole.Train.LogEvery = 5, 1
	if _, err := Run(context.Background(), whole); err != nil {
		t.Fatal(err)
	}
	if ck, _ := filepath.Glob(filepath.Join(whole.Dir, "step-*.pt")); len(ck) != 2 ||
		filepath.Base(ck[0]) != "step-00000015.pt" || filepath.Base(ck[1]) != "step-00000020.pt" {
		t.Fatalf("checkpoints kept after 20 steps: %v, want steps 15 and 20", ck)
	}

	job := tinyJob(t, data.ObjectiveNone, 20)
	job.Train.CheckpointEvery, job.Train.LogEvery = 5, 1
	var progress strings.Builder
	job.Progress = &progress
	stopAt(t, job, 12) // checkpoints at 5 and 10
	damageFile(t, filepath.Join(job.Dir, "step-00000010.pt"))
	res, err := Run(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed != 5 || !strings.Contains(res.Fallback, "checkpoint at step 10 is damaged") || !strings.Contains(res.Fallback, "is corrupt: sha256") {
		t.Fatalf("resumed from %d, fallback %q; want step 5 after a damaged step 10", res.Resumed, res.Fallback)
	}
	if !strings.Contains(progress.String(), "resuming from the previous checkpoint at step 5") {
		t.Errorf("the fallback was not said:\n%s", progress.String())
	}
	a, _ := whole.Store.Curve(whole.RunID, "train", "loss")
	b, _ := job.Store.Curve(job.RunID, "train", "loss")
	if len(a) != 20 || len(b) != len(a) {
		t.Fatalf("%d loss rows uninterrupted, %d after the fallback", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("curves differ at step %d: %v vs %v", a[i].Step, a[i].Value, b[i].Value)
		}
	}

	// Both damaged: no checkpoint to resume from, the message names both.
	both := tinyJob(t, data.ObjectiveNone, 20)
	both.Train.CheckpointEvery = 5
	stopAt(t, both, 12)
	for _, f := range []string{"step-00000005.pt", "step-00000010.pt"} {
		damageFile(t, filepath.Join(both.Dir, f))
	}
	_, err = Run(context.Background(), both)
	if err == nil || !strings.Contains(err.Error(), "step-00000010.pt is corrupt: sha256") ||
		!strings.Contains(err.Error(), "the previous checkpoint (step 5) is no good either") || !strings.Contains(err.Error(), "step-00000005.pt is corrupt") {
		t.Fatalf("both damaged: %v", err)
	}
}
