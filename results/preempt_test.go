package results

import (
	"errors"
	"testing"
	"time"
)

// Migration 5 rebuilds runs to allow status preempted: on a version-3 (or 4)
// database with rows in every table that references runs, no row is lost,
// no reference breaks, and deleting a run still cascades.
func TestMigration5KeepsRowsAndReferences(t *testing.T) {
	path := tempDB(t)
	old, err := openWith(path, migrations[:3])
	if err != nil {
		t.Fatal(err)
	}
	exp, _ := old.EnsureExperiment("sharing", "f.toml", "h")
	a, _, _ := old.AddRun(exp, spec("a"))
	b, _, _ := old.AddRun(exp, spec("b"))
	if _, err := old.ClaimRun(a, "host:1", time.Minute, false); err != nil {
		t.Fatal(err)
	}
	w := old.NewMetricWriter(a)
	w.Add(1, "train", "loss", 3)
	w.Add(2, "train", "loss", 2)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := old.PutEvals(a, map[string]float64{"mlm_acc": 0.5}); err != nil {
		t.Fatal(err)
	}
	if err := old.PutProvenance(a, Provenance{Host: "h"}); err != nil {
		t.Fatal(err)
	}
	if err := old.FinishRun(a, StatusDone, "", "cpu", 1); err != nil {
		t.Fatal(err)
	}
	old.Close()

	s := openT(t, path)
	if v, _ := s.Version(); v < 5 {
		t.Fatalf("schema version %d after open, want ≥ 5", v)
	}
	for q, want := range map[string]int{
		`SELECT COUNT(*) FROM runs`:                                     2,
		`SELECT COUNT(*) FROM metrics WHERE run_id = 1`:                 2,
		`SELECT COUNT(*) FROM evals WHERE run_id = 1`:                   1,
		`SELECT COUNT(*) FROM provenance WHERE run_id = 1`:              1,
		`SELECT COUNT(*) FROM experiment_runs`:                          2,
		`SELECT COUNT(*) FROM runs WHERE status = 'done'`:               1,
		`SELECT COUNT(*) FROM pragma_foreign_key_check`:                 0,
		`SELECT COUNT(*) FROM sqlite_master WHERE name = 'runs_status'`: 1,
	} {
		if n := count(t, s, q); n != want {
			t.Errorf("%s = %d, want %d", q, n, want)
		}
	}
	if count(t, s, `SELECT COUNT(*) FROM pragma_foreign_keys`) != 1 {
		t.Fatal("foreign keys are off after the migration")
	}
	if _, err := s.db.Exec(`DELETE FROM runs WHERE id = ?`, a); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, `SELECT COUNT(*) FROM metrics`); n != 0 {
		t.Errorf("deleting run %d left %d metric rows: the cascade is gone", a, n)
	}
	_ = b
}

// A preempted run is resumed by the next claim at once (its heartbeat is
// fresh), counts its preemptions, and a taken-over claim cannot preempt.
func TestPreemptRunThenResume(t *testing.T) {
	s := openT(t, tempDB(t))
	exp, _ := s.EnsureExperiment("e", "f", "h")
	id, _, _ := s.AddRun(exp, spec("a"))
	for i := 1; i <= 2; i++ {
		c, err := s.ClaimRun(id, "host:1", time.Hour, false)
		if err != nil || !c.Granted || c.Resume != (i > 1) {
			t.Fatalf("claim %d: %+v %v", i, c, err)
		}
		if err := s.Heartbeat(id, 10*i); err != nil {
			t.Fatal(err)
		}
		n, err := s.PreemptRun(id, "SIGUSR2")
		if err != nil || n != i {
			t.Fatalf("preempt %d: %d %v", i, n, err)
		}
		r, _ := s.Run(id)
		if r.Status != StatusPreempted || r.Preemptions != i || r.Step != 10*i || r.Reason != "SIGUSR2" || r.Owner != "" {
			t.Fatalf("after preempt %d: %+v", i, r)
		}
	}
	// Claimed by one store, taken over by another: the first cannot preempt.
	if _, err := s.ClaimRun(id, "host:1", time.Hour, false); err != nil {
		t.Fatal(err)
	}
	other := openT(t, s.Path())
	if _, err := other.db.Exec(`UPDATE runs SET owner = 'host:2' WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PreemptRun(id, "x"); !errors.Is(err, ErrClaimLost) {
		t.Fatalf("preempt after takeover: %v, want ErrClaimLost", err)
	}
	// A pending run cannot be preempted.
	p, _, _ := s.AddRun(exp, spec("b"))
	if _, err := s.PreemptRun(p, "x"); err == nil {
		t.Fatal("preempting a pending run succeeded")
	}
}
