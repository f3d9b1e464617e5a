package table

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reproml/albert/results"
)

// Curves prints one row per recorded step, metrics in the asked order,
// accuracies in percent, "–" where a metric has no value at that step.
func TestCurvesPrintsStepsInOrder(t *testing.T) {
	st, err := results.Open(filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	exp, err := st.EnsureExperiment("study-x", "x.toml", "h")
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := st.AddRun(exp, results.RunSpec{ConfigHash: "abcdef1234567890", Name: "seq=128 seed=1", ConfigJSON: "{}", Profile: "cpu", Seed: 1, TotalSteps: 800})
	if err != nil {
		t.Fatal(err)
	}
	w := st.NewMetricWriter(id)
	w.Add(800, "eval", "nsp_acc", 0.62)
	w.Add(400, "eval", "nsp_acc", 0.485)
	w.Add(400, "eval", "mlm_loss", 5.25)
	w.Add(400, "train", "nsp_acc", 0.9) // another split: not printed
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := Curves(&b, st, "study-x", "eval", []string{"nsp_acc", "mlm_loss"}); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{"seq=128 seed=1 (run 1, abcdef123456, pending)", "step  nsp_acc  mlm_loss", " 400     48.5      5.25", " 800     62.0         –"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Index(got, " 400 ") > strings.Index(got, " 800 ") {
		t.Errorf("steps out of order:\n%s", got)
	}
	if err := Curves(&b, st, "nothing", "eval", nil); err == nil {
		t.Error("an unknown experiment gave no error")
	}
}
