package results

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Snapshot writes a consistent copy of the database to path (VACUUM INTO a
// temporary file, rollback-journal mode, synced, renamed over path), so
// another process — on another host, over a network filesystem — reads a
// complete, never-changing file: the old copy or the new one, never a file
// being written. The copy holds what was committed when it started.
func (s *Store) Snapshot(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("results: snapshot: %w", err)
	}
	tmp := filepath.Join(filepath.Dir(abs), ".snap-"+filepath.Base(abs)+fmt.Sprintf("-%d", os.Getpid()))
	os.Remove(tmp)
	defer os.Remove(tmp)
	if _, err := s.db.Exec(`VACUUM INTO ?`, tmp); err != nil {
		return fmt.Errorf("results: snapshot to %s: %w", path, err)
	}
	db, err := sql.Open("sqlite3", "file:"+(&url.URL{Path: filepath.ToSlash(tmp)}).EscapedPath())
	if err != nil {
		return fmt.Errorf("results: snapshot to %s: %w", path, err)
	}
	_, err = db.Exec(`PRAGMA journal_mode = DELETE`)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("results: snapshot to %s: %w", path, err)
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err == nil {
		err = os.Rename(tmp, abs)
	}
	if err != nil {
		return fmt.Errorf("results: snapshot to %s: %w", path, err)
	}
	return nil
}

// MergeStats says what Merge did with each run of the source.
type MergeStats struct {
	Added    int // runs new to this database
	Replaced int // runs whose source copy is as far or further: rows replaced by the source's
	Kept     int // runs this database has further along: left alone
	Metrics  int // metric rows now held for the added and replaced runs
}

func (m MergeStats) String() string {
	return fmt.Sprintf("%d added, %d updated, %d kept (further along here), %d metric rows", m.Added, m.Replaced, m.Kept, m.Metrics)
}

// Merge folds the database at src (a Snapshot: it is copied, upgraded to
// this schema and read, never written) into s, in one transaction: all of
// it or, on error, nothing. Runs are matched by config hash and experiments
// by (name, content hash). A run's rows always come from one copy: the
// source's replace this database's (metrics, evals, transitions,
// provenance, retried_metrics; keyed by (run, split, name, step) and so
// never duplicated) when the source's run is at least as far along — by
// status rank (pending < running, preempted < failed, diverged < done),
// then step, then heartbeat — otherwise this database's stay. Merging
// the same source twice leaves the same rows. The same hash with another
// config is an error.
func (s *Store) Merge(src string) (MergeStats, error) {
	var st MergeStats
	if _, err := os.Stat(src + "-wal"); err == nil {
		return st, fmt.Errorf("results: merge %s: it is a live database (it has a -wal file); merge its snapshot", src)
	}
	tmp, err := os.CreateTemp("", "merge-*.db")
	if err != nil {
		return st, fmt.Errorf("results: merge %s: %w", src, err)
	}
	tmp.Close()
	defer func() {
		for _, suf := range []string{"", "-wal", "-shm"} {
			os.Remove(tmp.Name() + suf)
		}
	}()
	if err := copyFile(src, tmp.Name()); err != nil {
		return st, fmt.Errorf("results: merge %s: %w", src, err)
	}
	up, err := Open(tmp.Name()) // brings an older snapshot to this schema
	if err != nil {
		return st, fmt.Errorf("results: merge %s: %w", src, err)
	}
	if err := up.Close(); err != nil {
		return st, fmt.Errorf("results: merge %s: %w", src, err)
	}
	ctx := context.Background()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return st, fmt.Errorf("results: merge %s: %w", src, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `ATTACH DATABASE ? AS src`, "file:"+(&url.URL{Path: filepath.ToSlash(tmp.Name())}).EscapedPath()+"?mode=ro"); err != nil {
		return st, fmt.Errorf("results: merge %s: attach: %w", src, err)
	}
	defer conn.ExecContext(ctx, `DETACH DATABASE src`)
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return st, fmt.Errorf("results: merge %s: %w", src, err)
	}
	defer tx.Rollback()
	if err := mergeTx(tx, &st); err != nil {
		return MergeStats{}, fmt.Errorf("results: merge %s: %w", src, err)
	}
	if err := tx.Commit(); err != nil {
		return MergeStats{}, fmt.Errorf("results: merge %s: commit: %w", src, err)
	}
	return st, nil
}

// runCopyCols are the runs columns a merge copies (all but id).
const runCopyCols = `config_hash, name, config_json, seed, profile, scale_json, status, reason, step, total_steps,
	attempts, owner, heartbeat_at, created_at, started_at, finished_at, device, params, seconds, retries, preemptions`

// childTables are the per-run tables a merge copies, with their columns
// after run_id.
var childTables = []struct{ name, cols string }{
	{"metrics", "step, split, name, value"},
	{"evals", "name, value"},
	{"transitions", "layer, l2, cosine_deg"},
	{"provenance", "git_commit, git_dirty, go_version, gotch_version, libtorch_version, cuda_version, blas, host, threads, extra_json, recorded_at"},
	{"retried_metrics", "attempt, step, split, name, value"},
}

// rankSQL orders statuses by how far a run got.
func rankSQL(col string) string {
	return `CASE ` + col + ` WHEN 'done' THEN 3 WHEN 'failed' THEN 2 WHEN 'diverged' THEN 2
		WHEN 'running' THEN 1 WHEN 'preempted' THEN 1 ELSE 0 END`
}

