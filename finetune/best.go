package finetune

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/results"
	"github.com/reproml/albert/train"
)

// The best checkpoint: the official run_classifier.py / run_race.py keep
// model.ckpt-best, the weights of the evaluation with the best dev score,
// beside the rolling checkpoints. Here they are BestWeights (every trained
// tensor, encoder and head, as "param/NAME") and BestRecord (which
// evaluation they are from) in the run's folder, written when an evaluation
// beats every earlier one of the run on the first split's primary metric
// (the earliest wins a tie, as bestOf picks it).
const (
	BestWeights = "best.pt"
	BestRecord  = "best.json"
)

// Best says which evaluation BestWeights holds.
type Best struct {
	Step   int      `json:"step"`
	Split  string   `json:"split"`
	Metric string   `json:"metric"`
	Value  *float64 `json:"value"` // nil when the score was not a number (a run whose every evaluation was NaN keeps its last)
	File   string   `json:"file"`
	SHA256 string   `json:"sha256"`
}

// ReadBest reads a run folder's BestRecord.
func ReadBest(dir string) (Best, error) {
	var b Best
	raw, err := os.ReadFile(filepath.Join(dir, BestRecord))
	if err != nil {
		return b, fmt.Errorf("finetune: best checkpoint: %w", err)
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return b, fmt.Errorf("finetune: %s: %w", filepath.Join(dir, BestRecord), err)
	}
	return b, nil
}

// primary is the first split's primary metric among scores.
func primary(d *Data, scores []results.Score) (float64, bool) {
	first := string(d.Evals[0].Split)
	for _, s := range scores {
		if s.Split == first && s.Name == d.Task.Metric {
			return s.Value, !math.IsNaN(s.Value)
		}
	}
	return 0, false
}

// bestSoFar is the best primary score stored for the run (its curves hold
// what survived a resume: nothing after the checkpoint), -Inf when none.
func bestSoFar(st *results.Store, runID int64, d *Data) (float64, error) {
	curve, err := st.Curve(runID, string(d.Evals[0].Split), d.Task.Metric)
	if err != nil {
		return 0, err
	}
	best := math.Inf(-1)
	for _, p := range curve {
		if !math.IsNaN(p.Value) && p.Value > best {
			best = p.Value
		}
	}
	return best, nil
}

// saveBest writes m's tensors and the record of the evaluation at step,
// each through a temporary file and a rename, the weights first: a kill
// leaves the previous pair or the new weights with the old record, which
// the run overwrites when it passes that evaluation again.
func saveBest(dir string, m *Model, d *Data, step int, value float64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("finetune: best checkpoint: %w", err)
	}
	named := make([]ts.NamedTensor, 0, len(m.Params))
	for _, p := range m.Params {
		named = append(named, ts.NamedTensor{Name: "param/" + p.Name, Tensor: p.Tensor})
	}
	path := filepath.Join(dir, BestWeights)
	if err := ts.SaveMultiNew(named, path+".tmp"); err != nil {
		return fmt.Errorf("finetune: best checkpoint: %w", err)
	}
	sum, err := train.FileSHA256(path + ".tmp")
	if err != nil {
		return err
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return fmt.Errorf("finetune: best checkpoint: %w", err)
	}
	b := Best{Step: step, Split: string(d.Evals[0].Split), Metric: d.Task.Metric, File: BestWeights, SHA256: sum}
	if !math.IsNaN(value) {
		b.Value = &value
	}
	raw, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return fmt.Errorf("finetune: best checkpoint: %w", err)
	}
	rec := filepath.Join(dir, BestRecord)
	if err := os.WriteFile(rec+".tmp", raw, 0o644); err != nil {
		return fmt.Errorf("finetune: best checkpoint: %w", err)
	}
	if err := os.Rename(rec+".tmp", rec); err != nil {
		return fmt.Errorf("finetune: best checkpoint: %w", err)
	}
	return nil
}

// LoadBest copies a fine-tuning run's best weights (dir's BestWeights,
// checked against BestRecord's checksum) into m, which must be the run's
// architecture and task head. It returns the record.
func (m *Model) LoadBest(dir string) (Best, error) {
	b, err := ReadBest(dir)
	if err != nil {
		return b, err
	}
	path := filepath.Join(dir, b.File)
	sum, err := train.FileSHA256(path)
	if err != nil {
		return b, err
	}
	if sum != b.SHA256 {
		return b, fmt.Errorf("finetune: %s: checksum %s, %s says %s (a damaged or mismatched file)", path, sum[:12], BestRecord, b.SHA256[:min(12, len(b.SHA256))])
	}
	return b, m.loadParams(path, "best checkpoint", func(string) bool { return true })
}

// checkBest says whether the run folder's best record agrees with the
// best evaluation in the store (it can only differ when a resumed run did
// not replay its steps exactly, e.g. non-deterministic GPU kernels).
func checkBest(dir string, step int) error {
	b, err := ReadBest(dir)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("finetune: no %s in %s after the run", BestRecord, dir)
	}
	if err != nil {
		return err
	}
	if b.Step != step {
		return fmt.Errorf("finetune: %s holds the weights of step %d but the best evaluation is step %d (a resume that did not replay exactly)", filepath.Join(dir, BestRecord), b.Step, step)
	}
	return nil
}
