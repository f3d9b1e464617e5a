package slurm

import (
	"errors"
	"fmt"

	"github.com/reproml/albert/experiments"
)

// ErrFinetuning is returned (wrapped) by PlanFiles for an experiment file
// that declares [downstream] fine-tuning.
var ErrFinetuning = errors.New("declares [downstream] fine-tuning, which exp slurm does not submit")

// PlanFiles loads and plans each file under profile and sets, as `exp run`
// does, for a submission. Sweeps hold pretraining runs only: a fine-tuning
// run starts from its pretraining run's final checkpoint, so its task would
// have to wait for another task, and `exp merge` does not fold the
// fine-tuning tables (finetunes, finetune_best). A file that declares
// [downstream] (under this profile) is therefore refused, naming the file
// and what to do instead, unless pretrainOnly: then its pretraining runs are
// planned and notes says how many fine-tuning runs are left to `exp run`.
// dataDir is the downstream data root, only used to count those runs.
func PlanFiles(paths []string, profile string, sets []string, dataDir string, pretrainOnly bool) (plans []*experiments.Plan, notes []string, err error) {
	for _, path := range paths {
		f, err := experiments.Load(path)
		if err != nil {
			return nil, nil, err
		}
		p, err := f.Plan(profile, sets)
		if err != nil {
			return nil, nil, err
		}
		// A probe: PlanDownstream appends to a copy of the plan's runs.
		probe := *p
		probe.Runs = append([]experiments.Run(nil), p.Runs...)
		skipped, err := f.PlanDownstream(&probe, dataDir)
		if err != nil {
			return nil, nil, err
		}
		ft := len(probe.Runs) - len(p.Runs)
		if ft > 0 || len(skipped) > 0 {
			if !pretrainOnly {
				found := fmt.Sprintf("%d fine-tuning runs under profile %s with the tasks under %s", ft, p.Profile, dataDir)
				if ft == 0 {
					found = fmt.Sprintf("none of its tasks is under %s now", dataDir)
				}
				return nil, nil, fmt.Errorf("slurm: %s %w (%s): a fine-tuning run starts from its pretraining run's "+
					"final checkpoint, and exp merge does not fold fine-tuning results. "+
					"Instead: `exp run %s` trains and fine-tunes on one machine; or submit its %d pretraining runs with "+
					"`exp slurm %s --pretrain-only`, run `exp merge` when their tasks are done, then `exp run %s` "+
					"(same --profile, --set, --db and --runs-dir) fine-tunes from their checkpoints",
					path, ErrFinetuning, found, path, len(p.Runs), path, path)
			}
			notes = append(notes, fmt.Sprintf("%s: %d pretraining runs planned; its %d fine-tuning runs are not submitted: "+
				"after `exp merge`, `exp run %s` (same --profile, --set, --db and --runs-dir) fine-tunes from their checkpoints",
				path, len(p.Runs), ft, path))
		}
		for _, r := range p.Runs {
			if r.Finetune != nil {
				return nil, nil, fmt.Errorf("slurm: %s: run %s is a fine-tuning run: %w", path, r.Label, ErrFinetuning)
			}
		}
		plans = append(plans, p)
	}
	return plans, notes, nil
}
