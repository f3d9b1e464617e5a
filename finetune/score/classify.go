// Package score computes the downstream metrics of the ALBERT paper the way
// the official code and evaluation scripts do: accuracy, Matthews
// correlation, F1, Pearson and Spearman for GLUE; accuracy overall and per
// subset for RACE; and a Go port of the official SQuAD v1.1/v2.0 evaluation
// (answer normalisation, EM and token F1, the no-answer threshold), with
// answer extraction from start/end scores as squad_utils does and writers of
// the official predictions.json and null_odds.json.
//
// Every metric is a fraction in [0, 1] (or a correlation in [-1, 1]); the
// official scripts print percentages.
package score

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/gonum/stat"

	"github.com/reproml/albert/finetune/tasks"
)

// ErrUndefined marks a correlation of a constant series (scipy returns nan).
var ErrUndefined = errors.New("score: correlation undefined for a constant series")

func checkLen(a, b int) error {
	if a != b {
		return fmt.Errorf("score: %d gold values, %d predictions", a, b)
	}
	if a == 0 {
		return errors.New("score: no examples")
	}
	return nil
}

// Accuracy is the fraction of predictions equal to the gold label.
func Accuracy(gold, pred []int) (float64, error) {
	if err := checkLen(len(gold), len(pred)); err != nil {
		return 0, err
	}
	n := 0
	for i := range gold {
		if gold[i] == pred[i] {
			n++
		}
	}
	return float64(n) / float64(len(gold)), nil
}

// confusion counts a binary confusion matrix; labels must be 0 or 1.
func confusion(gold, pred []int) (tp, tn, fp, fn float64, err error) {
	if err = checkLen(len(gold), len(pred)); err != nil {
		return
	}
	for i := range gold {
		g, p := gold[i], pred[i]
		if (g != 0 && g != 1) || (p != 0 && p != 1) {
			return 0, 0, 0, 0, fmt.Errorf("score: example %d: labels %d/%d, a binary metric needs 0 or 1", i, g, p)
		}
		switch {
		case g == 1 && p == 1:
			tp++
		case g == 0 && p == 0:
			tn++
		case g == 0 && p == 1:
			fp++
		default:
			fn++
		}
	}
	return
}

// MCC is the Matthews correlation of binary labels (CoLA), 0 when a row or
// column of the confusion matrix is empty (as sklearn's matthews_corrcoef).
func MCC(gold, pred []int) (float64, error) {
	tp, tn, fp, fn, err := confusion(gold, pred)
	if err != nil {
		return 0, err
	}
	den := math.Sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
	if den == 0 {
		return 0, nil
	}
	return (tp*tn - fp*fn) / den, nil
}

// F1 is the F1 score of the positive class 1 (MRPC, QQP), 0 when nothing is
// predicted or gold positive (as sklearn's f1_score).
func F1(gold, pred []int) (float64, error) {
	tp, _, fp, fn, err := confusion(gold, pred)
	if err != nil {
		return 0, err
	}
	if tp == 0 {
		return 0, nil
	}
	return 2 * tp / (2*tp + fp + fn), nil
}

// Pearson is the linear correlation of two series (STS-B). A constant series
// gives NaN and ErrUndefined.
func Pearson(gold, pred []float64) (float64, error) {
	if err := checkLen(len(gold), len(pred)); err != nil {
		return 0, err
	}
	if constant(gold) || constant(pred) {
		return math.NaN(), ErrUndefined
	}
	return stat.Correlation(gold, pred, nil), nil
}

// Spearman is the Pearson correlation of the ranks, ties given their average
// rank (scipy.stats.spearmanr).
func Spearman(gold, pred []float64) (float64, error) {
	if err := checkLen(len(gold), len(pred)); err != nil {
		return 0, err
	}
	return Pearson(ranks(gold), ranks(pred))
}

func constant(x []float64) bool {
	for _, v := range x[1:] {
		if v != x[0] {
			return false
		}
	}
	return true
}

// ranks are 1-based ranks with ties averaged.
func ranks(x []float64) []float64 {
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return x[idx[a]] < x[idx[b]] })
	r := make([]float64, len(x))
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && x[idx[j+1]] == x[idx[i]] {
			j++
		}
		avg := float64(i+j)/2 + 1
		for k := i; k <= j; k++ {
			r[idx[k]] = avg
		}
		i = j + 1
	}
	return r
}

// Classification computes every metric a classification task reports
// (t.Metrics: accuracy, mcc, f1) from gold and predicted label indexes.
func Classification(t tasks.Task, gold, pred []int) (map[string]float64, error) {
	out := map[string]float64{}
	for _, m := range t.Metrics {
		var v float64
		var err error
		switch m {
		case tasks.MetricAccuracy:
			v, err = Accuracy(gold, pred)
		case tasks.MetricMCC:
			v, err = MCC(gold, pred)
		case tasks.MetricF1:
			v, err = F1(gold, pred)
		default:
			err = fmt.Errorf("score: %s: metric %q is not a classification metric", t.Name, m)
		}
		if err != nil {
			return nil, err
		}
		out[m] = v
	}
	return out, nil
}

// Regression gives STS-B's Pearson and Spearman correlations. A constant
// prediction makes both undefined: they are left out and ErrUndefined is
// returned with the map.
func Regression(gold, pred []float64) (map[string]float64, error) {
	p, err := Pearson(gold, pred)
	if err != nil {
		return map[string]float64{}, err
	}
	s, err := Spearman(gold, pred)
	if err != nil {
		return map[string]float64{}, err
	}
	return map[string]float64{tasks.MetricPearson: p, tasks.MetricSpearman: s}, nil
}

// MultipleChoice gives RACE's accuracy over all examples and, for each
// subset present (Example.Subset middle/high), its own accuracy.
func MultipleChoice(examples []tasks.Example, pred []int) (map[string]float64, error) {
	if err := checkLen(len(examples), len(pred)); err != nil {
		return nil, err
	}
	right := map[string]int{}
	count := map[string]int{}
	for i, ex := range examples {
		keys := []string{tasks.MetricAccuracy}
		switch ex.Subset {
		case tasks.SubsetMiddle:
			keys = append(keys, tasks.MetricAccMid)
		case tasks.SubsetHigh:
			keys = append(keys, tasks.MetricAccHigh)
		}
		for _, k := range keys {
			count[k]++
			if pred[i] == ex.Label {
				right[k]++
			}
		}
	}
	out := map[string]float64{}
	for k, n := range count {
		out[k] = float64(right[k]) / float64(n)
	}
	return out, nil
}