func mergeTx(tx *sql.Tx, st *MergeStats) error {
	// Experiments: (name, content hash) is the identity; src id → our id.
	expIDs := map[int64]int64{}
	rows, err := tx.Query(`SELECT id, name, file, content_hash, created_at FROM src.experiments`)
	if err != nil {
		return err
	}
	type exp struct {
		id                       int64
		name, file, hash, create string
	}
	var exps []exp
	for rows.Next() {
		var e exp
		if err := rows.Scan(&e.id, &e.name, &e.file, &e.hash, &e.create); err != nil {
			rows.Close()
			return err
		}
		exps = append(exps, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, e := range exps {
		var id int64
		if err := tx.QueryRow(`INSERT INTO main.experiments(name, file, content_hash, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT(name, content_hash) DO UPDATE SET file = main.experiments.file RETURNING id`,
			e.name, e.file, e.hash, e.create).Scan(&id); err != nil {
			return fmt.Errorf("experiment %s: %w", e.name, err)
		}
		expIDs[e.id] = id
	}

	type srcRun struct {
		id         int64
		hash, cfg  string
		rank, step int
		hb         sql.NullString
	}
	var runs []srcRun
	rows, err = tx.Query(`SELECT id, config_hash, config_json, ` + rankSQL("status") + `, step, heartbeat_at FROM src.runs ORDER BY id`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var r srcRun
		if err := rows.Scan(&r.id, &r.hash, &r.cfg, &r.rank, &r.step, &r.hb); err != nil {
			rows.Close()
			return err
		}
		runs = append(runs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range runs {
		var id int64
		var cfg string
		var rank, step int
		var hb sql.NullString
		err := tx.QueryRow(`SELECT id, config_json, `+rankSQL("status")+`, step, heartbeat_at FROM main.runs WHERE config_hash = ?`, r.hash).
			Scan(&id, &cfg, &rank, &step, &hb)
		switch {
		case err == sql.ErrNoRows:
			if err := tx.QueryRow(`INSERT INTO main.runs(`+runCopyCols+`) SELECT `+runCopyCols+` FROM src.runs WHERE id = ? RETURNING id`, r.id).Scan(&id); err != nil {
				return fmt.Errorf("run %s: %w", short(r.hash), err)
			}
			st.Added++
		case err != nil:
			return fmt.Errorf("run %s: %w", short(r.hash), err)
		case cfg != r.cfg:
			return fmt.Errorf("config hash %s names different configs here and in the source", r.hash)
		case r.rank < rank || (r.rank == rank && (r.step < step || (r.step == step && r.hb.String < hb.String))):
			st.Kept++
			if err := linkExperiments(tx, r.id, id, expIDs); err != nil {
				return err
			}
			continue
		default:
			sets := make([]string, 0, 21)
			for _, c := range strings.Split(runCopyCols, ",") {
				c = strings.TrimSpace(c)
				if c != "config_hash" && c != "created_at" {
					sets = append(sets, c+" = s."+c)
				}
			}
			if _, err := tx.Exec(`UPDATE main.runs SET `+strings.Join(sets, ", ")+`
				FROM (SELECT * FROM src.runs WHERE id = ?) AS s WHERE main.runs.id = ?`, r.id, id); err != nil {
				return fmt.Errorf("run %s: %w", short(r.hash), err)
			}
			for _, t := range childTables {
				if _, err := tx.Exec(`DELETE FROM main.`+t.name+` WHERE run_id = ?`, id); err != nil {
					return fmt.Errorf("run %s: %s: %w", short(r.hash), t.name, err)
				}
			}
			st.Replaced++
		}
		for _, t := range childTables {
			if _, err := tx.Exec(`INSERT INTO main.`+t.name+`(run_id, `+t.cols+`) SELECT ?, `+t.cols+` FROM src.`+t.name+` WHERE run_id = ?`, id, r.id); err != nil {
				return fmt.Errorf("run %s: %s: %w", short(r.hash), t.name, err)
			}
		}
		var n int
		if err := tx.QueryRow(`SELECT COUNT(*) FROM main.metrics WHERE run_id = ?`, id).Scan(&n); err != nil {
			return err
		}
		st.Metrics += n
		if err := linkExperiments(tx, r.id, id, expIDs); err != nil {
			return err
		}
	}
	return nil
}

// linkExperiments links our run id to the experiments the source links its
// run srcID to.
func linkExperiments(tx *sql.Tx, srcID, id int64, expIDs map[int64]int64) error {
	rows, err := tx.Query(`SELECT experiment_id FROM src.experiment_runs WHERE run_id = ?`, srcID)
	if err != nil {
		return err
	}
	var exps []int64
	for rows.Next() {
		var e int64
		if err := rows.Scan(&e); err != nil {
			rows.Close()
			return err
		}
		exps = append(exps, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, e := range exps {
		if _, err := tx.Exec(`INSERT OR IGNORE INTO main.experiment_runs(experiment_id, run_id) VALUES (?, ?)`, expIDs[e], id); err != nil {
			return err
		}
	}
	return nil
}

func short(h string) string { return h[:min(12, len(h))] }

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
