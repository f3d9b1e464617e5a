package experiments

import (
	"strings"
	"testing"
)

// A [[zip]] group pairs settings: one axis may repeat a value as long as the
// zipped tuples differ (an optimizer study in one file).
const zipRepeats = `name = "z"
[base.model]
preset = "albert-base"
vocab_size = 1000
hidden_size = 64
num_layers = 2
[base.data]
seq_len = 32
[profiles.cpu.train]
warmup_steps = 1
[[zip]]
objective = ["nsp", "nsp", "sop"]
train.optimizer = ["adamw", "lamb", "adamw"]
`

func TestZipMayRepeatValuesNotTuples(t *testing.T) {
	f, err := Parse("z.toml", []byte(zipRepeats))
	if err != nil {
		t.Fatal(err)
	}
	p := mustPlan(t, f, "cpu")
	if len(p.Runs) != 3 || p.Duplicates != 0 {
		t.Fatalf("%d runs, %d duplicates; want 3 distinct runs", len(p.Runs), p.Duplicates)
	}
	want := []string{"objective=nsp optimizer=adamw seed=1", "objective=nsp optimizer=lamb seed=1", "objective=sop optimizer=adamw seed=1"}
	for i, r := range p.Runs {
		if r.Label != want[i] || string(r.Objective) != strings.Fields(want[i])[0][len("objective="):] ||
			r.Train.Optimizer != strings.Fields(want[i])[1][len("optimizer="):] {
			t.Errorf("run %d: %q objective %s optimizer %s, want %q", i, r.Label, r.Objective, r.Train.Optimizer, want[i])
		}
	}

	// The same tuple twice is the same run twice: an error at the group's
	// first axis, naming the tuple and its positions.
	dup := strings.Replace(zipRepeats, `["adamw", "lamb", "adamw"]`, `["adamw", "lamb", "lamb"]`, 1)
	dup = strings.Replace(dup, `["nsp", "nsp", "sop"]`, `["nsp", "sop", "sop"]`, 1)
	_, err = Parse("z.toml", []byte(dup))
	if err == nil || !strings.HasPrefix(err.Error(), `z.toml:12: zip.objective: [[zip]] group at line 11: tuple (objective="sop", train.optimizer="lamb") is listed twice (positions 2 and 3)`) {
		t.Fatalf("duplicate tuple: %v", err)
	}

	// A profile's replacement values are checked the same way, at the
	// replacement's line.
	prof := zipRepeats + `[profiles.cpu.grid]
train.optimizer = ["lamb", "lamb", "adamw"]
`
	_, err = Parse("z.toml", []byte(prof))
	if err == nil || !strings.Contains(err.Error(), `z.toml:15: profiles.cpu.grid.train.optimizer: [[zip]] group at line 11 in profile cpu: tuple (objective="nsp", train.optimizer="lamb") is listed twice (positions 1 and 2)`) {
		t.Fatalf("duplicate tuple under a profile: %v", err)
	}

	// A [grid] axis still may not repeat a value, in the file or in a profile.
	grid := strings.Replace(zipRepeats, "[[zip]]", "[grid]", 1)
	grid = strings.Replace(grid, "objective = [\"nsp\", \"nsp\", \"sop\"]\n", "", 1)
	if _, err := Parse("z.toml", []byte(grid)); err == nil || !strings.Contains(err.Error(), `z.toml:12: grid.train.optimizer: value "adamw" is listed twice`) {
		t.Fatalf("grid repeat: %v", err)
	}
	grid = strings.Replace(grid, `["adamw", "lamb", "adamw"]`, `["adamw", "lamb"]`, 1) + "[profiles.cpu.grid]\ntrain.optimizer = [\"lamb\", \"lamb\"]\n"
	if _, err := Parse("z.toml", []byte(grid)); err == nil || !strings.Contains(err.Error(), `z.toml:14: profiles.cpu.grid.train.optimizer: value "lamb" is listed twice`) {
		t.Fatalf("grid repeat under a profile: %v", err)
	}
}
