package results

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func openT(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func tempDB(t testing.TB) string { return filepath.Join(t.TempDir(), "exp.db") }

func count(t testing.TB, s *Store, q string, args ...any) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestOpenMigratesAndReopenIsNoop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "exp.db") // parent dirs do not exist yet
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Version(); err != nil || v != SchemaVersion {
		t.Fatalf("version = %d, %v; want %d", v, err, SchemaVersion)
	}
	var uv int
	s.db.QueryRow(`PRAGMA user_version`).Scan(&uv)
	if uv != SchemaVersion {
		t.Errorf("user_version = %d, want %d", uv, SchemaVersion)
	}
	var mode string
	s.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode)
	if mode != "wal" {
		t.Errorf("journal_mode = %q", mode)
	}
	var busy int
	s.db.QueryRow(`PRAGMA busy_timeout`).Scan(&busy)
	if busy != int(BusyTimeout.Milliseconds()) {
		t.Errorf("busy_timeout = %d", busy)
	}
	// Foreign keys are enforced: a metric for a missing run is refused.
	if _, err := s.db.Exec(`INSERT INTO metrics(run_id, step, split, name, value) VALUES (999, 1, 'train', 'loss', 1)`); err == nil {
		t.Error("foreign keys not enforced")
	}
	// Statuses are constrained to the five known ones.
	if _, err := s.db.Exec(`INSERT INTO runs(config_hash, name, config_json, seed, profile, total_steps, created_at, status)
		VALUES ('h', 'n', '{}', 1, 'cpu', 1, 'now', 'finished')`); err == nil {
		t.Error("status CHECK not enforced")
	}
	var applied string
	s.db.QueryRow(`SELECT applied_at FROM schema_migrations WHERE version = 1`).Scan(&applied)
	s.Close()

	s = openT(t, path)
	if n := count(t, s, `SELECT COUNT(*) FROM schema_migrations`); n != len(migrations) {
		t.Errorf("schema_migrations has %d rows after reopen, want %d", n, len(migrations))
	}
	var again string
	s.db.QueryRow(`SELECT applied_at FROM schema_migrations WHERE version = 1`).Scan(&again)
	if again != applied || applied == "" {
		t.Errorf("migration 1 re-applied: %q then %q", applied, again)
	}
}

func TestOpenUpgradesOlderDB(t *testing.T) {
	path := tempDB(t)
	old, err := openWith(path, migrations[:1])
	if err != nil {
		t.Fatal(err)
	}
	exp, _ := old.EnsureExperiment("e", "e.toml", "h")
	id, _, err := old.AddRun(exp, RunSpec{ConfigHash: "c1", Name: "r", ConfigJSON: `{}`, TotalSteps: 10})
	if err != nil {
		t.Fatal(err)
	}
	old.Close()

	next := append(append([]migration{}, migrations...),
		migration{len(migrations) + 1, "test: add runs.note", `ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT 'n';`})
	s, err := openWith(path, next)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, _ := s.Version(); v != len(next) {
		t.Fatalf("version = %d after upgrade, want %d", v, len(next))
	}
	var note string
	if err := s.db.QueryRow(`SELECT note FROM runs WHERE id = ?`, id).Scan(&note); err != nil || note != "n" {
		t.Fatalf("upgraded run: note=%q err=%v", note, err)
	}
	// A failing migration rolls back completely and leaves the version alone.
	bad := append(append([]migration{}, next...),
		migration{len(next) + 1, "test: broken", `CREATE TABLE t(x); SELECT * FROM nope;`})
	if _, err := openWith(path, bad); err == nil {
		t.Fatal("broken migration succeeded")
	}
	if v, _ := s.Version(); v != len(next) {
		t.Errorf("version = %d after failed migration, want %d", v, len(next))
	}
	if n := count(t, s, `SELECT COUNT(*) FROM sqlite_master WHERE name = 't'`); n != 0 {
		t.Error("failed migration left a table behind")
	}
}

func TestOpenNewerDBFails(t *testing.T) {
	path := tempDB(t)
	s := openT(t, path)
	if _, err := s.db.Exec(`INSERT INTO schema_migrations(version, description, applied_at) VALUES (?, 'future', 'x')`,
		SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(path)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a newer database: %v, want ErrSchemaTooNew", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error does not name the file: %v", err)
	}
}

