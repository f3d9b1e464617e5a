package finetune

import (
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/reproml/albert/finetune/score"
	"github.com/reproml/albert/finetune/tasks"
)

// scoreSpan scores SQuAD predictions with package score (squad_utils'
// answer extraction, the official EM/F1) and writes the official files into
// dir: predictions.json (question id → answer, "" for no answer) and, for
// SQuAD 2.0, null_odds.json.
//
// SQuAD 1.1 (SpanHeadV1) pairs the 20 best start and end logits of each
// window. SQuAD 2.0 (SpanHeadV2) is run_squad_v2.py's evaluation:
// each window's StartNTop × EndNTop beam of log-probabilities gives the
// candidate spans (accumulate_predictions_v2), an example's null odds are
// its smallest answerability logit over its windows (cls_logits, written
// to null_odds.json), and the no-answer threshold is the one that maximises
// F1 on the evaluation split itself (evaluate_v2's best_f1_thresh): an
// example answers "" when its null odds reach it.
func scoreSpan(t tasks.Task, e EvalSet, p Predictions, c Config, dir string) (map[string]float64, error) {
	v2 := t.SQuADVersion == 2
	switch {
	case v2 && len(p.Beams) != len(e.Features):
		return nil, fmt.Errorf("%d v2 beams for %d features (SQuAD 2.0 is scored from the v2 head)", len(p.Beams), len(e.Features))
	case !v2 && (len(p.Start) != len(e.Features) || len(p.End) != len(e.Features)):
		return nil, fmt.Errorf("%d/%d span predictions for %d features", len(p.Start), len(p.End), len(e.Features))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("predictions folder: %w", err)
	}
	const nBest = 20
	cands := make([][]score.Candidate, len(e.Features))
	cls := make([]float64, len(e.Features))
	for i := range e.Features {
		if !v2 {
			cands[i] = score.TopCandidates(f32(p.Start[i]), f32(p.End[i]), nBest)
			continue
		}
		var err error
		if cands[i], err = p.Beams[i].Candidates(); err != nil {
			return nil, fmt.Errorf("feature %d: %w", i, err)
		}
		cls[i] = p.Beams[i].Cls
	}
	o := score.DefaultExtract(t.SQuADVersion)
	o.MaxAnswerLen = c.MaxAnswerLen
	preds, err := score.Predict(e.Examples, e.Features, cands, o)
	if err != nil {
		return nil, err
	}
	ids := score.IDs(e.Examples)
	if !v2 {
		answers := score.Texts(preds)
		res, err := score.EvaluateV1(e.Examples, answers)
		if err != nil {
			return nil, err
		}
		if err := score.WritePredictions(filepath.Join(dir, "predictions.json"), ids, answers); err != nil {
			return nil, err
		}
		return map[string]float64{tasks.MetricEM: res.ExactMatch, tasks.MetricF1: res.F1}, nil
	}
	null, err := score.NullOdds(e.Examples, e.Features, cls)
	if err != nil {
		return nil, err
	}
	tuned, err := score.TuneV2(e.Examples, preds, null)
	if err != nil {
		return nil, err
	}
	if err := score.WritePredictions(filepath.Join(dir, "predictions.json"), ids, tuned.Answers); err != nil {
		return nil, err
	}
	if err := score.WriteNullOdds(filepath.Join(dir, "null_odds.json"), ids, null); err != nil {
		return nil, err
	}
	r := tuned.Result
	ms := map[string]float64{tasks.MetricEM: r.Exact, tasks.MetricF1: r.F1,
		tasks.MetricHasAnsEM: math.NaN(), tasks.MetricHasAnsF1: math.NaN(), tasks.MetricNoAnsAcc: math.NaN()}
	if r.HasAnsTotal > 0 {
		ms[tasks.MetricHasAnsEM], ms[tasks.MetricHasAnsF1] = r.HasAnsExact, r.HasAnsF1
	}
	if r.NoAnsTotal > 0 {
		ms[tasks.MetricNoAnsAcc] = r.NoAnsExact
	}
	return ms, nil
}

func f32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}
