package results

import (
	"testing"
	"time"
)

// A --retry claim is a new attempt: in the claim's transaction the old
// attempt's metric rows move to retried_metrics under its number, its evals
// and transitions go, the step restarts at 0 and retries counts up. A resume
// (stale heartbeat) keeps everything.
func TestRetryClaimArchivesTheAttempt(t *testing.T) {
	s := openT(t, tempDB(t))
	exp, _ := s.EnsureExperiment("e", "e.toml", "h")
	id, _, err := s.AddRun(exp, spec("r"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.ClaimRun(id, "a:1", time.Minute, false)
	if err != nil || !c.Granted || c.Retry || c.Attempt != 1 {
		t.Fatalf("first claim %+v %v", c, err)
	}
	attempt := func(loss float64) {
		t.Helper()
		w := s.NewMetricWriter(id)
		for step := 1; step <= 3; step++ {
			w.Add(step, "train", "loss", loss+float64(step))
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.PutEvals(id, map[string]float64{"mlm_acc": loss}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutTransitions(id, []Transition{{Layer: 0, L2: 1, CosineDeg: 2}}); err != nil {
			t.Fatal(err)
		}
		if err := s.Heartbeat(id, 3); err != nil {
			t.Fatal(err)
		}
	}
	attempt(10)
	if err := s.FinishRun(id, StatusDiverged, "loss NaN at step 3", "cpu", 1); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.ClaimRun(id, "b:2", time.Minute, false); c.Granted {
		t.Fatal("a diverged run was claimed without retry")
	}
	c, err = s.ClaimRun(id, "b:2", time.Minute, true)
	if err != nil || !c.Granted || !c.Retry || c.Resume || c.Attempt != 2 {
		t.Fatalf("retry claim %+v %v", c, err)
	}
	r, _ := s.Run(id)
	if r.Retries != 1 || r.Step != 0 || r.Attempts != 2 || r.Status != StatusRunning {
		t.Errorf("after retry: retries %d step %d attempts %d status %s", r.Retries, r.Step, r.Attempts, r.Status)
	}
	if cur, _ := s.Curve(id, "train", "loss"); len(cur) != 0 {
		t.Errorf("the new attempt starts with %d loss rows of the old one", len(cur))
	}
	if ev, _ := s.Evals(id); len(ev) != 0 {
		t.Errorf("old evals kept: %v", ev)
	}
	if tr, _ := s.Transitions(id); len(tr) != 0 {
		t.Errorf("old transitions kept: %v", tr)
	}
	old, err := s.RetriedCurve(id, 1, "train", "loss")
	if err != nil || len(old) != 3 || old[0] != (Point{1, 11}) || old[2] != (Point{3, 13}) {
		t.Fatalf("attempt 1 archived as %v, %v", old, err)
	}

	// A second attempt that fails is archived as attempt 2; attempt 1 stays.
	attempt(20)
	if err := s.FinishRun(id, StatusFailed, "boom", "cpu", 1); err != nil {
		t.Fatal(err)
	}
	if c, err = s.ClaimRun(id, "c:3", time.Minute, true); err != nil || c.Attempt != 3 {
		t.Fatalf("second retry %+v %v", c, err)
	}
	a1, _ := s.RetriedCurve(id, 1, "train", "loss")
	a2, _ := s.RetriedCurve(id, 2, "train", "loss")
	if len(a1) != 3 || a1[0].Value != 11 || len(a2) != 3 || a2[0].Value != 21 {
		t.Errorf("attempts 1 and 2: %v, %v", a1, a2)
	}

	// A takeover of a dead owner resumes: nothing is archived.
	attempt(30)
	time.Sleep(5 * time.Millisecond)
	c, err = s.ClaimRun(id, "d:4", time.Millisecond, true)
	if err != nil || !c.Granted || !c.Resume || c.Retry || c.Attempt != 3 {
		t.Fatalf("takeover %+v %v", c, err)
	}
	if cur, _ := s.Curve(id, "train", "loss"); len(cur) != 3 || cur[0].Value != 31 {
		t.Errorf("a resume lost its rows: %v", cur)
	}
	if r, _ := s.Run(id); r.Step != 3 || r.Retries != 2 {
		t.Errorf("after takeover: step %d retries %d", r.Step, r.Retries)
	}
}
