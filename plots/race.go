package plots

import (
	"fmt"

	"gonum.org/v1/plot"

	"github.com/reproml/albert/results"
	"github.com/reproml/albert/results/table"
)

// v1 Table 1's RACE test accuracies (%): BERT-large and BERT-xlarge.
const raceLarge, raceXLarge = 73.9, 54.3

// raceFigure is v1 Table 1's RACE column as bars: the fine-tuned RACE
// accuracy (test at the dev-best evaluation, else dev; mean ± std over
// fine-tuning runs) of the xlarge experiment's two models beside the paper's
// 73.9 and 54.3. Nil when the store has no finished RACE fine-tuning of them.
func raceFigure(s *results.Store, runs []table.RunData) (*Figure, error) {
	fts, err := s.Finetunes(results.FinetuneFilter{Task: "RACE"})
	if err != nil {
		return nil, err
	}
	width := map[int64]float64{} // pretraining run → the paper's hidden size at its grid point
	for _, r := range runs {
		if v, ok := r.PaperValue("model.hidden_size"); ok {
			if h, ok := v.(float64); ok {
				width[r.ID] = h
			}
		}
	}
	vals := map[float64][]float64{}
	for _, f := range fts {
		h, ok := width[f.PretrainRunID]
		if !ok || f.Status != results.StatusDone || f.Init != results.InitPretrained {
			continue
		}
		v, ok := f.Best[results.BestKey("test", "accuracy")]
		if !ok {
			v, ok = f.Best[results.BestKey(f.EvalSplit, f.Metric)]
		}
		if ok {
			vals[h] = append(vals[h], 100*v)
		}
	}
	if len(vals[1024]) == 0 && len(vals[2048]) == 0 {
		return nil, nil
	}
	groups := []string{"BERT-large (H 1024)", "BERT-xlarge (H 2048)"}
	samples := [][]table.Sample{
		{table.NewSample("paper", raceLarge), table.NewSample("paper", raceXLarge)},
		{table.NewSample("ours", vals[1024]...), table.NewSample("ours", vals[2048]...)},
	}
	series := []string{"paper (v1 Table 1)", fmt.Sprintf("ours (n = %d / %d fine-tuning runs)", len(vals[1024]), len(vals[2048]))}
	p := newPlot("v1 Table 1: RACE accuracy, BERT-large vs BERT-xlarge (2x wider)", "model (paper's configuration; ours at its profile's scale)", "RACE accuracy (%)")
	n, err := groupedBars(p, groups, series, samples, nil, "")
	if err != nil || n == 0 {
		return nil, err
	}
	return &Figure{Name: "v1-table1-race", Title: "v1 Table 1: RACE degradation of the wider model", Panels: []*plot.Plot{p}, Series: []int{n}}, nil
}
