package bench

import (
	"fmt"
	"io"
	"math"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/data"
	"github.com/reproml/albert/model"
	"github.com/reproml/albert/train"
)

// MemoryOptions of a long run that watches RSS.
type MemoryOptions struct {
	Steps    int     // total steps (issue: 2000)
	At       int     // the reference step (issue: 200)
	Every    int     // RSS sample interval in steps (default 10)
	LimitPct float64 // allowed growth over the RSS at step At (default 5)
	Device   string
	Progress io.Writer // nil: quiet
}

// MemoryResult is RSS at step At, at the end and its peak after At.
type MemoryResult struct {
	Config    string  `json:"config"`
	Steps     int     `json:"steps"`
	At        int     `json:"at"`
	RSSAtMiB  float64 `json:"rss_at_mib"`
	RSSEndMiB float64 `json:"rss_end_mib"`
	PeakMiB   float64 `json:"peak_after_at_mib"` // highest sampled RSS after step At
	GrowthPct float64 `json:"growth_pct"`        // (max(peak, end) − at) / at
	LimitPct  float64 `json:"limit_pct"`
	Pass      bool    `json:"pass"`
}

// Write prints r with its PASS/FAIL verdict.
func (r MemoryResult) Write(w io.Writer) {
	mark := "PASS"
	if !r.Pass {
		mark = "FAIL"
	}
	fmt.Fprintf(w, "%s  %s, %d steps: RSS %.1f MiB at step %d, %.1f MiB at the end, peak after step %d %.1f MiB: growth %+.2f%% (limit ±%.0f%%)\n",
		mark, r.Config, r.Steps, r.RSSAtMiB, r.At, r.RSSEndMiB, r.At, r.PeakMiB, r.GrowthPct, r.LimitPct)
}

// Memory trains s for o.Steps steps on synthetic batches and samples RSS:
// a leak of anything per step (tensors, scalars, Go handles) shows as growth
// after the allocators have warmed up at step o.At.
func Memory(s Spec, o MemoryOptions) (MemoryResult, error) {
	if o.Every <= 0 {
		o.Every = 10
	}
	if o.LimitPct <= 0 {
		o.LimitPct = 5
	}
	r := MemoryResult{Config: s.Name, Steps: o.Steps, At: o.At, LimitPct: o.LimitPct}
	if o.At <= 0 || o.At >= o.Steps {
		return r, fmt.Errorf("bench: --memory-at %d must be within (0, %d)", o.At, o.Steps)
	}
	err := trainFor(s, o.Steps, o.Device, func(step int) {
		if step != o.At && step%o.Every != 0 && step != o.Steps {
			return
		}
		cur, _ := RSS()
		mib := float64(cur) / (1 << 20)
		switch {
		case step == o.At:
			r.RSSAtMiB = mib
		case step > o.At:
			r.PeakMiB = math.Max(r.PeakMiB, mib)
		}
		if step == o.Steps {
			r.RSSEndMiB = mib
		}
		if o.Progress != nil && step%(20*o.Every) == 0 {
			fmt.Fprintf(o.Progress, "bench: memory %s step %d/%d RSS %.1f MiB\n", s.Name, step, o.Steps, mib)
		}
	})
	if err != nil {
		return r, err
	}
	r.GrowthPct = 100 * (math.Max(r.PeakMiB, r.RSSEndMiB) - r.RSSAtMiB) / r.RSSAtMiB
	r.Pass = math.Abs(r.GrowthPct) <= r.LimitPct
	return r, nil
}

// trainFor runs steps training steps of s, calling after(step) after each
// (step counts from 1).
func trainFor(s Spec, steps int, device string, after func(step int)) (err error) {
	defer backend.LockThread()()
	if err := backend.Init(); err != nil {
		return err
	}
	dev, err := backend.Device(device)
	if err != nil {
		return err
	}
	if err := backend.Seed(1); err != nil {
		return err
	}
	m, err := model.New(s.Model, dev)
	if err != nil {
		return err
	}
	defer m.VarStore.Destroy()
	tc := lamb(steps)
	tc.WarmupSteps = steps / 10
	tc.LR = 0.00176
	sp, err := train.NewStepper(m, tc)
	if err != nil {
		return err
	}
	defer sp.Close()
	batches := Batches(s, 8, 2)
	k := 0
	next := func() (data.Batch, error) { b := batches[k%len(batches)]; k++; return b, nil }
	for step := 0; step < steps; step++ {
		if err := backend.Seed(int64(step) + 1); err != nil {
			return err
		}
		if _, _, err := sp.Step(next, tc.LearningRate(step), step%10 == 9); err != nil {
			return err
		}
		after(step + 1)
	}
	return nil
}