func TestConcurrentOpenOfFreshFile(t *testing.T) {
	path := tempDB(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(path)
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s := openT(t, path)
	if n := count(t, s, `SELECT COUNT(*) FROM schema_migrations`); n != len(migrations) {
		t.Fatalf("%d migration rows, want %d", n, len(migrations))
	}
}

func TestPathWithURICharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "we?ird #dir%20", "exp.db")
	s := openT(t, path)
	if _, err := s.EnsureExperiment("e", "f", "h"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at the literal path: %v", err)
	}
}

func TestEnsureExperiment(t *testing.T) {
	s := openT(t, tempDB(t))
	a, err := s.EnsureExperiment("sharing", "ablations/sharing.toml", "h1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.EnsureExperiment("sharing", "moved/sharing.toml", "h1")
	if a != b {
		t.Fatalf("same content got ids %d and %d", a, b)
	}
	c, _ := s.EnsureExperiment("sharing", "moved/sharing.toml", "h2")
	if c == a {
		t.Fatal("changed content reused the old row")
	}
	es, err := s.Experiments()
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].File != "moved/sharing.toml" || es[0].ContentHash != "h1" || es[1].ContentHash != "h2" {
		t.Fatalf("experiments = %+v", es)
	}
	if _, err := s.EnsureExperiment("", "f", "h"); err == nil {
		t.Error("empty name accepted")
	}
}

func spec(hash string) RunSpec {
	return RunSpec{ConfigHash: hash, Name: "run " + hash, ConfigJSON: `{"h":"` + hash + `"}`,
		Profile: "cpu", ScaleJSON: `{"steps":0.01}`, Seed: 1, TotalSteps: 100, Params: 12345}
}

func TestAddRunIdempotentAndLinks(t *testing.T) {
	s := openT(t, tempDB(t))
	t3, _ := s.EnsureExperiment("embedding", "embedding.toml", "x")
	t4, _ := s.EnsureExperiment("sharing", "sharing.toml", "y")
	id, created, err := s.AddRun(t3, spec("base"))
	if err != nil || !created {
		t.Fatalf("first AddRun: id=%d created=%v err=%v", id, created, err)
	}
	id2, created, err := s.AddRun(t4, spec("base"))
	if err != nil || created || id2 != id {
		t.Fatalf("second AddRun: id=%d created=%v err=%v, want %d false nil", id2, created, err, id)
	}
	id3, _, _ := s.AddRun(t4, spec("base")) // again: no duplicate link
	if id3 != id || count(t, s, `SELECT COUNT(*) FROM experiment_runs`) != 2 {
		t.Fatalf("links = %d, want 2", count(t, s, `SELECT COUNT(*) FROM experiment_runs`))
	}
	other, _, _ := s.AddRun(t4, spec("other"))
	if count(t, s, `SELECT COUNT(*) FROM runs`) != 2 {
		t.Fatal("duplicate run rows")
	}
	for _, c := range []struct {
		f    RunFilter
		want []int64
	}{
		{RunFilter{Experiment: "embedding"}, []int64{id}},
		{RunFilter{Experiment: "sharing"}, []int64{id, other}},
		{RunFilter{ExperimentID: t3}, []int64{id}},
		{RunFilter{ConfigHash: "other"}, []int64{other}},
		{RunFilter{Statuses: []Status{StatusPending}}, []int64{id, other}},
		{RunFilter{Statuses: []Status{StatusDone, StatusFailed}}, nil},
		{RunFilter{Profile: "paper"}, nil},
	} {
		rs, err := s.Runs(c.f)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, r := range rs {
			got = append(got, r.ID)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("Runs(%+v) = %v, want %v", c.f, got, c.want)
		}
	}
	r, err := s.Run(id)
	if err != nil {
		t.Fatal(err)
	}
	want := spec("base")
	if r.ConfigHash != want.ConfigHash || r.Name != want.Name || r.ConfigJSON != want.ConfigJSON ||
		r.Profile != want.Profile || r.ScaleJSON != want.ScaleJSON || r.Seed != want.Seed ||
		r.TotalSteps != want.TotalSteps || r.Params != want.Params || r.Status != StatusPending || r.CreatedAt.IsZero() {
		t.Errorf("run = %+v", r)
	}
	es, _ := s.Experiments()
	for _, e := range es {
		if e.Name == "sharing" && e.Runs[StatusPending] != 2 {
			t.Errorf("sharing counts = %v", e.Runs)
		}
	}

	bad := spec("base")
	bad.ConfigJSON = `{"different":true}`
	if _, _, err := s.AddRun(t3, bad); err == nil {
		t.Error("same hash, different config accepted")
	}
	bad = spec("z")
	bad.ConfigJSON = `{`
	if _, _, err := s.AddRun(t3, bad); err == nil {
		t.Error("invalid JSON accepted")
	}
	if _, _, err := s.AddRun(999, spec("nolink")); err == nil {
		t.Error("unknown experiment accepted")
	}
	if n := count(t, s, `SELECT COUNT(*) FROM runs WHERE config_hash = 'nolink'`); n != 0 {
		t.Error("failed AddRun left a run behind (not one transaction)")
	}
	if _, err := s.Run(12345); !errors.Is(err, ErrNoRun) {
		t.Errorf("Run(unknown) = %v", err)
	}
}

