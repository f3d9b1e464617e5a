package slurm

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/reproml/albert/experiments"
	"github.com/reproml/albert/results"
)

// PlanOptions configure NewSweep.
type PlanOptions struct {
	Root        string         // the Slurm folder; default DefaultRoot
	RunsDir     string         // checkpoints; default experiments.DefaultRunsDir
	Main        *results.Store // the main database, or nil when there is none yet
	Retry       bool           // also submit failed and diverged runs (from step 0)
	MaxRequeues int
	Device      string // "cpu" or "cuda"
	Now         time.Time
}

// Skip is a planned run not submitted, and why.
type Skip struct {
	Hash, Label, Why string
}

// NewSweep plans a submission of plans (already expanded, as `exp run`
// does): each config once (a config of several files is one task linked to
// each), skipping runs that are done in the main database or in their
// published snapshot, failed or diverged ones unless Retry, runs a live
// local `exp run` holds, and runs an earlier sweep's task still queues or
// runs. A preempted or interrupted run is submitted again and resumes from
// its checkpoint. The sweep's folder is <root>/<first experiment>-<time>.
// A fine-tuning run (experiments.Run.Finetune) is an error: see PlanFiles.
func NewSweep(ctx context.Context, plans []*experiments.Plan, o PlanOptions) (*Sweep, []Skip, error) {
	if o.Root == "" {
		o.Root = DefaultRoot
	}
	if o.RunsDir == "" {
		o.RunsDir = experiments.DefaultRunsDir
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if len(plans) == 0 {
		return nil, nil, errors.New("slurm: no experiment files")
	}
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return nil, nil, err
	}
	runsDir, err := filepath.Abs(o.RunsDir)
	if err != nil {
		return nil, nil, err
	}
	sw := &Sweep{Root: root, RunsDir: runsDir, Created: o.Now.UTC(), MaxRequeues: o.MaxRequeues, Device: o.Device, Retry: o.Retry}
	sw.Dir = filepath.Join(root, fmt.Sprintf("%s-%s", plans[0].Experiment, o.Now.Format("20060102-150405")))
	active, err := activeTasks(ctx, root)
	if err != nil {
		return nil, nil, err
	}
	at := map[string]int{}
	var skips []Skip
	for _, p := range plans {
		sw.Experiments = append(sw.Experiments, Experiment{Name: p.Experiment, File: p.File, ContentHash: p.ContentHash})
		ei := len(sw.Experiments) - 1
		for _, r := range p.Runs {
			if r.Finetune != nil {
				// Its task would need its pretraining run's checkpoint, and exp
				// merge does not fold fine-tuning rows: PlanFiles refuses these.
				return nil, nil, fmt.Errorf("slurm: %s: run %s is a fine-tuning run: %w", p.File, r.Label, ErrFinetuning)
			}
			if i, ok := at[r.Hash]; ok {
				sw.Runs[i].Experiments = append(sw.Runs[i].Experiments, ei)
				continue
			}
			if i := skipIndex(skips, r.Hash); i >= 0 {
				continue
			}
			if why := skipWhy(r.Hash, o, root, active); why != "" {
				skips = append(skips, Skip{Hash: r.Hash, Label: r.Label, Why: why})
				continue
			}
			at[r.Hash] = len(sw.Runs)
			sw.Runs = append(sw.Runs, Run{Task: len(sw.Runs), Hash: r.Hash, Label: r.Label, Profile: r.Profile,
				ScaleJSON: r.Scale.JSON(), ConfigJSON: r.ConfigJSON, TotalSteps: r.Train.Steps, Params: r.Params(),
				Experiments: []int{ei}})
		}
	}
	return sw, skips, nil
}

func skipIndex(skips []Skip, h string) int {
	for i, s := range skips {
		if s.Hash == h {
			return i
		}
	}
	return -1
}

// skipWhy says why run hash is not submitted, or "".
func skipWhy(hash string, o PlanOptions, root string, active map[string]string) string {
	if job, ok := active[hash]; ok {
		return "queued or running in job " + job
	}
	final := func(st results.Status, where string) string {
		switch st {
		case results.StatusDone:
			return "done" + where
		case results.StatusFailed, results.StatusDiverged:
			if !o.Retry {
				return string(st) + where + "; --retry to train it again"
			}
		}
		return ""
	}
	if o.Main != nil {
		rs, err := o.Main.Runs(results.RunFilter{ConfigHash: hash})
		if err == nil && len(rs) == 1 {
			r := rs[0]
			if why := final(r.Status, ""); why != "" {
				return why
			}
			if r.Status == results.StatusRunning && time.Since(r.HeartbeatAt) < experiments.DefaultStaleAfter {
				return "running under " + r.Owner
			}
		}
	}
	if st, ok := snapshotStatus(SnapshotDB(root, hash)); ok {
		if why := final(st, " on Slurm (not merged yet: exp merge)"); why != "" {
			return why
		}
	}
	return ""
}

// SnapRun is a run as its task's published snapshot has it.
type SnapRun struct {
	Status      results.Status
	Step, Total int
	Preemptions int
	Reason      string
	HeartbeatAt time.Time // zero if never
}

// ReadSnapshot reads the run of a published snapshot (opened read-only and
// immutable: no lock, no journal, nothing written).
func ReadSnapshot(path string) (SnapRun, bool) {
	var r SnapRun
	if _, err := os.Stat(path); err != nil {
		return r, false
	}
	db, err := sql.Open("sqlite3", "file:"+(&url.URL{Path: filepath.ToSlash(path)}).EscapedPath()+"?mode=ro&immutable=1")
	if err != nil {
		return r, false
	}
	defer db.Close()
	var hb sql.NullString
	if err := db.QueryRow(`SELECT status, step, total_steps, preemptions, reason, heartbeat_at FROM runs LIMIT 1`).
		Scan(&r.Status, &r.Step, &r.Total, &r.Preemptions, &r.Reason, &hb); err != nil {
		return r, false
	}
	if hb.Valid {
		r.HeartbeatAt, _ = time.Parse("2006-01-02T15:04:05.000Z", hb.String)
	}
	return r, true
}

func snapshotStatus(path string) (results.Status, bool) {
	r, ok := ReadSnapshot(path)
	return r.Status, ok
}

// activeTasks maps the hashes of earlier sweeps' runs whose task Slurm
// still queues or runs to that task's id. Sweeps whose job Slurm does not
// answer for are passed over.
func activeTasks(ctx context.Context, root string) (map[string]string, error) {
	sws, err := Sweeps(root)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, s := range sws {
		tasks, err := Query(ctx, s.JobID)
		if err != nil {
			continue
		}
		for _, r := range s.Runs {
			if t, ok := tasks[r.Task]; ok && t.Active() {
				if _, seen := out[r.Hash]; !seen {
					out[r.Hash] = t.JobID
				}
			}
		}
	}
	return out, nil
}
