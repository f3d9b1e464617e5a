package results

import (
	"database/sql"
	"fmt"
	"math"
	"sync"
	"time"
)

// Defaults for MetricWriter batching: a transaction per 512 rows or per
// second, whichever comes first. Writing costs about 4 µs a row on the
// 2-core dev machine (BenchmarkMetricWriterAddAndWrite), about 2 ms per full
// batch, done off the training goroutine.
const (
	DefaultFlushRows  = 512
	DefaultFlushEvery = time.Second
)

type metricRow struct {
	step        int
	split, name string
	value       float64
}

// MetricWriter batches metric rows of one run. Add only appends to memory; a
// background goroutine writes batches, each in one transaction, every
// DefaultFlushRows rows or DefaultFlushEvery, and Flush/Close write the rest.
// Rows that fail to write stay queued (in order) and are retried; the error
// is returned by Flush or Close (and visible early through Err). Writing the
// same (step, split, name) again replaces the earlier value.
type MetricWriter struct {
	s          *Store
	runID      int64
	flushRows  int
	flushEvery time.Duration

	mu     sync.Mutex
	buf    []metricRow
	err    error // last background flush error; cleared by a successful flush
	closed bool

	flushMu sync.Mutex // one flush at a time, so batches commit in Add order
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// NewMetricWriter starts a batched writer for runID. Close it before the
// Store.
func (s *Store) NewMetricWriter(runID int64) *MetricWriter {
	return s.newMetricWriter(runID, DefaultFlushRows, DefaultFlushEvery)
}

func (s *Store) newMetricWriter(runID int64, rows int, every time.Duration) *MetricWriter {
	w := &MetricWriter{
		s: s, runID: runID, flushRows: rows, flushEvery: every,
		buf:  make([]metricRow, 0, min(rows, 4096)),
		kick: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go w.loop()
	return w
}

// Add queues one value. It never touches the disk; NaN is stored as NULL.
// Add after Close panics: the value would be lost silently otherwise.
func (w *MetricWriter) Add(step int, split, name string, value float64) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		panic(fmt.Sprintf("results: metric writer for run %d: Add after Close", w.runID))
	}
	w.buf = append(w.buf, metricRow{step, split, name, value})
	full := len(w.buf) >= w.flushRows
	w.mu.Unlock()
	if full {
		select {
		case w.kick <- struct{}{}:
		default: // a flush is already requested
		}
	}
}

// Err reports the error of the last background flush, if it has not been
// followed by a successful one. It does not block on the disk.
func (w *MetricWriter) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *MetricWriter) loop() {
	defer close(w.done)
	t := time.NewTicker(w.flushEvery)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.kick:
		case <-t.C:
		}
		err := w.flush()
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
	}
}

// Flush writes every queued row now, in one transaction.
func (w *MetricWriter) Flush() error {
	err := w.flush()
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
	return err
}