// clock is a settable time source shared by the Stores of a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestClaimRunSemantics(t *testing.T) {
	const stale = time.Minute
	cases := []struct {
		name      string
		setup     string // SQL applied to run ?1 before the claim
		age       time.Duration
		retry     bool
		granted   bool
		resume    bool
		prev      Status
		after     Status
		holder    string
		attempts0 int
	}{
		{name: "pending", prev: StatusPending, granted: true, after: StatusRunning},
		{name: "done", setup: `UPDATE runs SET status='done' WHERE id=?1`, prev: StatusDone, after: StatusDone},
		{name: "done with retry", setup: `UPDATE runs SET status='done' WHERE id=?1`, retry: true, prev: StatusDone, after: StatusDone},
		{name: "running fresh", setup: `UPDATE runs SET status='running', owner='other:1', attempts=1 WHERE id=?1`,
			age: stale - time.Second, prev: StatusRunning, after: StatusRunning, holder: "other:1", attempts0: 1},
		{name: "running stale", setup: `UPDATE runs SET status='running', owner='other:1', attempts=1 WHERE id=?1`,
			age: stale + time.Second, granted: true, resume: true, prev: StatusRunning, after: StatusRunning, attempts0: 1},
		{name: "running no heartbeat", setup: `UPDATE runs SET status='running', owner='other:1' WHERE id=?1`,
			granted: true, resume: true, prev: StatusRunning, after: StatusRunning},
		{name: "failed", setup: `UPDATE runs SET status='failed', reason='oom' WHERE id=?1`, prev: StatusFailed, after: StatusFailed},
		{name: "failed retry", setup: `UPDATE runs SET status='failed', reason='oom', finished_at='x' WHERE id=?1`,
			retry: true, granted: true, prev: StatusFailed, after: StatusRunning},
		{name: "diverged", setup: `UPDATE runs SET status='diverged' WHERE id=?1`, prev: StatusDiverged, after: StatusDiverged},
		{name: "diverged retry", setup: `UPDATE runs SET status='diverged' WHERE id=?1`, retry: true, granted: true,
			prev: StatusDiverged, after: StatusRunning},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := openT(t, tempDB(t))
			clk := &clock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
			s.now = clk.now
			exp, _ := s.EnsureExperiment("e", "e.toml", "h")
			id, _, _ := s.AddRun(exp, spec("r"))
			if c.setup != "" {
				if _, err := s.db.Exec(c.setup, id); err != nil {
					t.Fatal(err)
				}
				if strings.Contains(c.setup, "owner") && c.name != "running no heartbeat" {
					s.db.Exec(`UPDATE runs SET heartbeat_at = ? WHERE id = ?`, fmtTime(clk.now()), id)
				}
			}
			clk.add(c.age)
			cl, err := s.ClaimRun(id, "me:42", stale, c.retry)
			if err != nil {
				t.Fatal(err)
			}
			if cl.Granted != c.granted || cl.Resume != c.resume || cl.Prev != c.prev || cl.RunID != id || cl.Owner != c.holder {
				t.Fatalf("claim = %+v, want granted=%v resume=%v prev=%s owner=%q", cl, c.granted, c.resume, c.prev, c.holder)
			}
			r, _ := s.Run(id)
			if r.Status != c.after {
				t.Errorf("status after = %s, want %s", r.Status, c.after)
			}
			if c.granted {
				if r.Owner != "me:42" || !r.HeartbeatAt.Equal(clk.now()) || r.StartedAt.IsZero() ||
					r.Reason != "" || !r.FinishedAt.IsZero() || r.Attempts != c.attempts0+1 {
					t.Errorf("granted run = %+v", r)
				}
			} else if r.Attempts != c.attempts0 || r.Owner == "me:42" {
				t.Errorf("refused claim changed the run: %+v", r)
			}
		})
	}
	t.Run("unknown run", func(t *testing.T) {
		s := openT(t, tempDB(t))
		if _, err := s.ClaimRun(77, "me:1", stale, false); !errors.Is(err, ErrNoRun) ||
			!strings.Contains(err.Error(), "claim run 77") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("bad arguments", func(t *testing.T) {
		s := openT(t, tempDB(t))
		id := newRun(t, s, "r")
		if _, err := s.ClaimRun(id, "", stale, false); err == nil {
			t.Error("empty owner accepted")
		}
		if _, err := s.ClaimRun(id, "me:1", 0, false); err == nil {
			t.Error("zero staleAfter accepted")
		}
	})
}

// Two Stores (two connection pools, as two processes would have) race for
// the same runs: every run is granted exactly once.
func TestClaimRaceTwoStores(t *testing.T) {
	path := tempDB(t)
	setup := openT(t, path)
	exp, _ := setup.EnsureExperiment("e", "e.toml", "h")
	const nRuns = 40
	var ids []int64
	for i := 0; i < nRuns; i++ {
		id, _, err := setup.AddRun(exp, spec(fmt.Sprint("r", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	const nStores = 2
	// Both Stores claim run i at t0 + i*slot: a wall-clock barrier that puts
	// the two claims of each run at the same moment.
	granted := make([][]int64, nStores)
	var barrier sync.WaitGroup
	t0 := time.Now().Add(50 * time.Millisecond)
	errs := make(chan error, nStores*len(ids))
	for g := 0; g < nStores; g++ {
		s := openT(t, path)
		barrier.Add(1)
		go func() {
			defer barrier.Done()
			for i, id := range ids {
				time.Sleep(time.Until(t0.Add(time.Duration(i) * slot)))
				c, err := s.ClaimRun(id, fmt.Sprintf("host:%d", g), time.Hour, false)
				if err != nil {
					errs <- err
					continue
				}
				if c.Granted {
					granted[g] = append(granted[g], id)
				} else if c.Prev != StatusRunning || c.Owner == "" || c.Owner == fmt.Sprintf("host:%d", g) {
					errs <- fmt.Errorf("refused claim of run %d: %+v", id, c)
				}
			}
		}()
	}
	barrier.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[int64]int{}
	for _, g := range granted {
		for _, id := range g {
			seen[id]++
		}
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("run %d granted %d times", id, seen[id])
		}
	}
	t.Logf("store 0 got %d runs, store 1 got %d", len(granted[0]), len(granted[1]))
}

func TestHeartbeatAndFinish(t *testing.T) {
	path := tempDB(t)
	a := openT(t, path)
	b := openT(t, path)
	clk := &clock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	a.now, b.now = clk.now, clk.now
	exp, _ := a.EnsureExperiment("e", "e.toml", "h")
	id, _, _ := a.AddRun(exp, spec("r"))

	if err := a.Heartbeat(id, 1); err == nil {
		t.Fatal("heartbeat of a pending run accepted")
	}
	if c, _ := a.ClaimRun(id, "a:1", time.Minute, false); !c.Granted {
		t.Fatal("claim refused")
	}
	clk.add(30 * time.Second)
	if err := a.Heartbeat(id, 17); err != nil {
		t.Fatal(err)
	}
	r, _ := a.Run(id)
	if r.Step != 17 || !r.HeartbeatAt.Equal(clk.now()) {
		t.Fatalf("after heartbeat: step=%d hb=%v", r.Step, r.HeartbeatAt)
	}
	// The heartbeat kept it fresh: b cannot take it 59 s later...
	clk.add(59 * time.Second)
	if c, _ := b.ClaimRun(id, "b:2", time.Minute, false); c.Granted || c.Owner != "a:1" {
		t.Fatalf("fresh run taken: %+v", c)
	}
	// ...but can once a's heartbeat is a minute old, and a learns it lost it.
	clk.add(2 * time.Second)
	if c, _ := b.ClaimRun(id, "b:2", time.Minute, false); !c.Granted || !c.Resume {
		t.Fatalf("stale run not taken: %+v", c)
	}
	if err := a.Heartbeat(id, 18); !errors.Is(err, ErrClaimLost) {
		t.Fatalf("heartbeat after losing the claim: %v", err)
	}
	if err := a.FinishRun(id, StatusDone, "", "cpu", 1); !errors.Is(err, ErrClaimLost) {
		t.Fatalf("finish after losing the claim: %v", err)
	}
	if err := b.FinishRun(id, StatusRunning, "", "cpu", 1); err == nil {
		t.Fatal("FinishRun accepted a non-final status")
	}
	if err := b.Heartbeat(id, 100); err != nil {
		t.Fatal(err)
	}
	if err := b.FinishRun(id, StatusDiverged, "loss NaN at step 100", "cuda:0", 12.5); err != nil {
		t.Fatal(err)
	}
	r, _ = b.Run(id)
	if r.Status != StatusDiverged || r.Reason != "loss NaN at step 100" || r.Device != "cuda:0" ||
		r.Seconds != 12.5 || r.Step != 100 || r.FinishedAt.IsZero() || r.Owner != "b:2" || r.Attempts != 2 {
		t.Fatalf("finished run = %+v", r)
	}
	if err := b.Heartbeat(id, 101); err == nil {
		t.Error("heartbeat of a finished run accepted")
	}
	if err := a.FinishRun(999, StatusDone, "", "", 0); !errors.Is(err, ErrNoRun) {
		t.Errorf("finish of unknown run: %v", err)
	}
	// Timestamps are readable by SQLite's own date functions.
	var secs float64
	if err := a.db.QueryRow(`SELECT (julianday(finished_at) - julianday(started_at)) * 86400 FROM runs WHERE id = ?`, id).Scan(&secs); err != nil || secs < 90.9 || secs > 91.1 {
		t.Errorf("julianday span = %v, %v; want 91 s", secs, err)
	}
}

func TestProvenanceRoundTrip(t *testing.T) {
	s := openT(t, tempDB(t))
	exp, _ := s.EnsureExperiment("e", "e.toml", "h")
	id, _, _ := s.AddRun(exp, spec("r"))
	if _, err := s.Provenance(id); !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("missing provenance: %v", err)
	}
	p := Provenance{GitCommit: "abc123", GitDirty: true, GoVersion: "go1.26.8", GotchVersion: "v0.9.1",
		LibtorchVersion: "2.1.0", CUDAVersion: "12.1", BLAS: "openblas", Host: "node7", Threads: 2,
		Extra: map[string]string{"cpu": "Xeon"}}
	if err := s.PutProvenance(id, p); err != nil {
		t.Fatal(err)
	}
	got, err := s.Provenance(id)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", p) {
		t.Fatalf("got %+v\nwant %+v", got, p)
	}
	p.Host, p.GitDirty, p.Extra = "node8", false, nil
	if err := s.PutProvenance(id, p); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Provenance(id)
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", p) {
		t.Fatalf("after replace got %+v\nwant %+v", got, p)
	}
	if n := count(t, s, `SELECT COUNT(*) FROM provenance`); n != 1 {
		t.Errorf("%d provenance rows", n)
	}
	if err := s.PutProvenance(999, p); err == nil {
		t.Error("provenance for unknown run accepted")
	}
}
