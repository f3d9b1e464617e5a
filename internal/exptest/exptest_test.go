package exptest_test

import (
	"testing"

	"github.com/reproml/albert/experiments"
	"github.com/reproml/albert/internal/exptest"
)

// An Experiment's defaults give a valid file: a 2-layer SOP model, one seed.
// Its fields reach the plan.
func TestExperimentPlans(t *testing.T) {
	for _, c := range []struct {
		e      exptest.Experiment
		runs   int
		layers int
	}{
		{exptest.Experiment{Name: "a", Train: exptest.Train{Steps: 20, BatchSize: 8, WarmupSteps: 5}}, 1, 2},
		{exptest.Experiment{Name: "b", Objective: "none", Seeds: []int{1, 2}, Layers: 1, Data: exptest.EvalData,
			Train: exptest.Train{Steps: 20, BatchSize: 8, WarmupSteps: 5}}, 2, 1},
	} {
		f, err := experiments.Parse(c.e.Name+".toml", []byte(c.e.TOML()))
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.e.Name, err, c.e.TOML())
		}
		p, err := f.Plan("", nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Runs) != c.runs || p.Runs[0].Model.NumLayers != c.layers || p.Experiment != c.e.Name {
			t.Errorf("%s: %d runs of %d layers in %q, want %d of %d\n%s", c.e.Name, len(p.Runs), p.Runs[0].Model.NumLayers, p.Experiment, c.runs, c.layers, c.e.TOML())
		}
	}
}
