package results

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// dump is every row of the tables a merge writes, run ids replaced by config
// hashes, sorted: two databases with equal dumps hold the same results.
func dump(t *testing.T, s *Store) string {
	t.Helper()
	var lines []string
	q := func(query string) {
		rows, err := s.db.Query(query)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, fmt.Sprint(vals...))
		}
	}
	q(`SELECT 'run', ` + runCopyCols + ` FROM runs ORDER BY config_hash`)
	q(`SELECT 'exp', name, content_hash FROM experiments ORDER BY name, content_hash`)
	q(`SELECT 'link', e.name, r.config_hash FROM experiment_runs er JOIN experiments e ON e.id = er.experiment_id JOIN runs r ON r.id = er.run_id ORDER BY 2, 3`)
	for _, c := range childTables {
		cols := "x." + strings.ReplaceAll(c.cols, ", ", ", x.")
		q(`SELECT '` + c.name + `', r.config_hash, ` + cols + ` FROM ` + c.name + ` x JOIN runs r ON r.id = x.run_id`)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// taskDB is a task's database: one run of experiment e trained to step.
func taskDB(t *testing.T, hash string, step int, done bool) string {
	t.Helper()
	dir := t.TempDir()
	s := openT(t, filepath.Join(dir, "live.db"))
	e, _ := s.EnsureExperiment("e", "e.toml", "h1")
	id, _, _ := s.AddRun(e, spec(hash))
	if c, err := s.ClaimRun(id, "slurm 1_0", time.Minute, false); err != nil || !c.Granted {
		t.Fatal(c, err)
	}
	w := s.NewMetricWriter(id)
	for k := 0; k <= step; k += 5 {
		w.Add(k, "train", "loss", 10-float64(k)/10)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Heartbeat(id, step); err != nil {
		t.Fatal(err)
	}
	if done {
		if err := s.PutEvals(id, map[string]float64{"mlm_acc": 0.3}); err != nil {
			t.Fatal(err)
		}
		if err := s.FinishRun(id, StatusDone, "", "cpu", 9); err != nil {
			t.Fatal(err)
		}
	}
	snap := filepath.Join(dir, "snap.db")
	if err := s.Snapshot(snap); err != nil {
		t.Fatal(err)
	}
	return snap
}

func TestMergeIsIdempotentAndKeepsTheFurthestCopy(t *testing.T) {
	dst := openT(t, tempDB(t))
	// exp slurm recorded the plan: both runs pending, one more run of its own.
	e, _ := dst.EnsureExperiment("e", "e.toml", "h1")
	for _, h := range []string{"a", "b", "z"} {
		if _, _, err := dst.AddRun(e, spec(h)); err != nil {
			t.Fatal(err)
		}
	}
	doneA := taskDB(t, "a", 100, true)
	halfA := taskDB(t, "a", 40, false)
	doneB := taskDB(t, "b", 100, true)
	newC := taskDB(t, "c", 20, false)

	for _, src := range []string{halfA, doneB, newC} {
		if _, err := dst.Merge(src); err != nil {
			t.Fatal(err)
		}
	}
	st, err := dst.Merge(doneA) // done replaces the half-trained copy
	if err != nil || st.Replaced != 1 || st.Metrics != 21 {
		t.Fatalf("merge of the done copy: %+v %v", st, err)
	}
	once := dump(t, dst)
	for _, src := range []string{doneA, doneB, newC} { // the same sources again
		if _, err := dst.Merge(src); err != nil {
			t.Fatal(err)
		}
	}
	st, err = dst.Merge(halfA) // an older copy never replaces a further one
	if err != nil || st.Kept != 1 {
		t.Fatalf("merge of the older copy: %+v %v", st, err)
	}
	if twice := dump(t, dst); twice != once {
		t.Fatalf("merging again changed the database:\n--- once\n%s\n--- again\n%s", once, twice)
	}
	for q, want := range map[string]int{
		`SELECT COUNT(*) FROM runs`:                                                                                    4,
		`SELECT COUNT(*) FROM runs WHERE status = 'done'`:                                                              2,
		`SELECT COUNT(*) FROM metrics m JOIN runs r ON r.id = m.run_id WHERE r.config_hash = 'a'`:                      21,
		`SELECT COUNT(*) FROM (SELECT run_id, step, split, name FROM metrics GROUP BY 1, 2, 3, 4 HAVING COUNT(*) > 1)`: 0,
		`SELECT COUNT(*) FROM experiments`:                                                                             1,
		`SELECT COUNT(*) FROM evals e JOIN runs r ON r.id = e.run_id WHERE r.config_hash = 'b'`:                        1,
	} {
		if n := count(t, dst, q); n != want {
			t.Errorf("%s = %d, want %d", q, n, want)
		}
	}
}

func TestMergeRefusesAConflictAndWritesNothing(t *testing.T) {
	dst := openT(t, tempDB(t))
	e, _ := dst.EnsureExperiment("e", "e.toml", "h1")
	r := spec("a")
	r.ConfigJSON = `{"other":1}`
	if _, _, err := dst.AddRun(e, r); err != nil {
		t.Fatal(err)
	}
	before := dump(t, dst)
	two := t.TempDir() + "/two.db"
	{ // a source with a good new run and the conflicting one
		s := openT(t, two)
		e2, _ := s.EnsureExperiment("e2", "e2.toml", "h2")
		s.AddRun(e2, spec("new"))
		s.AddRun(e2, spec("a"))
		s.Close()
	}
	if _, err := dst.Merge(two); err == nil || !strings.Contains(err.Error(), "different configs") {
		t.Fatalf("merge of a conflicting config: %v", err)
	}
	if after := dump(t, dst); after != before {
		t.Fatal("a failed merge changed the database")
	}
	live := taskDB(t, "x", 5, false)
	s := openT(t, strings.TrimSuffix(live, "snap.db")+"live.db")
	defer s.Close()
	if _, err := dst.Merge(s.Path()); err == nil || !strings.Contains(err.Error(), "live database") {
		t.Fatalf("merge of a live database: %v", err)
	}
}
