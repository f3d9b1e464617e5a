package table

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/reproml/albert/results"
)

// DefaultCurveMetrics are the held-out metrics Curves prints when none are
// named: MLM accuracy and the sentence diagnostics.
var DefaultCurveMetrics = []string{"mlm_acc", "nsp_acc", "nsp_auc", "nsp_acc_neg_same", "nsp_acc_neg_other", "sop_acc", "sop_auc"}

// Curves writes, for every run of an experiment, one row per recorded step
// of split with the named metrics: the numbers behind a study's curves, for
// experiments that have no paper table (ablations/studies/). Accuracies and
// other fractions in [0, 1] whose name ends in _acc, _auc or _majority, or
// contains _acc_, are printed as percentages.
func Curves(w io.Writer, st *results.Store, experiment, split string, metrics []string) error {
	runs, err := st.Runs(results.RunFilter{Experiment: experiment})
	if err != nil {
		return err
	}
	if len(runs) == 0 {
		return fmt.Errorf("curves: no runs of experiment %q", experiment)
	}
	if len(metrics) == 0 {
		metrics = DefaultCurveMetrics
	}
	for _, r := range runs {
		fmt.Fprintf(w, "%s (run %d, %s, %s", r.Name, r.ID, r.ConfigHash[:min(12, len(r.ConfigHash))], r.Status)
		if r.Seconds > 0 {
			fmt.Fprintf(w, ", %.0f s", r.Seconds)
		}
		fmt.Fprintln(w, ")")
		byStep := map[int][]float64{}
		for i, m := range metrics {
			pts, err := st.Curve(r.ID, split, m)
			if err != nil {
				return err
			}
			for _, p := range pts {
				row, ok := byStep[p.Step]
				if !ok {
					row = make([]float64, len(metrics))
					for j := range row {
						row[j] = math.NaN()
					}
					byStep[p.Step] = row
				}
				row[i] = p.Value
			}
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "step\t%s\t\n", strings.Join(metrics, "\t"))
		steps := slices.Sorted(maps.Keys(byStep))
		for _, s := range steps {
			fmt.Fprintf(tw, "%d", s)
			for i, v := range byStep[s] {
				fmt.Fprintf(tw, "\t%s", curveValue(metrics[i], v))
			}
			fmt.Fprintln(tw, "\t")
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(steps) == 0 {
			fmt.Fprintf(w, "  (no %s metrics)\n", split)
		}
		fmt.Fprintln(w)
	}
	return nil
}

func curveValue(name string, v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case strings.HasSuffix(name, "_acc") || strings.HasSuffix(name, "_auc") || strings.HasSuffix(name, "_majority") ||
		strings.Contains(name, "_acc_") || name == "mlm_plateau":
		return fmt.Sprintf("%.1f", 100*v)
	}
	return fmt.Sprintf("%.4g", v)
}
