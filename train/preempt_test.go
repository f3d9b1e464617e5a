package train

import (
	"context"
	"errors"
	"testing"

	"github.com/reproml/albert/data"
)

// A preemption (cancellation with cause ErrPreempted) between checkpoints
// saves one at the step it stops at; the resumed run continues from that
// step, not the last periodic checkpoint, and matches an uninterrupted run.
func TestPreemptCheckpointsAtTheStepBoundary(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three tiny runs")
	}
	defer lockThread()()
	whole := tinyJob(t, data.ObjectiveSOP, 30)
	whole.Train.CheckpointEvery = 10
	a, err := Run(context.Background(), whole)
	if err != nil {
		t.Fatal(err)
	}
	cut := tinyJob(t, data.ObjectiveSOP, 30)
	cut.Train.CheckpointEvery = 10
	ctx, cancel := context.WithCancelCause(context.Background())
	cut.afterStep = func(step int) {
		if step == 17 {
			cancel(ErrPreempted)
		}
	}
	if _, err := Run(ctx, cut); !errors.Is(err, ErrPreempted) {
		t.Fatalf("preempted run: %v, want ErrPreempted", err)
	}
	if r, _ := cut.Store.Run(cut.RunID); r.Step != 17 {
		t.Fatalf("heartbeat step %d after preemption, want 17", r.Step)
	}
	cut.afterStep = nil
	b, err := Run(context.Background(), cut)
	if err != nil {
		t.Fatal(err)
	}
	if b.Resumed != 17 {
		t.Fatalf("resumed from step %d, want 17 (the preemption's checkpoint)", b.Resumed)
	}
	ca, _ := whole.Store.Curve(whole.RunID, "train", "loss")
	cb, _ := cut.Store.Curve(cut.RunID, "train", "loss")
	if len(ca) != len(cb) || len(ca) == 0 {
		t.Fatalf("%d loss rows uninterrupted, %d preempted", len(ca), len(cb))
	}
	for i := range ca {
		if ca[i] != cb[i] {
			t.Fatalf("loss curves differ at %d: %+v vs %+v", i, ca[i], cb[i])
		}
	}
	if a.Final["mlm_loss"] != b.Final["mlm_loss"] {
		t.Fatalf("final mlm loss %v vs %v", a.Final["mlm_loss"], b.Final["mlm_loss"])
	}

	// A plain cancellation still stops without a new checkpoint.
	plain := tinyJob(t, data.ObjectiveSOP, 30)
	plain.Train.CheckpointEvery = 10
	ctx2, cancel2 := context.WithCancel(context.Background())
	plain.afterStep = func(step int) {
		if step == 13 {
			cancel2()
		}
	}
	if _, err := Run(ctx2, plain); !errors.Is(err, context.Canceled) || errors.Is(err, ErrPreempted) {
		t.Fatalf("cancelled run: %v", err)
	}
	plain.afterStep = nil
	if c, err := Run(context.Background(), plain); err != nil || c.Resumed != 10 {
		t.Fatalf("after a plain cancel: resumed from %d (%v), want the periodic checkpoint at 10", c.Resumed, err)
	}
}