// flush takes the queued rows and writes them; on failure they go back to
// the front of the queue so that newer values for the same key still win.
func (w *MetricWriter) flush() error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	rows := w.buf
	w.buf = make([]metricRow, 0, min(w.flushRows, 4096))
	w.mu.Unlock()
	if len(rows) == 0 {
		return nil
	}
	err := w.s.inTx(func(tx *sql.Tx) error {
		st, err := tx.Prepare(`INSERT INTO metrics(run_id, step, split, name, value) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT(run_id, split, name, step) DO UPDATE SET value = excluded.value`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, r := range rows {
			if _, err := st.Exec(w.runID, r.step, r.split, r.name, nullNaN(r.value)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		w.mu.Lock()
		w.buf = append(rows, w.buf...)
		w.mu.Unlock()
		return fmt.Errorf("results: write %d metrics of run %d: %w", len(rows), w.runID, err)
	}
	return nil
}

// Close stops the background writer and writes what is left. It is safe to
// call more than once; later calls return the result of a new Flush.
func (w *MetricWriter) Close() error {
	w.once.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		close(w.stop)
		<-w.done
	})
	return w.Flush()
}

// nullNaN maps NaN to NULL, which is what SQLite would store anyway; doing
// it here keeps the intent explicit. ±Inf are stored as is.
func nullNaN(v float64) any {
	if math.IsNaN(v) {
		return nil
	}
	return v
}

func nanNull(v sql.NullFloat64) float64 {
	if !v.Valid {
		return math.NaN()
	}
	return v.Float64
}

// Point is one step of a curve.
type Point struct {
	Step  int
	Value float64
}

// Curve returns the (split, name) curve of a run in step order.
func (s *Store) Curve(runID int64, split, name string) ([]Point, error) {
	return s.points(fmt.Sprintf("curve %s/%s of run %d", split, name, runID),
		`SELECT step, value FROM metrics WHERE run_id = ? AND split = ? AND name = ? ORDER BY step`, runID, split, name)
}

// RetriedCurve returns the (split, name) curve of an earlier attempt of a
// run (1 = the first), as a --retry claim archived it, in step order.
func (s *Store) RetriedCurve(runID int64, attempt int, split, name string) ([]Point, error) {
	return s.points(fmt.Sprintf("curve %s/%s of run %d, attempt %d", split, name, runID, attempt),
		`SELECT step, value FROM retried_metrics WHERE run_id = ? AND attempt = ? AND split = ? AND name = ? ORDER BY step`,
		runID, attempt, split, name)
}

// points reads (step, value) rows; what names them in errors.
func (s *Store) points(what, query string, args ...any) ([]Point, error) {
	rows, err := s.db.Query(query, args...)
	if err != nil {
		return nil, fmt.Errorf("results: %s: %w", what, err)
	}
	defer rows.Close()
	var out []Point
	for rows.Next() {
		var p Point
		var v sql.NullFloat64
		if err := rows.Scan(&p.Step, &v); err != nil {
			return nil, fmt.Errorf("results: %s: %w", what, err)
		}
		p.Value = nanNull(v)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("results: %s: %w", what, err)
	}
	return out, nil
}

// DeleteMetricsAfter drops the run's metric rows with step > step. Call it
// when resuming from a checkpoint at that step, before writing again, so the
// curve equals that of an uninterrupted run even if the steps logged after
// the checkpoint are not logged again identically.
func (s *Store) DeleteMetricsAfter(runID int64, step int) error {
	if _, err := s.db.Exec(`DELETE FROM metrics WHERE run_id = ? AND step > ?`, runID, step); err != nil {
		return fmt.Errorf("results: delete metrics of run %d after step %d: %w", runID, step, err)
	}
	return nil
}

// PutEvals writes final evaluations (mlm_acc, nsp_acc, sop_acc, mlm_loss, …)
// in one transaction; a name written again is replaced.
func (s *Store) PutEvals(runID int64, m map[string]float64) error {
	err := s.inTx(func(tx *sql.Tx) error {
		for k, v := range m {
			if _, err := tx.Exec(`INSERT INTO evals(run_id, name, value) VALUES (?, ?, ?)
				ON CONFLICT(run_id, name) DO UPDATE SET value = excluded.value`, runID, k, nullNaN(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("results: put evals of run %d: %w", runID, err)
	}
	return nil
}

// Evals returns the final evaluations of a run (empty map if none).
func (s *Store) Evals(runID int64) (map[string]float64, error) {
	rows, err := s.db.Query(`SELECT name, value FROM evals WHERE run_id = ?`, runID)
	if err != nil {
		return nil, fmt.Errorf("results: evals of run %d: %w", runID, err)
	}
	defer rows.Close()
	out := map[string]float64{}
	for rows.Next() {
		var k string
		var v sql.NullFloat64
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("results: evals of run %d: %w", runID, err)
		}
		out[k] = nanNull(v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("results: evals of run %d: %w", runID, err)
	}
	return out, nil
}

// Transition is one layer of the paper's layer-transition figure: the L2
// distance and the angle (degrees) between a layer's input and output
// embeddings, averaged over held-out tokens. Layer counts from 1.
type Transition struct {
	Layer     int
	L2        float64
	CosineDeg float64
}

// PutTransitions replaces the run's transitions with t, in one transaction.
func (s *Store) PutTransitions(runID int64, t []Transition) error {
	err := s.inTx(func(tx *sql.Tx) error {
		if _, err := tx.Exec(`DELETE FROM transitions WHERE run_id = ?`, runID); err != nil {
			return err
		}
		for _, x := range t {
			if _, err := tx.Exec(`INSERT INTO transitions(run_id, layer, l2, cosine_deg) VALUES (?, ?, ?, ?)`,
				runID, x.Layer, nullNaN(x.L2), nullNaN(x.CosineDeg)); err != nil {
				return fmt.Errorf("layer %d: %w", x.Layer, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("results: put transitions of run %d: %w", runID, err)
	}
	return nil
}

// Transitions returns the run's transitions by layer.
func (s *Store) Transitions(runID int64) ([]Transition, error) {
	rows, err := s.db.Query(`SELECT layer, l2, cosine_deg FROM transitions WHERE run_id = ? ORDER BY layer`, runID)
	if err != nil {
		return nil, fmt.Errorf("results: transitions of run %d: %w", runID, err)
	}
	defer rows.Close()
	var out []Transition
	for rows.Next() {
		var t Transition
		var l2, cd sql.NullFloat64
		if err := rows.Scan(&t.Layer, &l2, &cd); err != nil {
			return nil, fmt.Errorf("results: transitions of run %d: %w", runID, err)
		}
		t.L2, t.CosineDeg = nanNull(l2), nanNull(cd)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("results: transitions of run %d: %w", runID, err)
	}
	return out, nil
}
