package finetune

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"

	"github.com/reproml/albert/finetune/score"
	"github.com/reproml/albert/finetune/tasks"
)

// predictionsDir is where a span task's evaluation at step writes the
// official predictions files.
func predictionsDir(runDir string, split tasks.Split, step int) string {
	return filepath.Join(runDir, "predictions", fmt.Sprintf("%s-step-%08d", split, step))
}

// scoreSplit computes task's metrics on one evaluation split from the
// model's predictions (package score: the official metrics). A metric that
// is undefined (a correlation of a constant prediction, a subset with no
// example) is NaN.
func scoreSplit(t tasks.Task, e EvalSet, p Predictions, c Config, dir string) (map[string]float64, error) {
	var ms map[string]float64
	var err error
	switch t.Kind {
	case tasks.Classification, tasks.MultipleChoice:
		if len(p.Logits) != len(e.Features) {
			return nil, fmt.Errorf("%d predictions for %d features", len(p.Logits), len(e.Features))
		}
		pred := make([]int, len(p.Logits))
		gold := make([]int, len(p.Logits))
		exs := make([]tasks.Example, len(p.Logits))
		for i, row := range p.Logits {
			f := e.Features[i]
			pred[i], gold[i] = argmax(row), f.Label
			exs[i] = e.Examples[f.ExampleIndex]
			exs[i].Label = f.Label
		}
		if t.Kind == tasks.Classification {
			ms, err = score.Classification(t, gold, pred)
		} else {
			ms, err = score.MultipleChoice(exs, pred)
		}
	case tasks.Regression:
		gold := make([]float64, len(e.Features))
		for i, f := range e.Features {
			gold[i] = float64(f.Target)
		}
		ms, err = score.Regression(gold, p.Values)
		if errors.Is(err, score.ErrUndefined) {
			err = nil
		}
	case tasks.Span:
		ms, err = scoreSpan(t, e, p, c, dir)
	default:
		err = fmt.Errorf("unknown task kind %q", t.Kind)
	}
	if err != nil {
		return nil, err
	}
	for _, m := range t.Metrics {
		if _, ok := ms[m]; !ok {
			ms[m] = math.NaN()
		}
	}
	return ms, nil
}

func argmax(v []float64) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
