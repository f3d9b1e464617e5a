package train

import (
	"context"
	"errors"
	"testing"

	"github.com/sugarme/gotch/ts"
)

// voteWorld is one rank's view of a world of two: its all-reduce adds the
// other rank's [stopped, preempted] vote and runs during, as a signal
// landing while the collective is in flight would.
type voteWorld struct {
	other  []float32
	during func()
}

func (w *voteWorld) Rank() int       { return 1 }
func (w *voteWorld) Size() int       { return 2 }
func (w *voteWorld) Backend() string { return "fake" }
func (w *voteWorld) AllReduceMean([]*ts.Tensor) error {
	return errors.New("not a vote")
}
func (w *voteWorld) Broadcast([]*ts.Tensor, int) error { return errors.New("not a vote") }
func (w *voteWorld) Barrier() error                    { return errors.New("not a vote") }
func (w *voteWorld) AllReduceSum(xs []*ts.Tensor) error {
	o := ts.MustOfSlice(w.other)
	defer o.MustDrop()
	xs[0].MustAdd_(o)
	if w.during != nil {
		w.during()
	}
	return nil
}

// Every rank must take the world's decision, whatever its own context
// does after it voted: stopping alone (or preempting alone, which waits
// at a barrier the others never reach) hangs the world until the
// collective timeout.
func TestStopVoteIsTheWorldsDecision(t *testing.T) {
	interrupted := errors.New("interrupt")
	cases := []struct {
		name      string
		own       error // this rank's cancellation cause before the vote (nil: none)
		during    error // a cause that arrives during the all-reduce
		other     []float32
		stop, pre bool
	}{
		{name: "no rank stops", other: []float32{0, 0}},
		{name: "a signal during the vote waits for the next step", during: ErrPreempted, other: []float32{0, 0}},
		{name: "an interrupt during the vote waits for the next step", during: interrupted, other: []float32{0, 0}},
		{name: "preempted here", own: ErrPreempted, other: []float32{0, 0}, stop: true, pre: true},
		{name: "preempted there", other: []float32{1, 1}, stop: true, pre: true},
		{name: "interrupted here, preempted there: all checkpoint", own: interrupted, other: []float32{1, 1}, stop: true, pre: true},
		{name: "interrupted there", other: []float32{1, 0}, stop: true},
		{name: "interrupted here", own: interrupted, other: []float32{0, 0}, stop: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			if c.own != nil {
				cancel(c.own)
			}
			w := &voteWorld{other: c.other}
			if c.during != nil {
				w.during = func() { cancel(c.during) }
			}
			st := &state{job: Job{World: w}}
			err := st.stopVote(ctx)
			if (err != nil) != c.stop || errors.Is(err, ErrPreempted) != c.pre {
				t.Fatalf("stopVote = %v; want stop %v, preempt %v", err, c.stop, c.pre)
			}
		})
	}
}

// Alone, the vote is the context: its preemption cause, its error, or nil.
func TestStopVoteAlone(t *testing.T) {
	st := &state{}
	ctx, cancel := context.WithCancelCause(context.Background())
	if err := st.stopVote(ctx); err != nil {
		t.Fatalf("live context: %v", err)
	}
	cancel(ErrPreempted)
	if err := st.stopVote(ctx); !errors.Is(err, ErrPreempted) {
		t.Fatalf("preempted context: %v", err)
	}
	ctx, cancel = context.WithCancelCause(context.Background())
	cancel(nil)
	if err := st.stopVote(ctx); !errors.Is(err, context.Canceled) || errors.Is(err, ErrPreempted) {
		t.Fatalf("cancelled context: %v", err)
	}
}
