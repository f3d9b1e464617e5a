package score

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/reproml/albert/finetune/tasks"
)

// Candidate is one scored answer span of one feature: sequence positions
// and the start and end scores (logits, or log-probabilities for v2's
// beam), summed to rank spans.
type Candidate struct {
	Start, End           int
	StartScore, EndScore float64
}

// TopCandidates pairs the nBest highest start positions with the nBest
// highest end positions of one feature's logits (squad_utils
// _get_best_indexes; ties keep the lower position first). Validity is
// checked by Predict.
func TopCandidates(startLogits, endLogits []float32, nBest int) []Candidate {
	starts, ends := bestIndexes(startLogits, nBest), bestIndexes(endLogits, nBest)
	out := make([]Candidate, 0, len(starts)*len(ends))
	for _, s := range starts {
		for _, e := range ends {
			out = append(out, Candidate{s, e, float64(startLogits[s]), float64(endLogits[e])})
		}
	}
	return out
}

func bestIndexes(x []float32, n int) []int {
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return x[idx[a]] > x[idx[b]] })
	return idx[:min(n, len(idx))]
}

// ExtractOptions are squad_utils' answer limits.
type ExtractOptions struct {
	NBest        int // n_best_size: 20
	MaxAnswerLen int // max_answer_length in tokens: 30
	// Version 1 or 2: when no span is valid, v1 answers "empty" (a nonce
	// text) and v2 "" with scores −1e6, as squad_utils does.
	Version int
}

// DefaultExtract are the official limits for a SQuAD version.
func DefaultExtract(version int) ExtractOptions {
	return ExtractOptions{NBest: 20, MaxAnswerLen: 30, Version: version}
}

// NBestEntry is one of an example's best distinct answer texts.
type NBestEntry struct {
	Text                 string
	Probability          float64 // softmax of the summed scores over the n-best
	StartScore, EndScore float64
}

// Prediction is an example's answer: Text is the best span's text (v2 before
// the no-answer threshold: see ApplyNullThreshold).
type Prediction struct {
	ID    string
	Text  string
	NBest []NBestEntry
}

// Predict picks each example's answer from its features' candidates as
// squad_utils' accumulate/write_predictions do: a candidate counts when start
// and end lie in the window's context, the start is at a max-context
// position, start ≤ end and the span has at most MaxAnswerLen tokens; spans
// rank by start + end score; the text is the original context from the
// start token's first byte to the end token's last, stripped; the n-best
// keeps distinct texts. cands[i] are the candidates of features[i].
func Predict(examples []tasks.Example, features []tasks.Feature, cands [][]Candidate, o ExtractOptions) ([]Prediction, error) {
	if len(cands) != len(features) {
		return nil, fmt.Errorf("score: %d candidate lists for %d features", len(cands), len(features))
	}
	if o.NBest < 1 || o.MaxAnswerLen < 1 {
		return nil, fmt.Errorf("score: n-best %d and max answer length %d must be positive", o.NBest, o.MaxAnswerLen)
	}
	byExample := make([][]int, len(examples))
	for i, f := range features {
		if f.ExampleIndex < 0 || f.ExampleIndex >= len(examples) {
			return nil, fmt.Errorf("score: feature %d points at example %d of %d", i, f.ExampleIndex, len(examples))
		}
		byExample[f.ExampleIndex] = append(byExample[f.ExampleIndex], i)
	}
	type prelim struct {
		feature, start, end int
		s, e                float64
	}
	out := make([]Prediction, len(examples))
	for ei, ex := range examples {
		var pre []prelim
		for _, fi := range byExample[ei] {
			f := &features[fi]
			lo, hi := f.ContextStart, f.ContextStart+f.ContextLen
			type key struct{ s, e int }
			sums := map[key]*prelim{}
			counts := map[key]int{}
			var order []key
			for _, c := range cands[fi] {
				if c.Start < lo || c.Start >= hi || c.End < lo || c.End >= hi {
					continue
				}
				if c.Start >= len(f.MaxContext) || !f.MaxContext[c.Start] || c.End < c.Start || c.End-c.Start+1 > o.MaxAnswerLen {
					continue
				}
				k := key{c.Start, c.End}
				if p, ok := sums[k]; ok {
					p.s += c.StartScore
					p.e += c.EndScore
				} else {
					sums[k] = &prelim{fi, c.Start, c.End, c.StartScore, c.EndScore}
					order = append(order, k)
				}
				counts[k]++
			}
			for _, k := range order {
				p := *sums[k]
				p.s /= float64(counts[k])
				p.e /= float64(counts[k])
				pre = append(pre, p)
			}
		}
		sort.SliceStable(pre, func(a, b int) bool { return pre[a].s+pre[a].e > pre[b].s+pre[b].e })
		seen := map[string]bool{}
		var nbest []NBestEntry
		for _, p := range pre {
			if len(nbest) >= o.NBest {
				break
			}
			f := &features[p.feature]
			text := spanText(ex.Context, f.CharStart[p.start], f.CharEnd[p.end])
			if seen[text] {
				continue
			}
			seen[text] = true
			nbest = append(nbest, NBestEntry{Text: text, StartScore: p.s, EndScore: p.e})
		}
		if len(nbest) == 0 {
			if o.Version == 2 {
				nbest = []NBestEntry{{Text: "", StartScore: -1e6, EndScore: -1e6}}
			} else {
				nbest = []NBestEntry{{Text: "empty"}}
			}
		}
		softmax(nbest)
		out[ei] = Prediction{ID: ex.ID, Text: nbest[0].Text, NBest: nbest}
	}
	return out, nil
}

