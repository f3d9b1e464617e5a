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
// SQuAD 2.0 here is BERT's v2 recipe on the v1 head, not the official
// ALBERT (XLNet-style) head: an unanswerable question is trained with
// start = end = [CLS]; an example's null score is the smallest [CLS] start +
// end logit over its windows, its null odds that minus the best non-null
// span's score, and the no-answer threshold is the one that maximises F1 on
// the evaluation split itself (run_squad_v2's best_f1_thresh).
func scoreSpan(t tasks.Task, e EvalSet, p Predictions, c Config, dir string) (map[string]float64, error) {
	if len(p.Start) != len(e.Features) || len(p.End) != len(e.Features) {
		return nil, fmt.Errorf("%d/%d span predictions for %d features", len(p.Start), len(p.End), len(e.Features))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("predictions folder: %w", err)
	}
	const nBest = 20
	cands := make([][]score.Candidate, len(e.Features))
	cls := make([]float64, len(e.Features))
	for i := range e.Features {
		cands[i] = score.TopCandidates(f32(p.Start[i]), f32(p.End[i]), nBest)
		cls[i] = p.Start[i][0] + p.End[i][0]
	}
	o := score.DefaultExtract(t.SQuADVersion)
	o.MaxAnswerLen = c.MaxAnswerLen
	preds, err := score.Predict(e.Examples, e.Features, cands, o)
	if err != nil {
		return nil, err
	}
	ids := score.IDs(e.Examples)
	if t.SQuADVersion != 2 {
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
	for i, pr := range preds {
		if len(pr.NBest) > 0 && pr.Text != "" {
			null[i] -= pr.NBest[0].StartScore + pr.NBest[0].EndScore
		}
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
