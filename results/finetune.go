package results

import (
	"database/sql"
	"fmt"
	"strings"
)

// Fine-tuning inits.
const (
	InitPretrained = "pretrained" // the encoder of a pretraining run's checkpoint
	InitRandom     = "random"     // a randomly initialised encoder of the same architecture
)

// FinetuneSpec is what the planner knows about a fine-tuning run beyond its
// RunSpec: which pretrained model, task and init it is (table finetunes).
type FinetuneSpec struct {
	PretrainRunID int64  // the pretraining run whose checkpoint it starts from; 0 for random init
	PretrainHash  string // that run's config hash ("" for random init)
	ModelHash     string // hash of the pretrained model's architecture and data config, seed excluded: pairs pretrained with random-init runs
	Init          string // InitPretrained or InitRandom
	Task          string // task name (package finetune/tasks)
	StandIn       bool   // a stand-in task: never in a paper column
	Metric        string // the primary metric the best checkpoint is chosen by
	EvalSplit     string // the split that metric is read on (dev, dev_matched, …)
}

// AddFinetuneRun records a planned fine-tuning run: its runs row (as AddRun,
// idempotent on the config hash) and its finetunes row, in one transaction,
// so no reader sees a fine-tuning run without its kind.
func (s *Store) AddFinetuneRun(expID int64, r RunSpec, f FinetuneSpec) (runID int64, created bool, err error) {
	if f.Init != InitPretrained && f.Init != InitRandom {
		return 0, false, fmt.Errorf("results: add fine-tuning run %q: init %q", r.Name, f.Init)
	}
	if (f.Init == InitPretrained) != (f.PretrainRunID != 0) {
		return 0, false, fmt.Errorf("results: add fine-tuning run %q: init %s with pretraining run %d", r.Name, f.Init, f.PretrainRunID)
	}
	if r.ScaleJSON == "" {
		r.ScaleJSON = "{}"
	}
	err = s.inTx(func(tx *sql.Tx) error {
		runID, created, err = addRun(tx, expID, r, s.stamp())
		if err != nil {
			return err
		}
		var pre any
		if f.PretrainRunID != 0 {
			pre = f.PretrainRunID
		}
		_, err = tx.Exec(`INSERT INTO finetunes(run_id, pretrain_run_id, pretrain_hash, model_hash, init, task, stand_in, metric, eval_split)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(run_id) DO NOTHING`,
			runID, pre, f.PretrainHash, f.ModelHash, f.Init, f.Task, f.StandIn, f.Metric, f.EvalSplit)
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("results: add fine-tuning run %q: %w", r.Name, err)
	}
	return runID, created, nil
}

// Score is one metric of a fine-tuning run on one evaluation split.
type Score struct {
	Split string
	Name  string
	Value float64 // NaN is stored as NULL
}

// PutBest replaces the run's best scores: those of its best dev evaluation,
// at step.
func (s *Store) PutBest(runID int64, step int, scores []Score) error {
	err := s.inTx(func(tx *sql.Tx) error {
		if _, err := tx.Exec(`DELETE FROM finetune_best WHERE run_id = ?`, runID); err != nil {
			return err
		}
		for _, sc := range scores {
			if _, err := tx.Exec(`INSERT INTO finetune_best(run_id, split, name, value, step) VALUES (?, ?, ?, ?, ?)`,
				runID, sc.Split, sc.Name, nullNaN(sc.Value), step); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("results: best scores of run %d: %w", runID, err)
	}
	return nil
}

// DeleteBest drops the run's best scores (a fine-tuning run starting or
// resuming writes them again when it ends).
func (s *Store) DeleteBest(runID int64) error {
	if _, err := s.db.Exec(`DELETE FROM finetune_best WHERE run_id = ?`, runID); err != nil {
		return fmt.Errorf("results: best scores of run %d: %w", runID, err)
	}
	return nil
}

// Finetune is one fine-tuning run with its spec and best scores.
type Finetune struct {
	Run
	FinetuneSpec
	BestStep int                // the step of the best dev evaluation (0: none stored)
	Best     map[string]float64 // best scores by "split/name", e.g. "dev/accuracy"
}

// BestKey is the key of a best score in Finetune.Best.
func BestKey(split, name string) string { return split + "/" + name }

// FinetuneFilter selects fine-tuning runs; zero fields match everything.
type FinetuneFilter struct {
	Experiment string // linked to the latest version of this experiment
	Task       string
}

// Finetunes lists the fine-tuning runs matching f, by run id, with their
// best scores.
func (s *Store) Finetunes(f FinetuneFilter) ([]Finetune, error) {
	q := `SELECT ` + runCols + `, f.pretrain_run_id, f.pretrain_hash, f.model_hash, f.init, f.task, f.stand_in, f.metric, f.eval_split
		FROM runs r JOIN finetunes f ON f.run_id = r.id`
	var where []string
	var args []any
	if f.Experiment != "" {
		where = append(where, `r.id IN (SELECT er.run_id FROM experiment_runs er WHERE er.experiment_id =
			(SELECT MAX(id) FROM experiments WHERE name = ?))`)
		args = append(args, f.Experiment)
	}
	if f.Task != "" {
		where = append(where, `f.task = ?`)
		args = append(args, f.Task)
	}
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY r.id`
	rows, err := s.db.Query(q, args...)
	if err != nil {
		return nil, fmt.Errorf("results: list fine-tuning runs: %w", err)
	}
	var out []Finetune
	for rows.Next() {
		var ft Finetune
		var pre sql.NullInt64
		dst := []any{&pre, &ft.PretrainHash, &ft.ModelHash, &ft.Init, &ft.Task, &ft.StandIn, &ft.Metric, &ft.EvalSplit}
		r, err := scanRun(scanExtra{rows, dst})
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("results: list fine-tuning runs: %w", err)
		}
		ft.Run, ft.PretrainRunID = r, pre.Int64
		out = append(out, ft)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, fmt.Errorf("results: list fine-tuning runs: %w", err)
	}
	rows.Close()
	for i := range out {
		if out[i].BestStep, out[i].Best, err = s.best(out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// scanExtra scans the run columns then dst.
type scanExtra struct {
	sc  interface{ Scan(...any) error }
	dst []any
}

func (x scanExtra) Scan(dest ...any) error { return x.sc.Scan(append(dest, x.dst...)...) }

// best reads a run's best scores.
func (s *Store) best(runID int64) (int, map[string]float64, error) {
	rows, err := s.db.Query(`SELECT split, name, value, step FROM finetune_best WHERE run_id = ?`, runID)
	if err != nil {
		return 0, nil, fmt.Errorf("results: best scores of run %d: %w", runID, err)
	}
	defer rows.Close()
	out := map[string]float64{}
	step := 0
	for rows.Next() {
		var split, name string
		var v sql.NullFloat64
		if err := rows.Scan(&split, &name, &v, &step); err != nil {
			return 0, nil, fmt.Errorf("results: best scores of run %d: %w", runID, err)
		}
		out[BestKey(split, name)] = nanNull(v)
	}
	return step, out, rows.Err()
}