// spanText is context[start:end] stripped of whitespace (Python's strip).
func spanText(ctx string, start, end int) string {
	if start < 0 || end > len(ctx) || start >= end {
		return ""
	}
	return strings.TrimFunc(ctx[start:end], unicode.IsSpace)
}

func softmax(nb []NBestEntry) {
	mx := math.Inf(-1)
	for _, e := range nb {
		mx = max(mx, e.StartScore+e.EndScore)
	}
	sum := 0.0
	for i := range nb {
		nb[i].Probability = math.Exp(nb[i].StartScore + nb[i].EndScore - mx)
		sum += nb[i].Probability
	}
	for i := range nb {
		nb[i].Probability /= sum
	}
}

// NullOdds is SQuAD 2.0's no-answer score of each example: the smallest
// answerability logit (cls_logits) over its features, 1e6 for an example
// without features (squad_utils' score_null). clsLogits[i] belongs to
// features[i].
func NullOdds(examples []tasks.Example, features []tasks.Feature, clsLogits []float64) ([]float64, error) {
	if len(clsLogits) != len(features) {
		return nil, fmt.Errorf("score: %d answerability logits for %d features", len(clsLogits), len(features))
	}
	out := make([]float64, len(examples))
	for i := range out {
		out[i] = 1e6
	}
	for i, f := range features {
		if f.ExampleIndex < 0 || f.ExampleIndex >= len(examples) {
			return nil, fmt.Errorf("score: feature %d points at example %d of %d", i, f.ExampleIndex, len(examples))
		}
		out[f.ExampleIndex] = min(out[f.ExampleIndex], clsLogits[i])
	}
	return out, nil
}

// ApplyNullThreshold answers "" where an example's null odds reach the
// threshold (squad_utils write_predictions_v2: score_diff ≥ threshold) and
// the best span's text otherwise. It returns question id → text.
func ApplyNullThreshold(preds []Prediction, nullOdds []float64, thresh float64) (map[string]string, error) {
	if len(preds) != len(nullOdds) {
		return nil, fmt.Errorf("score: %d predictions, %d null odds", len(preds), len(nullOdds))
	}
	out := make(map[string]string, len(preds))
	for i, p := range preds {
		if nullOdds[i] >= thresh {
			out[p.ID] = ""
		} else {
			out[p.ID] = p.Text
		}
	}
	return out, nil
}

