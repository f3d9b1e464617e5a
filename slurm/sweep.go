// Package slurm hands a sweep to a Slurm cluster the way submitit does: one
// job array per submission, one task per run (addressed by config hash), a
// warning signal before a preemption or the time limit on which the task
// checkpoints, records its run as preempted and requeues itself, and one
// SQLite database per run that only its task writes, published as an
// immutable snapshot that `exp merge` folds into the main database
// (docs/SLURM.md).
package slurm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"
)

// Layout of the Slurm folder (default out/slurm):
//
//	db/<hash>.db       the run's live database, written only by its task
//	db/<hash>.snap.db  its published snapshot: the only file other processes read
//	<sweep>/sweep.json what one submission planned (Sweep), its job id
//	<sweep>/job.sbatch the script submitted
//	<sweep>/logs/      %A_%a.out, one per array task (appended across requeues)
const (
	DefaultRoot = "out/slurm"
	dbDir       = "db"
	sweepFile   = "sweep.json"
	scriptFile  = "job.sbatch"
	logDir      = "logs"
)

// LiveDB is the path of the run's own database, which only its task writes.
func LiveDB(root, hash string) string { return filepath.Join(root, dbDir, hash+".db") }

// SnapshotDB is the path of the run's published snapshot (see Publish).
func SnapshotDB(root, hash string) string { return filepath.Join(root, dbDir, hash+".snap.db") }

// Snapshots lists the published snapshots under root, sorted.
func Snapshots(root string) ([]string, error) {
	ms, err := filepath.Glob(filepath.Join(root, dbDir, "*.snap.db"))
	if err != nil {
		return nil, fmt.Errorf("slurm: list snapshots: %w", err)
	}
	sort.Strings(ms)
	return ms, nil
}

// Experiment is one experiment file version a sweep planned.
type Experiment struct {
	Name        string `json:"name"`
	File        string `json:"file"`
	ContentHash string `json:"content_hash"`
}

// Run is one run of a sweep: everything its task needs to train it, so a
// task never re-plans a file that may have changed since submission.
type Run struct {
	Task        int    `json:"task"` // array task index
	Hash        string `json:"hash"`
	Label       string `json:"label"`
	Profile     string `json:"profile"`
	ScaleJSON   string `json:"scale_json"`
	ConfigJSON  string `json:"config_json"`
	TotalSteps  int    `json:"total_steps"`
	Params      int64  `json:"params"`
	Experiments []int  `json:"experiments"` // indexes into Sweep.Experiments
}

// Sweep is what one `exp slurm` submission planned.
type Sweep struct {
	Dir         string       `json:"-"`
	Root        string       `json:"root"` // the Slurm folder (databases)
	RunsDir     string       `json:"runs_dir"`
	Created     time.Time    `json:"created"`
	JobID       string       `json:"job_id"` // empty until submitted
	MaxRequeues int          `json:"max_requeues"`
	Retry       bool         `json:"retry"` // tasks also claim failed and diverged runs, from step 0
	Device      string       `json:"device"`
	Experiments []Experiment `json:"experiments"`
	Runs        []Run        `json:"runs"`
}

var hashRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// check verifies that every run's hash is the sha256 of its config and that
// task indexes are 0..n-1.
func (s *Sweep) check() error {
	if len(s.Runs) == 0 {
		return errors.New("no runs")
	}
	for i, r := range s.Runs {
		if !hashRE.MatchString(r.Hash) {
			return fmt.Errorf("run %d: hash %q is not a config hash", i, r.Hash)
		}
		sum := sha256.Sum256([]byte(r.ConfigJSON))
		if hex.EncodeToString(sum[:]) != r.Hash {
			return fmt.Errorf("run %s: its config does not hash to it", r.Hash[:12])
		}
		if r.Task != i {
			return fmt.Errorf("run %s: task %d at position %d", r.Hash[:12], r.Task, i)
		}
		for _, e := range r.Experiments {
			if e < 0 || e >= len(s.Experiments) {
				return fmt.Errorf("run %s: experiment %d of %d", r.Hash[:12], e, len(s.Experiments))
			}
		}
	}
	return nil
}

// Run returns the run with config hash h.
func (s *Sweep) Run(h string) (Run, bool) {
	for _, r := range s.Runs {
		if r.Hash == h {
			return r, true
		}
	}
	return Run{}, false
}

// Save writes sweep.json into s.Dir atomically.
func (s *Sweep) Save() error {
	if err := s.check(); err != nil {
		return fmt.Errorf("slurm: sweep %s: %w", s.Dir, err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("slurm: sweep %s: %w", s.Dir, err)
	}
	return writeAtomic(filepath.Join(s.Dir, sweepFile), append(b, '\n'))
}

// LoadSweep reads dir/sweep.json.
func LoadSweep(dir string) (*Sweep, error) {
	b, err := os.ReadFile(filepath.Join(dir, sweepFile))
	if err != nil {
		return nil, fmt.Errorf("slurm: sweep: %w", err)
	}
	var s Sweep
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("slurm: sweep %s: %w", dir, err)
	}
	s.Dir = dir
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("slurm: sweep %s: %w", dir, err)
	}
	return &s, nil
}

// Sweeps loads every submitted sweep under root, newest first. Folders
// without a readable sweep.json are skipped.
func Sweeps(root string) ([]*Sweep, error) {
	ms, err := filepath.Glob(filepath.Join(root, "*", sweepFile))
	if err != nil {
		return nil, fmt.Errorf("slurm: sweeps: %w", err)
	}
	var out []*Sweep
	for _, m := range ms {
		s, err := LoadSweep(filepath.Dir(m))
		if err != nil || s.JobID == "" {
			continue
		}
		out = append(out, s)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// LogPath is where array task i of the submitted sweep logs.
func (s *Sweep) LogPath(task int) string {
	return filepath.Join(s.Dir, logDir, fmt.Sprintf("%s_%d.out", s.JobID, task))
}

// writeAtomic writes b to a temporary file beside path, syncs it and
// renames it over path: a reader sees the old file or the new one.
func writeAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
