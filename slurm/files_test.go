package slurm

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/reproml/albert/experiments"
	"github.com/reproml/albert/internal/exptest"
)

var tinyTOML = exptest.Experiment{Name: "tiny", Seeds: []int{1, 2}, Train: exptest.Train{Steps: 20, BatchSize: 8, WarmupSteps: 5}}.TOML()

// writeFile writes body to name in a folder of its own.
func writeFile(t *testing.T, name, body string) string {
	return exptest.Write(t, t.TempDir(), name, body)
}

// A file with [downstream] fine-tuning is refused, naming the file and what
// to do instead; --pretrain-only plans its pretraining runs alone; and a
// fine-tuning run that reaches NewSweep anyway is an error, so no sweep
// ever holds a task that would start before its pretraining run is done.
func TestPlanFilesRefusesFinetuning(t *testing.T) {
	data := t.TempDir() // no task: "all" plans the stand-ins, a named task is absent
	plain := writeFile(t, "plain.toml", tinyTOML)
	all := writeFile(t, "down.toml", tinyTOML+"[downstream]\ntasks = [\"all\"]\nseeds = [1]\n")
	absent := writeFile(t, "race.toml", tinyTOML+"[downstream]\ntasks = [\"RACE\"]\n")

	plans, notes, err := PlanFiles([]string{plain}, "", nil, data, false)
	if err != nil || len(plans) != 1 || len(plans[0].Runs) != 2 || len(notes) != 0 {
		t.Fatalf("a file without [downstream]: %d plans, notes %q, %v", len(plans), notes, err)
	}
	for _, f := range []string{all, absent} {
		_, _, err := PlanFiles([]string{plain, f}, "", nil, data, false)
		if !errors.Is(err, ErrFinetuning) {
			t.Fatalf("%s: %v, want ErrFinetuning", f, err)
		}
		for _, want := range []string{f, "exp run " + f, "exp slurm " + f + " --pretrain-only", "exp merge"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: the error lacks %q:\n%v", f, want, err)
			}
		}
		plans, notes, err := PlanFiles([]string{f}, "", nil, data, true)
		if err != nil || len(plans) != 1 || len(notes) != 1 || !strings.Contains(notes[0], "exp run "+f) {
			t.Fatalf("%s --pretrain-only: %d plans, notes %q, %v", f, len(plans), notes, err)
		}
		for _, r := range plans[0].Runs {
			if r.Finetune != nil {
				t.Fatalf("%s --pretrain-only planned fine-tuning run %s", f, r.Label)
			}
		}
		if len(plans[0].Runs) != 2 {
			t.Errorf("%s --pretrain-only: %d runs, want the 2 pretraining runs", f, len(plans[0].Runs))
		}
	}
	// The planner exp run uses adds fine-tuning runs; NewSweep refuses them.
	fl, err := experiments.Load(all)
	if err != nil {
		t.Fatal(err)
	}
	p, err := fl.Plan("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fl.PlanDownstream(p, data); err != nil {
		t.Fatal(err)
	}
	_, _, err = NewSweep(context.Background(), []*experiments.Plan{p}, PlanOptions{Root: t.TempDir(), RunsDir: t.TempDir()})
	if !errors.Is(err, ErrFinetuning) {
		t.Fatalf("NewSweep with fine-tuning runs: %v, want ErrFinetuning", err)
	}
}
