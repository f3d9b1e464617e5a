package finetune

import (
	"context"
	"math"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/finetune/tasks"
)

// Under Pooling "mean" the head reads the last layer's states averaged over
// the real tokens only (padding ignored), not the pooler; the official
// default reads the pooler.
func TestMeanPoolingAveragesRealTokens(t *testing.T) {
	defer lockThread()()
	d := toyData(tasks.Classification, 4, 4)
	for _, pooling := range []string{"", PoolMean} {
		c := tinyConfig(1)
		c.Pooling = pooling
		m, err := NewModel(tinyEncoder(), d.Task, c, 1, gotch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		backend.NoGrad(func() {
			var s backend.Scope
			defer s.Free()
			in := ToDevice(&s, d.Train, tasks.Classification, gotch.CPU)
			hidden := m.Enc.Forward(&s, in.Inputs, false, false).Hidden // [4,8,H]
			got := backend.Float64s(m.pooled(&s, in, hidden))
			H := int(m.Enc.Config.HiddenSize)
			var want []float64
			if pooling == PoolMean {
				real := s.T(hidden.MustNarrow(1, 0, 4, false)) // toyFeature: 4 real tokens, then padding
				want = backend.Float64s(s.T(real.MustMeanDim([]int64{1}, false, gotch.Float, false)))
			} else {
				want = backend.Float64s(m.Enc.Pooler.Forward(&s, hidden))
			}
			if len(got) != 4*H || len(want) != 4*H {
				t.Fatalf("pooling %q: %d values, want %d", pooling, len(got), 4*H)
			}
			for i := range got {
				if math.Abs(got[i]-want[i]) > 1e-5 {
					t.Fatalf("pooling %q: value %d = %g, want %g", pooling, i, got[i], want[i])
				}
			}
		})
		m.Close()
	}
}

// A mean-pooling classifier learns the separable toy task, and its pooler,
// which nothing reads, is left as initialised.
func TestMeanPoolingLearnsAndLeavesPooler(t *testing.T) {
	defer lockThread()()
	st := openStore(t)
	c := tinyConfig(80)
	c.Pooling = PoolMean
	job := Job{RunID: testRun(t, st, "mean"), Name: "toy", Seed: 1, Encoder: tinyEncoder(), Config: c,
		Data: toyData(tasks.Classification, 96, 48), Dir: t.TempDir(), Device: "cpu", Store: st}
	res, err := Run(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	if acc := bestValue(res, tasks.MetricAccuracy); !(acc >= 0.9) {
		t.Errorf("best dev accuracy %.3f, want >= 0.9", acc)
	}
	fresh, err := NewModel(tinyEncoder(), job.Data.Task, c, 1, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	trained, err := NewModel(tinyEncoder(), job.Data.Task, c, 7, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer trained.Close()
	if _, err := trained.LoadBest(job.Dir); err != nil {
		t.Fatal(err)
	}
	same := func(a, b *ts.Tensor) bool { return a.MustAllclose(b, 0, 0, false, false) }
	if !same(trained.Enc.Pooler.W, fresh.Enc.Pooler.W) {
		t.Error("the pooler's weight changed under mean pooling")
	}
	if same(trained.Head.W, fresh.Head.W) {
		t.Error("the head's weight did not change: nothing trained")
	}
}

func TestPoolingValidated(t *testing.T) {
	c := tinyConfig(10)
	for _, p := range []string{"", PoolCLS, PoolMean} {
		c.Pooling = p
		if err := c.Validate(); err != nil {
			t.Errorf("pooling %q: %v", p, err)
		}
	}
	c.Pooling = "max"
	if err := c.Validate(); err == nil {
		t.Error("pooling \"max\" accepted")
	}
}
