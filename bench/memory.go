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

// MemoryResult compares peak RSS (the high-water mark, VmHWM) at step At
// with the peak at the end: the issue's "peak RSS stays within ±5% after
// step 200". Current RSS is reported beside it; it swings with Go's heap and
// the C allocator's trims.
type MemoryResult struct {
	Config     string  `json:"config"`
	Steps      int     `json:"steps"`
	At         int     `json:"at"`
	PeakAtMiB  float64 `json:"peak_rss_at_mib"`  // VmHWM at step At
	PeakEndMiB float64 `json:"peak_rss_end_mib"` // VmHWM at the end
	RSSAtMiB   float64 `json:"rss_at_mib"`       // VmRSS at step At
	RSSEndMiB  float64 `json:"rss_end_mib"`      // VmRSS at the end
	RSSMaxMiB  float64 `json:"rss_max_after_mib"`
	GrowthPct  float64 `json:"growth_pct"` // (PeakEnd − PeakAt) / PeakAt
	LimitPct   float64 `json:"limit_pct"`
	Pass       bool    `json:"pass"`
}

// Write prints r with its PASS/FAIL verdict.
func (r MemoryResult) Write(w io.Writer) {
	mark := "PASS"
	if !r.Pass {
		mark = "FAIL"
	}
	fmt.Fprintf(w, "%s  %s, %d steps: peak RSS %.1f MiB at step %d, %.1f MiB at the end: %+.2f%% (limit ±%.0f%%); current RSS %.1f at step %d, %.1f at the end, at most %.1f after step %d\n",
		mark, r.Config, r.Steps, r.PeakAtMiB, r.At, r.PeakEndMiB, r.GrowthPct, r.LimitPct, r.RSSAtMiB, r.At, r.RSSEndMiB, r.RSSMaxMiB, r.At)
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
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	err := trainFor(s, o.Steps, o.Device, func(step int) {
		if step != o.At && step%o.Every != 0 && step != o.Steps {
			return
		}
		cur, peak := RSS()
		switch {
		case step == o.At:
			r.RSSAtMiB, r.PeakAtMiB = mib(cur), mib(peak)
		case step > o.At:
			r.RSSMaxMiB = math.Max(r.RSSMaxMiB, mib(cur))
		}
		if step == o.Steps {
			r.RSSEndMiB, r.PeakEndMiB = mib(cur), mib(peak)
		}
		if o.Progress != nil && step%(20*o.Every) == 0 {
			fmt.Fprintf(o.Progress, "bench: memory %s step %d/%d RSS %.1f MiB, peak %.1f MiB\n", s.Name, step, o.Steps, mib(cur), mib(peak))
		}
	})
	if err != nil {
		return r, err
	}
	r.GrowthPct = 100 * (r.PeakEndMiB - r.PeakAtMiB) / r.PeakAtMiB
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
