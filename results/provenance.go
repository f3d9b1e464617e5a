package results

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// Provenance records what produced a run's numbers, so a table can say which
// code and which native stack it came from.
type Provenance struct {
	GitCommit       string
	GitDirty        bool
	GoVersion       string
	GotchVersion    string
	LibtorchVersion string
	CUDAVersion     string // empty on CPU-only builds
	BLAS            string
	Host            string
	Threads         int
	Extra           map[string]string // anything else worth keeping (stored as extra_json)
}

// PutProvenance writes the run's provenance, replacing an earlier record
// (a run resumed on another host keeps the latest one).
func (s *Store) PutProvenance(runID int64, p Provenance) error {
	extra := []byte("{}")
	if len(p.Extra) > 0 {
		var err error
		if extra, err = json.Marshal(p.Extra); err != nil {
			return fmt.Errorf("results: put provenance of run %d: %w", runID, err)
		}
	}
	dirty := 0
	if p.GitDirty {
		dirty = 1
	}
	_, err := s.db.Exec(`INSERT INTO provenance(run_id, git_commit, git_dirty, go_version, gotch_version,
		libtorch_version, cuda_version, blas, host, threads, extra_json, recorded_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(run_id) DO UPDATE SET git_commit = excluded.git_commit, git_dirty = excluded.git_dirty,
		go_version = excluded.go_version, gotch_version = excluded.gotch_version,
		libtorch_version = excluded.libtorch_version, cuda_version = excluded.cuda_version,
		blas = excluded.blas, host = excluded.host, threads = excluded.threads,
		extra_json = excluded.extra_json, recorded_at = excluded.recorded_at`,
		runID, p.GitCommit, dirty, p.GoVersion, p.GotchVersion, p.LibtorchVersion, p.CUDAVersion,
		p.BLAS, p.Host, p.Threads, string(extra), s.stamp())
	if err != nil {
		return fmt.Errorf("results: put provenance of run %d: %w", runID, err)
	}
	return nil
}

// Provenance returns the run's provenance; a run without one wraps
// sql.ErrNoRows.
func (s *Store) Provenance(runID int64) (Provenance, error) {
	var p Provenance
	var dirty int
	var extra string
	err := s.db.QueryRow(`SELECT git_commit, git_dirty, go_version, gotch_version, libtorch_version,
		cuda_version, blas, host, threads, extra_json FROM provenance WHERE run_id = ?`, runID).Scan(
		&p.GitCommit, &dirty, &p.GoVersion, &p.GotchVersion, &p.LibtorchVersion, &p.CUDAVersion,
		&p.BLAS, &p.Host, &p.Threads, &extra)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return p, fmt.Errorf("results: provenance of run %d: none recorded: %w", runID, err)
		}
		return p, fmt.Errorf("results: provenance of run %d: %w", runID, err)
	}
	p.GitDirty = dirty == 1
	if extra != "" && extra != "{}" {
		if err := json.Unmarshal([]byte(extra), &p.Extra); err != nil {
			return p, fmt.Errorf("results: provenance of run %d: extra_json: %w", runID, err)
		}
	}
	return p, nil
}
