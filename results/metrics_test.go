package results

import (
	"math"
	"strings"
	"testing"
	"time"
)

func newRun(t testing.TB, s *Store, hash string) int64 {
	t.Helper()
	exp, err := s.EnsureExperiment("e", "e.toml", "h")
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := s.AddRun(exp, spec(hash))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// A run logs steps 0..100, is killed after its checkpoint at step 50 (its
// last logged rows for 51..100 are in the DB), resumes, and logs 51..100
// again with other values: one row per step, the resumed values win.
func TestMetricsResumeDoesNotDuplicate(t *testing.T) {
	s := openT(t, tempDB(t))
	id := newRun(t, s, "r")
	w := s.NewMetricWriter(id)
	for step := 0; step <= 100; step++ {
		w.Add(step, "train", "loss", float64(step))
		if step%10 == 0 {
			w.Add(step, "heldout", "mlm_acc", 0.01*float64(step))
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMetricsAfter(id, 50); err != nil {
		t.Fatal(err)
	}
	c, _ := s.Curve(id, "train", "loss")
	if len(c) != 51 || c[len(c)-1].Step != 50 {
		t.Fatalf("after DeleteMetricsAfter(50): %d points, last %+v", len(c), c[len(c)-1])
	}
	if h, _ := s.Curve(id, "heldout", "mlm_acc"); len(h) != 6 {
		t.Fatalf("heldout curve after delete: %d points, want 6", len(h))
	}
	w = s.NewMetricWriter(id)
	for step := 50; step <= 100; step++ { // step 50 re-logged as well
		w.Add(step, "train", "loss", -float64(step))
	}
	w.Add(100, "train", "loss", -1000) // the same key twice in one batch: last wins
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := s.Curve(id, "train", "loss")
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != 101 {
		t.Fatalf("%d points, want 101", len(c))
	}
	for i, p := range c {
		want := float64(i)
		switch {
		case i == 100:
			want = -1000
		case i >= 50:
			want = -float64(i)
		}
		if p.Step != i || p.Value != want {
			t.Fatalf("point %d = %+v, want value %v", i, p, want)
		}
	}
	if n := count(t, s, `SELECT COUNT(*) FROM metrics WHERE run_id = ?`, id); n != 101+6 {
		t.Fatalf("%d metric rows, want 107", n)
	}
	// Writing without a delete replaces too (no unique-key error, no duplicate).
	w = s.NewMetricWriter(id)
	w.Add(3, "train", "loss", 33)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Curve(id, "train", "loss"); len(c) != 101 || c[3].Value != 33 {
		t.Fatalf("rewrite: %d points, c[3]=%+v", len(c), c[3])
	}
}

func TestMetricWriterFlushesEverythingOnClose(t *testing.T) {
	s := openT(t, tempDB(t))
	id := newRun(t, s, "r")
	w := s.newMetricWriter(id, 1<<30, time.Hour) // no background flush
	const n = 20000
	for i := 0; i < n; i++ {
		w.Add(i, "train", "loss", float64(i))
	}
	if got := count(t, s, `SELECT COUNT(*) FROM metrics`); got != 0 {
		t.Fatalf("Add wrote %d rows to disk before any flush", got)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := count(t, s, `SELECT COUNT(*) FROM metrics WHERE run_id = ?`, id); got != n {
		t.Fatalf("%d rows after Close, want %d", got, n)
	}
	if err := w.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Add after Close did not panic")
		}
	}()
	w.Add(0, "train", "loss", 0)
}

func waitRows(t *testing.T, s *Store, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := count(t, s, `SELECT COUNT(*) FROM metrics`)
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("background flush: %d rows after 5 s, want %d", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMetricWriterBackgroundFlush(t *testing.T) {
	s := openT(t, tempDB(t))
	id := newRun(t, s, "r")
	// By row count.
	w := s.newMetricWriter(id, 10, time.Hour)
	for i := 0; i < 25; i++ {
		w.Add(i, "train", "loss", 1)
	}
	waitRows(t, s, 20)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// By time.
	w = s.newMetricWriter(id, 1<<30, 20*time.Millisecond)
	defer w.Close()
	for i := 100; i < 103; i++ {
		w.Add(i, "train", "loss", 1)
	}
	waitRows(t, s, 28)
}

// Add must not wait for the disk: with another connection holding the write
// lock, a full batch is queued and Add still returns at once.
func TestMetricWriterAddDoesNotBlockOnLockedDB(t *testing.T) {
	path := tempDB(t)
	s := openT(t, path)
	id := newRun(t, s, "r")
	other := openT(t, path)
	tx, err := other.db.Begin() // BEGIN IMMEDIATE: holds the write lock
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`UPDATE runs SET reason = 'locked'`); err != nil {
		t.Fatal(err)
	}
	w := s.newMetricWriter(id, 16, 10*time.Millisecond)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 1000; i++ {
			w.Add(i, "train", "loss", float64(i))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Add blocked while the database was locked")
	}
	if got := count(t, s, `SELECT COUNT(*) FROM metrics`); got != 0 {
		t.Fatalf("%d rows visible while locked", got)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := count(t, s, `SELECT COUNT(*) FROM metrics`); got != 1000 {
		t.Fatalf("%d rows, want 1000", got)
	}
}

// A failing write keeps its rows and surfaces the error from Flush/Close.
func TestMetricWriterErrorSurfaces(t *testing.T) {
	s := openT(t, tempDB(t))
	w := s.NewMetricWriter(4242) // no such run: the foreign key refuses the rows
	w.Add(1, "train", "loss", 1)
	w.Add(2, "train", "loss", 2)
	err := w.Flush()
	if err == nil || !strings.Contains(err.Error(), "run 4242") || !strings.Contains(err.Error(), "2 metrics") {
		t.Fatalf("Flush = %v", err)
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close lost the error")
	}
	if w.Err() == nil {
		t.Error("Err() is nil after a failed flush")
	}
	w.mu.Lock()
	kept := len(w.buf)
	w.mu.Unlock()
	if kept != 2 {
		t.Fatalf("%d rows kept after a failed flush, want 2", kept)
	}
}

func TestNaNRoundTrip(t *testing.T) {
	s := openT(t, tempDB(t))
	id := newRun(t, s, "r")
	w := s.NewMetricWriter(id)
	w.Add(1, "train", "loss", 2.5)
	w.Add(2, "train", "loss", math.NaN())
	w.Add(3, "train", "loss", math.Inf(1))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c, _ := s.Curve(id, "train", "loss")
	if len(c) != 3 || c[0].Value != 2.5 || !math.IsNaN(c[1].Value) || !math.IsInf(c[2].Value, 1) {
		t.Fatalf("curve = %+v", c)
	}
	if err := s.PutEvals(id, map[string]float64{"mlm_acc": 0.25, "mlm_loss": math.NaN()}); err != nil {
		t.Fatal(err)
	}
	e, _ := s.Evals(id)
	if len(e) != 2 || e["mlm_acc"] != 0.25 || !math.IsNaN(e["mlm_loss"]) {
		t.Fatalf("evals = %v", e)
	}
}

func TestEvalsAndTransitions(t *testing.T) {
	s := openT(t, tempDB(t))
	id := newRun(t, s, "r")
	other := newRun(t, s, "o")
	if err := s.PutEvals(id, map[string]float64{"mlm_acc": 0.3, "sop_acc": 0.8}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutEvals(id, map[string]float64{"mlm_acc": 0.4, "nsp_acc": 0.6}); err != nil {
		t.Fatal(err)
	}
	e, err := s.Evals(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(e) != 3 || e["mlm_acc"] != 0.4 || e["sop_acc"] != 0.8 || e["nsp_acc"] != 0.6 {
		t.Fatalf("evals = %v", e)
	}
	if e, _ := s.Evals(other); len(e) != 0 {
		t.Fatalf("other run's evals = %v", e)
	}
	tr := []Transition{{3, 1.5, 20}, {1, 3.5, 40}, {2, 2.5, 30}}
	if err := s.PutTransitions(id, tr); err != nil {
		t.Fatal(err)
	}
	if err := s.PutTransitions(id, tr[:2]); err != nil { // replaces
		t.Fatal(err)
	}
	got, err := s.Transitions(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != (Transition{1, 3.5, 40}) || got[1] != (Transition{3, 1.5, 20}) {
		t.Fatalf("transitions = %+v", got)
	}
	if err := s.PutTransitions(id, []Transition{{1, 0, 0}, {1, 0, 0}}); err == nil {
		t.Fatal("duplicate layer accepted")
	}
	if got, _ := s.Transitions(id); len(got) != 2 {
		t.Fatalf("failed PutTransitions was not rolled back: %+v", got)
	}
}

// BenchmarkMetricWriterAdd is Add with the real background flushes running
// concurrently. Adding as fast as possible outpaces the disk, so this is a
// worst case: the queue grows and the flusher competes for the lock and CPU.
func BenchmarkMetricWriterAdd(b *testing.B) {
	s := openT(b, tempDB(b))
	id := newRun(b, s, "r")
	w := s.NewMetricWriter(id)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.Add(i, "train", "loss", float64(i))
	}
	b.StopTimer()
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkMetricWriterAddSteadyState is Add as a training loop sees it:
// the queue is emptied every DefaultFlushRows rows (untimed, standing in for
// a background flush that keeps up), so there is no lock contention and no
// growth of a huge queue, as in the benchmark above where Add outpaces the
// disk on purpose.
func BenchmarkMetricWriterAddSteadyState(b *testing.B) {
	s := openT(b, tempDB(b))
	id := newRun(b, s, "r")
	w := s.newMetricWriter(id, 1<<30, time.Hour)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.Add(i, "train", "loss", float64(i))
		if i%DefaultFlushRows == DefaultFlushRows-1 {
			b.StopTimer()
			w.mu.Lock()
			w.buf = w.buf[:0]
			w.mu.Unlock()
			b.StartTimer()
		}
	}
	b.StopTimer()
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkMetricWriterAddAndWrite includes writing every row to disk
// (Close at the end): the amortized full cost of one logged value.
func BenchmarkMetricWriterAddAndWrite(b *testing.B) {
	s := openT(b, tempDB(b))
	id := newRun(b, s, "r")
	w := s.NewMetricWriter(id)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.Add(i, "train", "loss", float64(i))
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkHeartbeat is one heartbeat (one autocommit UPDATE).
func BenchmarkHeartbeat(b *testing.B) {
	s := openT(b, tempDB(b))
	id := newRun(b, s, "r")
	if _, err := s.ClaimRun(id, "bench:1", time.Hour, false); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Heartbeat(id, i); err != nil {
			b.Fatal(err)
		}
	}
}