// Texts maps question id → the best span's text (no threshold).
func Texts(preds []Prediction) map[string]string {
	out := make(map[string]string, len(preds))
	for _, p := range preds {
		out[p.ID] = p.Text
	}
	return out
}

// V2Tuned is a SQuAD 2.0 evaluation with the threshold tuned on the same set.
type V2Tuned struct {
	// Threshold is best_f1_thresh of the untuned predictions.
	Threshold float64
	// Answers are the final answers (question id → text, "" for no answer),
	// what predictions.json holds.
	Answers map[string]string
	// Result scores Answers as evaluate-v2.0.py scores predictions.json
	// alone (no na-prob file).
	Result V2Result
}

// TuneV2 is run_squad_v2's evaluation: score the best non-null answers with
// the null odds as no-answer scores, take best_f1_thresh as the threshold,
// answer "" where the null odds reach it, and score those answers.
//
// The official evaluate_v2 also passes the raw logits to
// apply_no_ans_threshold with the probability threshold 1.0 when it prints
// its final score; Result instead scores the final answers as the official
// script does on predictions.json, the number anyone can reproduce from the
// written files.
func TuneV2(examples []tasks.Example, preds []Prediction, nullOdds []float64) (V2Tuned, error) {
	var out V2Tuned
	if len(preds) != len(examples) || len(nullOdds) != len(examples) {
		return out, fmt.Errorf("score: %d examples, %d predictions, %d null odds", len(examples), len(preds), len(nullOdds))
	}
	na := make(map[string]float64, len(examples))
	for i, ex := range examples {
		if preds[i].ID != ex.ID {
			return out, fmt.Errorf("score: prediction %d is for %s, example %d is %s", i, preds[i].ID, i, ex.ID)
		}
		na[ex.ID] = nullOdds[i]
	}
	first, err := EvaluateV2(examples, Texts(preds), na, 1.0)
	if err != nil {
		return out, err
	}
	out.Threshold = first.BestF1Thresh
	if out.Answers, err = ApplyNullThreshold(preds, nullOdds, out.Threshold); err != nil {
		return out, err
	}
	out.Result, err = EvaluateV2(examples, out.Answers, nil, 1.0)
	return out, err
}

// WritePredictions writes the official predictions.json: a JSON object of
// question id → answer text ("" for no answer) in the order of ids, indented
// as squad_utils writes it. The file is written whole or not at all.
func WritePredictions(path string, ids []string, answers map[string]string) error {
	var b bytes.Buffer
	b.WriteString("{")
	for i, id := range ids {
		a, ok := answers[id]
		if !ok {
			return fmt.Errorf("score: no answer for question %s", id)
		}
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n    ")
		b.Write(jsonString(id))
		b.WriteString(": ")
		b.Write(jsonString(a))
	}
	b.WriteString("\n}\n")
	return writeAtomic(path, b.Bytes())
}

// WriteNullOdds writes SQuAD 2.0's null_odds.json: question id → no-answer
// score, in the order of ids (the official script's --na-prob-file).
func WriteNullOdds(path string, ids []string, nullOdds []float64) error {
	if len(ids) != len(nullOdds) {
		return fmt.Errorf("score: %d ids, %d null odds", len(ids), len(nullOdds))
	}
	var b bytes.Buffer
	b.WriteString("{")
	for i, id := range ids {
		v := nullOdds[i]
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("score: null odds of %s is %v (not representable in JSON)", id, v)
		}
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n    ")
		b.Write(jsonString(id))
		b.WriteString(": ")
		b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	}
	b.WriteString("\n}\n")
	return writeAtomic(path, b.Bytes())
}

// IDs lists the examples' question ids in order.
func IDs(examples []tasks.Example) []string {
	out := make([]string, len(examples))
	for i, ex := range examples {
		out[i] = ex.ID
	}
	return out
}

func jsonString(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a string always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("score: %w", err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("score: writing %s: %v", path, firstErr(werr, cerr))
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("score: %w", err)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
