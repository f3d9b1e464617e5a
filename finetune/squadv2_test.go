package finetune

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/finetune/score"
	"github.com/reproml/albert/finetune/tasks"
	"github.com/reproml/albert/model"
)

// The head is chosen by the task: SQuAD 1.1 keeps run_squad_v1's linear
// 2×H, SQuAD 2.0 gets run_squad_v2's layers with their official shapes
// (H = 32 here), every one under "head/" so that loading a pretrained
// encoder leaves them alone.
func TestSpanHeadOfTask(t *testing.T) {
	defer lockThread()()
	v1, v2 := spanData(1, 1, 1).Task, spanData(2, 1, 1).Task
	sst, _ := tasks.Lookup(tasks.SST2)
	if SpanHeadOf(v1) != SpanHeadV1 || SpanHeadOf(v2) != SpanHeadV2 || SpanHeadOf(sst) != "" {
		t.Fatalf("heads: SQuAD 1.1 %q, SQuAD 2.0 %q, SST-2 %q", SpanHeadOf(v1), SpanHeadOf(v2), SpanHeadOf(sst))
	}
	shapes := func(task tasks.Task) map[string][]int64 {
		m, err := NewModel(tinyEncoder(), task, tinyConfig(1), 1, gotch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		out := map[string][]int64{}
		for _, p := range m.Params {
			if len(p.Name) > 5 && p.Name[:5] == "head/" {
				out[p.Name] = p.Tensor.MustSize()
				if p.Decay != (len(p.Name) > 7 && p.Name[len(p.Name)-7:] == "/weight" && !contains(p.Name, "layer_norm")) {
					t.Errorf("%s: weight decay %v", p.Name, p.Decay)
				}
			}
		}
		return out
	}
	if got, want := shapes(v1), map[string][]int64{"head/weight": {2, 32}, "head/bias": {2}}; !reflect.DeepEqual(got, want) {
		t.Errorf("SQuAD 1.1 head %v, want %v", got, want)
	}
	want := map[string][]int64{
		"head/start_logits/weight": {1, 32}, "head/start_logits/bias": {1},
		"head/end_logits/dense_0/weight": {32, 64}, "head/end_logits/dense_0/bias": {32},
		"head/end_logits/layer_norm/weight": {32}, "head/end_logits/layer_norm/bias": {32},
		"head/end_logits/dense_1/weight": {1, 32}, "head/end_logits/dense_1/bias": {1},
		"head/answer_class/dense_0/weight": {32, 64}, "head/answer_class/dense_0/bias": {32},
		"head/answer_class/dense_1/weight": {1, 32},
	}
	if got := shapes(v2); !reflect.DeepEqual(got, want) {
		t.Errorf("SQuAD 2.0 head %v, want %v", got, want)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// The v2 head's outputs have run_squad_v2's shapes (B windows of S = 16
// positions, beam 5 × 5), p_mask keeps starts and ends off the question,
// the [SEP]s and padding but not off [CLS], and the beam is the training
// path's computation: its starts are the 5 best of the start
// log-probabilities, and the ends of beam start k are the 5 best of the end
// log-probabilities conditioned on that start as a gold start would be.
func TestV2HeadShapesMaskAndBeam(t *testing.T) {
	defer lockThread()()
	d := spanData(2, 6, 1)
	m, err := NewModel(tinyEncoder(), d.Task, tinyConfig(1), 3, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var s backend.Scope
	defer s.Free()
	const B, S, K, E = 6, spanSeqLen, StartNTop, EndNTop
	in := ToDevice(&s, d.Train, tasks.Span, gotch.CPU)
	var out Outputs
	backend.NoGrad(func() { out = m.Forward(&s, in, false) })
	o := out.V2
	if o == nil {
		t.Fatal("SQuAD 2.0 forward gave no v2 outputs")
	}
	for name, c := range map[string]struct {
		t    *ts.Tensor
		want []int64
	}{
		"start log-probs": {o.StartLogProbs, []int64{B, S}}, "end log-probs": {o.EndLogProbs, []int64{B, S}},
		"cls logits": {o.Cls, []int64{B}}, "start top": {o.StartTopLogProbs, []int64{B, K}},
		"start top index": {o.StartTopIndex, []int64{B, K}}, "end top": {o.EndTopLogProbs, []int64{B, K * E}},
		"end top index": {o.EndTopIndex, []int64{B, K * E}},
	} {
		if got := c.t.MustSize(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: shape %v, want %v", name, got, c.want)
		}
	}
	slp := rows(backend.Float64s(o.StartLogProbs), B)
	elp := rows(backend.Float64s(o.EndLogProbs), B)
	for b := 0; b < B; b++ {
		p := pMask(d.Train[b], S)
		for i := 0; i < S; i++ {
			masked := i == 1 || i == 2 || i >= spanCtxStart+spanContext // question, [SEP]s, padding
			if (p[i] == 1) != masked {
				t.Fatalf("p_mask %v", p)
			}
			for name, lp := range map[string][]float64{"start": slp[b], "end": elp[b]} {
				if masked != (lp[i] < -1e29) || (!masked && math.IsInf(lp[i], 0)) {
					t.Errorf("window %d position %d (masked %v): %s log-prob %g", b, i, masked, name, lp[i])
				}
			}
		}
		for name, lp := range map[string][]float64{"start": slp[b], "end": elp[b]} {
			sum := 0.0
			for _, v := range lp {
				sum += math.Exp(v)
			}
			if math.Abs(sum-1) > 1e-5 {
				t.Errorf("window %d: %s probabilities sum to %g", b, name, sum)
			}
		}
	}
	beams := beams(o, B)
	for b, bm := range beams {
		order := topK(slp[b], K)
		for k := 0; k < K; k++ {
			if bm.StartIndex[k] != order[k] || math.Abs(bm.StartLogProbs[k]-slp[b][order[k]]) > 1e-6 {
				t.Errorf("window %d: beam start %d is %d (%g), the top-%d of the start log-probs %v", b, k, bm.StartIndex[k], bm.StartLogProbs[k], K, order)
			}
		}
	}
	// Each beam start as the gold start: its ends are the top E of that
	// conditioned distribution.
	for k := 0; k < K; k++ {
		starts := make([]int64, B)
		for b := range starts {
			starts[b] = int64(beams[b].StartIndex[k])
		}
		gold := in
		gold.Start = s.T(ts.MustOfSlice(starts))
		var g Outputs
		backend.NoGrad(func() { g = m.Forward(&s, gold, false) })
		cond := rows(backend.Float64s(g.V2.EndLogProbs), B)
		for b := range beams {
			order := topK(cond[b], E)
			for j := 0; j < E; j++ {
				at := k*E + j
				if beams[b].EndIndex[at] != order[j] || math.Abs(beams[b].EndLogProbs[at]-cond[b][order[j]]) > 1e-5 {
					t.Errorf("window %d beam start %d: end %d is %d (%g), want %d (%g)", b, k, j, beams[b].EndIndex[at], beams[b].EndLogProbs[at], order[j], cond[b][order[j]])
				}
			}
		}
	}
	// Training computes no beam.
	var tr Outputs
	backend.NoGrad(func() { tr = m.Forward(&s, in, true) })
	if tr.V2.StartTopIndex != nil || tr.V2.EndTopIndex != nil || !reflect.DeepEqual(tr.V2.Cls.MustSize(), []int64{B}) {
		t.Errorf("training forward: beam %v %v, cls %v", tr.V2.StartTopIndex, tr.V2.EndTopIndex, tr.V2.Cls.MustSize())
	}
}

// topK is the positions of v's k largest values, largest first.
func topK(v []float64, k int) []int {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return v[idx[a]] > v[idx[b]] })
	return idx[:k]
}

// The v2 training loss on a hand-built case (H = 2, S = 4, two windows, the
// second unanswerable with a masked padding position) equals the official
// formula computed here in float64 from the same numbers: p_mask, the
// log-softmax of the start logits, the end logits through dense_0 (tanh),
// LayerNorm (ε 1e-12) and dense_1 on [h_i, h_gold start], the answerability
// logit from the start-probability-weighted vector and [CLS], and
// (start loss + end loss)/2 + 0.5 × sigmoid cross-entropy.
func TestV2LossMatchesHandComputation(t *testing.T) {
	defer lockThread()()
	const B, S, H = 2, 4, 2
	h := newSquadV2Head(model.Config{HiddenSize: H, InitializerRange: 0.02}, 1, gotch.CPU)
	defer h.close()
	startW, startB := []float64{0.5, -1.0}, 0.1
	end0W, end0B := [][]float64{{0.2, -0.3, 0.4, 0.1}, {-0.5, 0.6, 0.0, 0.3}}, []float64{0.05, -0.1}
	lnW, lnB := []float64{1.5, 0.5}, []float64{0.2, -0.3}
	end1W, end1B := []float64{0.7, -0.4}, 0.3
	ans0W, ans0B := [][]float64{{0.1, 0.2, -0.3, 0.4}, {0.5, -0.6, 0.7, -0.8}}, []float64{0.0, 0.1}
	ans1W := []float64{1.2, -0.9}
	set := func(dst *ts.Tensor, v ...float64) {
		src := ts.MustOfSlice(f32(v)).MustView(dst.MustSize(), true)
		defer src.MustDrop()
		backend.NoGrad(func() { dst.Copy_(src) })
	}
	set(h.StartW, startW...)
	set(h.StartB, startB)
	set(h.End0W, append(append([]float64{}, end0W[0]...), end0W[1]...)...)
	set(h.End0B, end0B...)
	set(h.EndLNW, lnW...)
	set(h.EndLNB, lnB...)
	set(h.End1W, end1W...)
	set(h.End1B, end1B)
	set(h.Ans0W, append(append([]float64{}, ans0W[0]...), ans0W[1]...)...)
	set(h.Ans0B, ans0B...)
	set(h.Ans1W, ans1W...)

	hidden := [B][S][H]float64{{{0.3, -0.2}, {1.0, 0.5}, {-0.4, 0.8}, {0.6, 0.1}}, {{-0.7, 0.2}, {0.9, -0.3}, {0.2, 0.4}, {0.5, 0.5}}}
	pmask := [B][S]float64{{0, 1, 0, 0}, {0, 1, 0, 1}}
	gold := [B][2]int{{2, 3}, {0, 0}} // start, end
	impossible := [B]float64{0, 1}

	var s backend.Scope
	defer s.Free()
	var flatH, flatP []float64
	for b := 0; b < B; b++ {
		for i := 0; i < S; i++ {
			flatH = append(flatH, hidden[b][i][:]...)
			flatP = append(flatP, pmask[b][i])
		}
	}
	in := Inputs{
		Start: s.T(ts.MustOfSlice([]int64{int64(gold[0][0]), int64(gold[1][0])})), End: s.T(ts.MustOfSlice([]int64{int64(gold[0][1]), int64(gold[1][1])})),
		PMask: s.T(ts.MustOfSlice(f32(flatP)).MustView([]int64{B, S}, true)), Impossible: s.T(ts.MustOfSlice(f32(impossible[:]))),
	}
	hid := s.T(ts.MustOfSlice(f32(flatH)).MustView([]int64{B, S, H}, true))
	o := h.forward(&s, hid, in.PMask, in.Start, false, 0, true)
	got := backend.Float64s(o.loss(&s, in))[0]

	dot := func(w, x []float64) float64 {
		v := 0.0
		for i := range w {
			v += w[i] * x[i]
		}
		return v
	}
	logSoftmax := func(x []float64) []float64 {
		mx := math.Inf(-1)
		for _, v := range x {
			mx = max(mx, v)
		}
		z := 0.0
		for _, v := range x {
			z += math.Exp(v - mx)
		}
		out := make([]float64, len(x))
		for i, v := range x {
			out[i] = v - mx - math.Log(z)
		}
		return out
	}
	masked := func(v, p float64) float64 { return v*(1-p) - 1e30*p }
	var startLoss, endLoss, bce float64
	for b := 0; b < B; b++ {
		st := make([]float64, S)
		for i := range st {
			st[i] = masked(dot(startW, hidden[b][i][:])+startB, pmask[b][i])
		}
		slp := logSoftmax(st)
		startLoss -= slp[gold[b][0]] / B
		en := make([]float64, S)
		for i := range en {
			x := append(append([]float64{}, hidden[b][i][:]...), hidden[b][gold[b][0]][:]...)
			y := []float64{math.Tanh(dot(end0W[0], x) + end0B[0]), math.Tanh(dot(end0W[1], x) + end0B[1])}
			mu := (y[0] + y[1]) / 2
			va := ((y[0]-mu)*(y[0]-mu) + (y[1]-mu)*(y[1]-mu)) / 2
			z := make([]float64, H)
			for k := range z {
				z[k] = (y[k]-mu)/math.Sqrt(va+1e-12)*lnW[k] + lnB[k]
			}
			en[i] = masked(dot(end1W, z)+end1B, pmask[b][i])
		}
		endLoss -= logSoftmax(en)[gold[b][1]] / B
		sf := make([]float64, H)
		for i := 0; i < S; i++ {
			for k := range sf {
				sf[k] += math.Exp(slp[i]) * hidden[b][i][k]
			}
		}
		x := append(sf, hidden[b][0][:]...)
		a := []float64{math.Tanh(dot(ans0W[0], x) + ans0B[0]), math.Tanh(dot(ans0W[1], x) + ans0B[1])}
		c := dot(ans1W, a)
		bce += (math.Max(c, 0) - c*impossible[b] + math.Log1p(math.Exp(-math.Abs(c)))) / B
	}
	want := (startLoss+endLoss)/2 + 0.5*bce
	t.Logf("loss %.7f, by hand %.7f (start %.5f, end %.5f, answerability %.5f)", got, want, startLoss, endLoss, bce)
	if math.Abs(got-want) > 1e-5*math.Max(1, math.Abs(want)) {
		t.Errorf("v2 loss %.7f, hand computation %.7f", got, want)
	}
	// The answerability loss is there: flipping is_impossible changes it.
	in.Impossible = s.T(ts.MustOfSlice([]float32{1, 0}))
	if flipped := backend.Float64s(o.loss(&s, in))[0]; math.Abs(flipped-got) < 1e-4 {
		t.Errorf("loss %.7f unchanged when is_impossible flips", flipped)
	}
}

// Beam decoding on given log-probabilities picks the best valid span by
// hand: candidates starting at [CLS] or in the question, ending outside the
// context or before their start, longer than max_answer_len or starting
// where this window is not the max-context one score higher but are
// dropped; of the rest (6,8) = −0.9, (6,7) = −1.1, (9,10) = −0.75, the
// best is (9,10). scoreSpan then writes null_odds.json with each example's
// smallest answerability logit over its windows, and predictions.json with
// the span, or "" where the null odds reach the threshold tuned for F1.
func TestV2BeamDecodingPicksBestSpan(t *testing.T) {
	d := spanData(2, 1, 4)
	e := d.Evals[0] // q1000 (unanswerable), q1001, q1002, q1003
	e.Features[1].MaxContext[11] = false
	bm := Beam{
		StartIndex:    []int{0, 11, 6, 9},
		StartLogProbs: []float64{-0.05, -0.2, -0.5, -0.7},
		EndIndex:      []int{0, 5, 7 /* start 0 */, 11, 12, 13 /* start 11 */, 4, 8, 7 /* start 6 */, 10, 14, 12 /* start 9 */},
		EndLogProbs:   []float64{-0.01, -0.2, -0.3, -0.01, -0.02, -0.03, -0.1, -0.4, -0.6, -0.05, -0.01, -0.3},
	}
	c := tinyConfig(1)
	c.MaxAnswerLen = 3 // (9,12) is 4 tokens
	bm.EndLogProbs[11] = 0.2
	cands, err := bm.Candidates()
	if err != nil {
		t.Fatal(err)
	}
	preds, err := score.Predict(e.Examples[1:2], []tasks.Feature{withIndex(e.Features[1], 0)}, [][]score.Candidate{cands}, score.ExtractOptions{NBest: 20, MaxAnswerLen: c.MaxAnswerLen, Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	f := e.Features[1]
	want := e.Examples[1].Context[f.CharStart[9]:f.CharEnd[10]]
	nb := preds[0].NBest
	if preds[0].Text != want || len(nb) != 3 || math.Abs(nb[0].StartScore+nb[0].EndScore+0.75) > 1e-12 {
		t.Fatalf("beam decoding picked %q (n-best %+v), want %q at −0.75", preds[0].Text, nb, want)
	}
	t.Logf("picked %q; n-best %+v", preds[0].Text, nb)

	// Through scoreSpan: q1002 is unanswerable, with two windows (logits 2.0
	// and 0.5); q1001 has the beam above (its gold answer is its own marked
	// span, (6,9)); q1000 and q1003 have beams on their gold spans.
	feats := append([]tasks.Feature{}, e.Features...)
	second := e.Features[2]
	second.Window = 1
	feats = append(feats, second)
	if !e.Examples[2].IsImpossible || e.Examples[0].IsImpossible || e.Examples[1].IsImpossible || e.Examples[3].IsImpossible {
		t.Fatal("toy data: want q1002 alone unanswerable")
	}
	gold := func(f tasks.Feature, cls float64) Beam {
		return Beam{StartIndex: []int{f.Start}, StartLogProbs: []float64{-0.1}, EndIndex: []int{f.End}, EndLogProbs: []float64{-0.1}, Cls: cls}
	}
	bm.Cls = -3
	p := Predictions{Beams: []Beam{gold(feats[0], -2), bm,
		{StartIndex: []int{4}, StartLogProbs: []float64{-0.1}, EndIndex: []int{5}, EndLogProbs: []float64{-0.1}, Cls: 2.0},
		gold(feats[3], -1), gold(feats[4], 0.5)}}
	ev := EvalSet{Split: tasks.Dev, Examples: e.Examples, Features: feats}
	dir := t.TempDir()
	ms, err := scoreSpan(d.Task, ev, p, c, dir)
	if err != nil {
		t.Fatal(err)
	}
	var null map[string]float64
	var answers map[string]string
	for name, v := range map[string]any{"null_odds.json": &null, "predictions.json": &answers} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || json.Unmarshal(b, v) != nil {
			t.Fatalf("%s: %v\n%s", name, err, b)
		}
	}
	if wantNull := map[string]float64{"q1000": -2, "q1001": -3, "q1002": 0.5, "q1003": -1}; !reflect.DeepEqual(null, wantNull) {
		t.Errorf("null_odds.json %v, want %v", null, wantNull)
	}
	// By null odds: q1001 (partly right, −3), q1000 (right, −2), q1003
	// (right, −1), q1002 (unanswerable, answered with a span, 0.5): F1 peaks
	// after q1003, so the threshold is −1 and, as write_predictions_v2
	// answers only below it (score_diff < threshold), q1003 and q1002 get "".
	ans := func(k int) string {
		f := feats[k]
		return e.Examples[k].Context[f.CharStart[f.Start]:f.CharEnd[f.End]]
	}
	wantAns := map[string]string{"q1000": ans(0), "q1001": want, "q1002": "", "q1003": ""}
	if !reflect.DeepEqual(answers, wantAns) {
		t.Errorf("predictions.json %q, want %q", answers, wantAns)
	}
	if ms[tasks.MetricNoAnsAcc] != 1 || ms[tasks.MetricHasAnsEM] != 1.0/3 {
		t.Errorf("metrics %v: want NoAns 1, HasAns EM 1/3", ms)
	}
}

func withIndex(f tasks.Feature, i int) tasks.Feature {
	f.ExampleIndex = i
	return f
}

// A tiny encoder with the v2 head learns the toy SQuAD 2.0 task from a
// random init in seconds: answerable questions have a span marked by
// tokens 7 … 8, unanswerable ones (every third) no marker. Both kinds are
// answered well above chance (HasAns EM and NoAns accuracy ≥ 0.8 where
// answering every question "" scores 0 and 1, and any span 1 and 0), and
// the answerability logits alone tell them apart: null_odds.json ranks
// unanswerable questions above answerable ones (AUC ≥ 0.95) and, with no
// threshold, puts ≥ 90% of the questions on the right side of 0: the
// sigmoid loss at work (without it, measured: AUC 1.0 from the learned start
// distribution alone, but every logit on one side, 0.33). HasAns EM is 29/30
// when all is right: the tuned threshold is the null odds of the last
// answerable question, which write_predictions_v2's "answer only below the
// threshold" turns into "".
func TestV2HeadLearnsAnswerability(t *testing.T) {
	defer lockThread()()
	st := openStore(t)
	c := tinyConfig(150)
	c.MaxSeqLen, c.MaxAnswerLen, c.EvalEvery = spanSeqLen, 30, 50
	d := spanData(2, 120, 45)
	dir := t.TempDir()
	job := Job{RunID: testRun(t, st, "v2"), Name: "v2", Seed: 1, Encoder: tinyEncoder(), Config: c, Data: d, Dir: dir, Device: "cpu", Store: st}
	res, err := Run(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	has, hasF1, no := bestValue(res, tasks.MetricHasAnsEM), bestValue(res, tasks.MetricHasAnsF1), bestValue(res, tasks.MetricNoAnsAcc)
	var null map[string]float64
	b, err := os.ReadFile(filepath.Join(predictionsDir(dir, tasks.Dev, res.BestStep), "null_odds.json"))
	if err != nil || json.Unmarshal(b, &null) != nil {
		t.Fatalf("null_odds.json: %v\n%s", err, b)
	}
	var pos, neg []float64
	for _, ex := range d.Evals[0].Examples {
		if ex.IsImpossible {
			pos = append(pos, null[ex.ID])
		} else {
			neg = append(neg, null[ex.ID])
		}
	}
	auc := 0.0
	for _, p := range pos {
		for _, n := range neg {
			switch {
			case p > n:
				auc++
			case p == n:
				auc += 0.5
			}
		}
	}
	auc /= float64(len(pos) * len(neg))
	// The logit is trained against is_impossible, not only ranked: without a
	// tuned threshold, sigmoid(null odds) > 0.5 says "no answer".
	right := 0
	for _, v := range pos {
		if v > 0 {
			right++
		}
	}
	for _, v := range neg {
		if v < 0 {
			right++
		}
	}
	calibrated := float64(right) / float64(len(pos)+len(neg))
	t.Logf("best step %d: HasAns EM %.3f F1 %.3f (%d questions), NoAns %.3f (%d), answerability AUC %.3f, right side of 0 %.3f",
		res.BestStep, has, hasF1, len(neg), no, len(pos), auc, calibrated)
	if !(has >= 0.8 && no >= 0.8 && auc >= 0.95 && calibrated >= 0.9) {
		t.Errorf("HasAns EM %.3f, NoAns %.3f, AUC %.3f, null odds on the right side of 0 %.3f; want >= 0.8, 0.8, 0.95, 0.9", has, no, auc, calibrated)
	}
	for step := 50; step <= 150; step += 50 {
		if _, err := os.Stat(filepath.Join(predictionsDir(dir, tasks.Dev, step), "predictions.json")); err != nil {
			t.Errorf("evaluation at step %d: %v", step, err)
		}
	}
}

// Steps and evaluations of the v2 head (the beam included) free what they
// make: the live gotch tensors do not grow between step 50 (after an
// evaluation and a checkpoint) and step 199.
func TestV2FineTuningDoesNotLeak(t *testing.T) {
	defer lockThread()()
	st := openStore(t)
	c := tinyConfig(200)
	c.MaxSeqLen, c.EvalEvery, c.EncoderDropout = spanSeqLen, 50, 0.1
	runWithoutLeak(t, Job{RunID: testRun(t, st, "v2leak"), Name: "v2", Seed: 1, Encoder: tinyEncoder(), Config: c,
		Data: spanData(2, 48, 20), Dir: t.TempDir(), Device: "cpu", Store: st})
}
