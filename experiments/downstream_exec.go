package experiments

import (
	"fmt"
	"io"

	"github.com/reproml/albert/finetune/tasks"
	"github.com/reproml/albert/results"
)

// addPlanned records a planned run: a pretraining run with AddRun, a
// fine-tuning run with AddFinetuneRun, its pretraining run's id found in
// byHash (the runs planned before it).
func addPlanned(st *results.Store, expID int64, r Run, byHash map[string]int64) (int64, error) {
	if r.Finetune == nil {
		id, _, err := st.AddRun(expID, RunSpec(r))
		return id, err
	}
	f := r.Finetune
	spec := results.FinetuneSpec{PretrainHash: f.Pretrain, ModelHash: f.ModelHash, Init: f.Init, Task: f.Task.Name,
		StandIn: f.Task.StandIn, Metric: f.Task.Metric, EvalSplit: string(f.Task.EvalSplits[0])}
	if f.Pretrain != "" {
		pre, ok := byHash[f.Pretrain]
		if !ok {
			return 0, fmt.Errorf("experiments: fine-tuning run %q: its pretraining run %s is not in the plan", r.Label, f.Pretrain[:12])
		}
		spec.PretrainRunID = pre
	}
	id, _, err := st.AddFinetuneRun(expID, RunSpec(r), spec)
	return id, err
}

// phases splits runs into the pretraining runs and the fine-tuning runs,
// each in plan order: Execute trains the second after the first.
func phases(runs []Run) [][]Run {
	var pre, ft []Run
	for _, r := range runs {
		if r.Finetune == nil {
			pre = append(pre, r)
		} else {
			ft = append(ft, r)
		}
	}
	return [][]Run{pre, ft}
}

// waiting says why a fine-tuning run cannot start yet ("" when it can): its
// pretraining run is not done (running elsewhere, failed, diverged, not
// trained yet). Such a run is left pending for a later `exp run`.
func (x *executor) waiting(r Run) (string, error) {
	if r.Finetune == nil || r.Finetune.Pretrain == "" {
		return "", nil
	}
	pre, err := x.st.Runs(results.RunFilter{ConfigHash: r.Finetune.Pretrain})
	if err != nil {
		return "", err
	}
	if len(pre) == 1 && pre[0].Status == results.StatusDone {
		return "", nil
	}
	status := "not planned"
	if len(pre) == 1 {
		status = string(pre[0].Status)
	}
	return fmt.Sprintf("its pretraining run %s is %s", r.Finetune.Pretrain[:12], status), nil
}

// planDownstream adds the file's fine-tuning runs to p, printing a line for
// each declared task whose files are absent.
func planDownstream(out io.Writer, f *File, p *Plan, req *Request) error {
	if req.DataDir == "" {
		req.DataDir = DefaultDataDir()
	}
	skipped, err := f.PlanDownstream(p, req.DataDir)
	if err != nil {
		return err
	}
	for _, s := range skipped {
		fmt.Fprintf(out, "%s: downstream %s\n", p.Experiment, s)
	}
	return nil
}

// buildStandIns writes the stand-in tasks under the data root when a plan
// fine-tunes on one whose files are absent.
func buildStandIns(out io.Writer, plans []*Plan, req Request) error {
	need := false
	found := map[string]bool{}
	for _, f := range tasks.Discover(req.DataDir) {
		found[f.Task.Name] = f.Present()
	}
	for _, p := range plans {
		for _, r := range p.Runs {
			if r.Finetune != nil && r.Finetune.Task.StandIn && !found[r.Finetune.Task.Name] {
				need = true
			}
		}
	}
	if !need {
		return nil
	}
	if req.BuildStandIns == nil {
		return fmt.Errorf("the stand-in tasks are not under %s and this build cannot write them", req.DataDir)
	}
	fmt.Fprintf(out, "building the stand-in tasks under %s\n", req.DataDir)
	return req.BuildStandIns(req.DataDir)
}
