package table

import (
	"math"
	"strings"
	"testing"

	"github.com/reproml/albert/results"
)

// S is a sample without seeds (never paired).
func S(v ...float64) Sample { return NewSample("", v...) }

// P is a sample of seeds 1, 2, … (paired with another P of the same length).
func P(v ...float64) Sample {
	seeds := make([]int64, len(v))
	for i := range v {
		seeds[i] = int64(i + 1)
	}
	return Seeded("", seeds, v)
}

func diverged(s Sample, seed int64, step int) Sample {
	s.Lost = append(s.Lost, Lost{Seed: seed, Status: results.StatusDiverged, Step: step, Reason: "loss NaN"})
	return s
}

func verdicts(cs []Claim) []Verdict {
	var out []Verdict
	for _, c := range cs {
		out = append(out, c.Verdict)
	}
	return out
}

func wantVerdicts(t *testing.T, name string, got []Claim, want ...Verdict) {
	t.Helper()
	g := verdicts(got)
	if len(g) != len(want) {
		t.Fatalf("%s: %d claims, want %d", name, len(g), len(want))
	}
	for i := range want {
		if g[i] != want[i] {
			t.Errorf("%s: claim %d (%s) = %s, want %s (%s)", name, i, got[i].Claim, got[i].VerdictText(), want[i], got[i].Detail)
		}
	}
}

func TestSampleStats(t *testing.T) {
	s := NewSample("x", 1, 2, 3, math.NaN(), math.Inf(1))
	if s.N() != 3 || s.Mean() != 2 || s.Std() != 1 || s.Format(1) != "2.0 ± 1.0 (n=3)" {
		t.Errorf("sample %v: n %d mean %v std %v %q", s.Values, s.N(), s.Mean(), s.Std(), s.Format(1))
	}
	if S().Format(2) != "—" || S(5).Std() != 0 || !math.IsNaN(S().Mean()) {
		t.Error("empty / single sample")
	}
	p := Seeded("", []int64{4, 5, 6}, []float64{1, math.NaN(), 3})
	if p.N() != 2 || p.Seeds[0] != 4 || p.Seeds[1] != 6 {
		t.Errorf("Seeded drops the NaN with its seed: %+v", p)
	}
	// An accuracy names the eval set's standard error: p = 0.5, N = 10000 → 100·sqrt(0.25/10000) = 0.5.
	a := P(50, 50, 50)
	a.Acc, a.EvalN = true, 10000
	if got := a.Format(2); got != "50.00 ± 0.00 (n=3, SE 0.50)" {
		t.Errorf("accuracy format %q", got)
	}
	a.EvalN = 0
	if got := diverged(a, 4, 812).Format(1); got != "50.0 ± 0.0 (n=3 done, 1 diverged at step 812, eval size unknown)" {
		t.Errorf("accuracy with a diverged seed, no eval size: %q", got)
	}
}

// The rule's intervals, by hand: Welch for {10,11,12} vs {9,10,11} is
// 1 ± t(0.975, df 4)·sqrt(1/3+1/3) = 1 ± 2.7764·0.8165; paired for
// differences {0.5, 0.6, 0.4} is 0.5 ± t(0.975, 2)·0.1/√3 = 0.5 ± 4.3027·0.0577.
func TestIntervals(t *testing.T) {
	iv, ok := DiffInterval(S(10, 11, 12), S(9, 10, 11))
	if !ok || iv.Paired || !iv.Welch || math.Abs(iv.DF-4) > 1e-9 || math.Abs(iv.Lo-(-1.2669)) > 1e-3 || math.Abs(iv.Hi-3.2669) > 1e-3 {
		t.Errorf("Welch: %+v", iv)
	}
	iv, ok = DiffInterval(P(10, 12, 14), P(9.5, 11.4, 13.6))
	if !ok || !iv.Paired || iv.N != 3 || math.Abs(iv.Lo-0.2516) > 1e-3 || math.Abs(iv.Hi-0.7484) > 1e-3 {
		t.Errorf("paired: %+v", iv)
	}
	// Different seed sets are never paired (no value is left out).
	b := Seeded("", []int64{1, 2, 4}, []float64{9.5, 11.4, 13.6})
	if iv, _ := DiffInterval(P(10, 12, 14), b); iv.Paired {
		t.Errorf("paired over different seeds: %+v", iv)
	}
	if _, ok := DiffInterval(S(1), S(2, 3)); ok {
		t.Error("an interval from one value")
	}
	m, ok := MeanInterval(S(50, 51, 52)) // 51 ± 4.3027/√3
	if !ok || math.Abs(m.Lo-48.516) > 1e-3 || math.Abs(m.Hi-53.484) > 1e-3 {
		t.Errorf("mean interval %+v", m)
	}
}

// Golden verdicts of the rule for "a beats b" (by margin).
func TestVerdictRule(t *testing.T) {
	plateau := P(7.05, 7.05, 7.1)
	plateau.Acc, plateau.OnPlateau = true, 3
	cases := []struct {
		name   string
		a, b   Sample
		margin float64
		want   Verdict
		why    string // in the reason or the detail
	}{
		{"tie, no spread", P(10, 10, 10), P(10, 10, 10), 0, Inconclusive, "contains 0"},
		{"tie with spread", S(9, 10, 11), S(9, 10, 11), 0, Inconclusive, "contains 0"},
		{"n = 1", S(12), S(10), 0, Inconclusive, "fewer than 3 seeds"},
		{"n = 2, far apart", S(20, 21), S(10, 11), 0, Inconclusive, "fewer than 3 seeds"},
		{"n = 3 overlapping", S(10, 11, 12), S(9, 10, 11), 0, Inconclusive, "95% CI [-1.27, +3.27], Welch df 4.0"},
		{"n = 3 separated", S(20, 21, 22), S(10, 11, 12), 0, Held, "95% CI [+7.73, +12.27]"},
		{"n = 3 separated, reversed", S(10, 11, 12), S(20, 21, 22), 0, NotHeld, "95% CI [-12.27, -7.73]"},
		{"paired by seed", P(10, 12, 14), P(9.5, 11.4, 13.6), 0, Held, "paired over 3 seeds"},
		{"the same numbers unpaired", S(10, 12, 14), S(9.5, 11.4, 13.6), 0, Inconclusive, "Welch"},
		{"missing side", S(10, 11, 12), S(), 0, NotEnough, "no finished run"},
		{"side with only a diverged run", S(10, 11, 12), diverged(S(), 1, 40), 0, NotEnough, "diverged at step 40"},
		{"diverged seed leaves n = 2", diverged(P(20, 21), 3, 812), P(10, 11, 12), 0, Inconclusive, "n=2 done, 1 diverged at step 812"},
		{"diverged fourth seed, three done", diverged(P(20, 21, 22), 4, 812), P(10, 11, 12), 0, Held, "1 diverged at step 812"},
		{"margin cleared", S(80, 81, 82), S(50, 51, 52), 10, Held, "claimed > +10.0"},
		{"margin inside the interval", S(80, 81, 82), S(50, 51, 52), 29.5, Inconclusive, "contains the margin"},
		{"on the unigram plateau", plateau, P(9, 9.5, 10), 0, Inconclusive, "still on the unigram plateau"},
	}
	for _, c := range cases {
		c.a.Label, c.b.Label = "a", "b"
		got := Greater("a > b", "", c.a, c.b, c.margin)
		if got.Verdict != c.want || !strings.Contains(got.Why+" | "+got.Detail, c.why) {
			t.Errorf("%s: %s — %s; want %s mentioning %q", c.name, got.VerdictText(), got.Detail, c.want, c.why)
		}
		if got.Verdict == Inconclusive && got.Why == "" {
			t.Errorf("%s: inconclusive without a reason", c.name)
		}
	}
}

func TestNear(t *testing.T) {
	for _, c := range []struct {
		name string
		a    Sample
		want Verdict
	}{
		{"interval inside 50 ± 5", S(50, 51, 52), Held},            // [48.5, 53.5]
		{"interval wholly outside", S(60, 61, 62), NotHeld},        // [58.5, 63.5]
		{"interval crosses the edge", S(52, 54, 56), Inconclusive}, // [49.0, 59.0]
		{"n = 1 at 50", S(50), Inconclusive},
		{"none", S(), NotEnough},
	} {
		if got := Near("at chance", "", c.a, 50, 5); got.Verdict != c.want {
			t.Errorf("%s: %s (%s), want %s", c.name, got.VerdictText(), got.Detail, c.want)
		}
	}
}

func learned() SentenceRuns {
	return SentenceRuns{
		NSPofNSP: P(80, 82, 84), SOPofNSP: P(50, 51, 52),
		NSPofSOP: P(77, 79, 81), SOPofSOP: P(85, 86, 87),
		NSPMajority: P(0.6, 0.55, 0.6), SOPMajority: P(0.52, 0.5, 0.51),
	}
}

func TestSentenceClaims(t *testing.T) {
	wantVerdicts(t, "heads learned, paper-like", SentenceClaims(learned()), Held, Held, Held, Held)

	ev := learned()
	ev.SOPofNSP = P(60, 61, 62) // the NSP model is well above chance on SOP
	wantVerdicts(t, "NSP model solves SOP", SentenceClaims(ev), NotHeld, NotHeld, Held, Held)

	ev = learned()
	ev.NSPMajority = P(1, 1, 0.99) // one class for every pair
	cs := SentenceClaims(ev)
	wantVerdicts(t, "constant NSP head", cs, Inconclusive, Inconclusive, Inconclusive, Inconclusive)
	if !strings.Contains(cs[1].Why, "sentence heads did not learn at this scale") || cs[1].Needs == "" {
		t.Errorf("constant head: %q (needs %q)", cs[1].Why, cs[1].Needs)
	}

	ev = learned()
	ev.SOPMajority = Sample{}
	cs = SentenceClaims(ev)
	wantVerdicts(t, "no diagnostics", cs, Inconclusive, Inconclusive, Inconclusive, Inconclusive)
	if !strings.Contains(cs[0].Why, "no diagnostics (sop_majority") {
		t.Errorf("no diagnostics: %q", cs[0].Why)
	}

	ev = learned()
	ev.NSPofNSP = P(49, 50, 52) // the NSP head is at chance on its own task
	cs = SentenceClaims(ev)
	wantVerdicts(t, "NSP head at chance on NSP", cs, Inconclusive, Inconclusive, Inconclusive, Inconclusive)
	if !strings.Contains(cs[1].Why, "did not learn") {
		t.Errorf("head at chance: %q", cs[1].Why)
	}

	ev = learned()
	ev.SOPofSOP, ev.NSPofSOP, ev.SOPMajority = Sample{}, Sample{}, Sample{}
	cs = SentenceClaims(ev)
	wantVerdicts(t, "no SOP-trained run", cs, NotEnough, NotEnough, NotEnough, NotEnough)
	if !strings.Contains(cs[1].Why, "SOP-trained") {
		t.Errorf("missing SOP-trained: %q", cs[1].Why)
	}

	one := SentenceRuns{NSPofNSP: P(90), SOPofNSP: P(52), NSPofSOP: P(79), SOPofSOP: P(86), NSPMajority: P(0.5), SOPMajority: P(0.5)}
	wantVerdicts(t, "one seed (was held)", SentenceClaims(one), Inconclusive, Inconclusive, Inconclusive, Inconclusive)
}

func TestSharingClaims(t *testing.T) {
	pt := func(e float64, all, att, ffn, none Sample) SharingPoint {
		return SharingPoint{E: e, All: all, Attention: att, FFN: ffn, None: none}
	}
	lo, mid, hi := P(40, 40.5, 41), P(44, 45, 46), P(50, 50.5, 51)
	wantVerdicts(t, "paper-like, 3 seeds", SharingClaims([]SharingPoint{pt(768, lo, hi, lo, hi), pt(128, lo, hi, mid, hi)}), Held, Held)
	wantVerdicts(t, "fails at one E", SharingClaims([]SharingPoint{pt(768, lo, hi, lo, hi), pt(128, hi, lo, hi, lo)}), NotHeld, NotHeld)
	// Was held from one E; All needs every E it quantifies over.
	c := SharingClaims([]SharingPoint{pt(768, lo, hi, lo, hi), {E: 128}})
	wantVerdicts(t, "one E measured", c, NotEnough, NotEnough)
	if !strings.Contains(c[0].Why, "E=128") {
		t.Errorf("missing E not named: %q", c[0].Why)
	}
	wantVerdicts(t, "none", SharingClaims([]SharingPoint{{E: 768}, {E: 128}}), NotEnough, NotEnough)
	// One seed per cell (was held): never decided.
	wantVerdicts(t, "one seed", SharingClaims([]SharingPoint{pt(768, S(40), S(45), S(39), S(46)), pt(128, S(41), S(46), S(42), S(45))}), Inconclusive, Inconclusive)
}

func TestEmbeddingClaims(t *testing.T) {
	p := func(x float64, s Sample) Point { return Point{X: x, Sample: s} }
	lo, hi, top := P(40, 40.5, 41), P(44, 45, 46), P(50, 50.5, 51)
	shared := []Point{p(64, lo), p(128, top), p(256, hi), p(768, hi)}
	notShared := []Point{p(64, lo), p(128, hi), p(256, hi), p(768, top)}
	wantVerdicts(t, "paper-like", EmbeddingClaims(shared, notShared), Held, Held)
	shared[0] = p(64, P(60, 61, 62))
	notShared[3] = p(768, P(30, 31, 32))
	wantVerdicts(t, "reversed", EmbeddingClaims(shared, notShared), NotHeld, NotHeld)
	// A plateau where every point is equal: never won by the tie.
	flat := P(7.05, 7.05, 7.05)
	plat := []Point{p(64, flat), p(128, flat), p(256, flat), p(768, flat)}
	wantVerdicts(t, "plateau", EmbeddingClaims(plat, plat), Inconclusive, Inconclusive)
	// E=128 beats 64 but ties 256: not best.
	wantVerdicts(t, "tie with a neighbour", EmbeddingClaims([]Point{p(64, lo), p(128, hi), p(256, hi), p(768, lo)}, nil), Inconclusive, NotEnough)
	// Missing points are named; one seed (was held) is inconclusive.
	c := EmbeddingClaims([]Point{p(64, lo), p(128, top), p(768, hi)}, []Point{p(768, hi)})
	wantVerdicts(t, "256 missing", c, NotEnough, NotEnough)
	if !strings.Contains(c[0].Why, "E=256") || !strings.Contains(c[1].Why, "E=64") {
		t.Errorf("missing points not named: %q / %q", c[0].Why, c[1].Why)
	}
	one := []Point{p(64, S(40)), p(128, S(42)), p(256, S(41)), p(768, S(41.5))}
	wantVerdicts(t, "one seed", EmbeddingClaims(one, one), Inconclusive, Inconclusive)
}

func TestXlargeClaims(t *testing.T) {
	wantVerdicts(t, "degrades", XlargeClaims(P(40, 41, 42), P(30, 31, 32), P(2.0, 2.1, 2.0), P(2.5, 2.6, 2.6)), Held, Held)
	wantVerdicts(t, "improves", XlargeClaims(P(30, 31, 32), P(40, 41, 42), P(2.5, 2.6, 2.6), P(2.0, 2.1, 2.0)), NotHeld, NotHeld)
	wantVerdicts(t, "no xlarge", XlargeClaims(P(50, 51, 52), S(), P(2.5), S()), NotEnough, NotEnough)
	wantVerdicts(t, "one seed (was held)", XlargeClaims(S(60), S(50), S(2.0), S(2.5)), Inconclusive, Inconclusive)
	// Every xlarge seed diverged: accuracy 0 each, degradation held, and the verdict says so.
	xl := Seeded("", []int64{}, nil)
	for s := int64(1); s <= 3; s++ {
		xl = diverged(xl, s, 100*int(s))
	}
	c := XlargeClaims(P(40, 41, 42), xl, P(2.0, 2.1, 2.0), Sample{Lost: xl.Lost})
	wantVerdicts(t, "xlarge diverged", c, Held, NotEnough)
	if !strings.Contains(c[0].VerdictText(), "diverged seeds counted as degradation (accuracy 0): 3 BERT-xlarge") {
		t.Errorf("verdict does not say why: %q", c[0].VerdictText())
	}
	// One diverged seed of three: counted, but not enough to decide.
	c = XlargeClaims(P(40, 41, 42), diverged(P(30, 31), 3, 812), P(2.0, 2.1, 2.0), P(2.5, 2.6))
	if c[0].Verdict != Inconclusive || !strings.Contains(c[0].Why, "1 BERT-xlarge") {
		t.Errorf("one diverged seed: %s", c[0].VerdictText())
	}
}

func transitionRuns(l2, cos [][]float64, onPlateau, noPlateau int) TransitionRuns {
	t := TransitionRuns{L2: l2, Cos: cos, NoPlateau: noPlateau}
	for i := range l2 {
		t.Seeds = append(t.Seeds, int64(i+1))
	}
	t.MLM = P(make([]float64, len(l2))...)
	t.MLM.OnPlateau = onPlateau
	return t
}

func TestTransitionClaims(t *testing.T) {
	bertL2 := [][]float64{{10, 4, 9, 3}, {10.5, 4.2, 9.3, 3.1}, {9.8, 3.9, 8.8, 3}}
	albertL2 := [][]float64{{6, 5, 4.5, 4}, {6.5, 5.2, 4.6, 4.1}, {5.8, 5, 4.4, 4}}
	bertCos := [][]float64{{40, 20, 35, 15}, {42, 21, 36, 14}, {39, 19, 33, 16}}
	albertCos := [][]float64{{25, 22, 20, 19}, {26, 22, 21, 19.5}, {24, 21, 20, 18}}
	bert, albert := transitionRuns(bertL2, bertCos, 0, 0), transitionRuns(albertL2, albertCos, 0, 0)
	wantVerdicts(t, "smooth ALBERT, trained", TransitionClaims(bert, albert), Held, Held, Held)
	wantVerdicts(t, "rough ALBERT", TransitionClaims(albert, bert), NotHeld, NotHeld, NotHeld)

	c := TransitionClaims(bert, transitionRuns(albertL2, albertCos, 2, 0))
	wantVerdicts(t, "ALBERT on the plateau", c, Inconclusive, Inconclusive, Inconclusive)
	if !strings.Contains(c[0].Why, "ALBERT: 2 of 3 runs still on the unigram plateau") || c[0].Needs == "" {
		t.Errorf("plateau reason %q", c[0].Why)
	}
	c = TransitionClaims(transitionRuns(bertL2, bertCos, 0, 3), albert)
	wantVerdicts(t, "no plateau measurement", c, Inconclusive, Inconclusive, Inconclusive)
	if !strings.Contains(c[0].Why, "no plateau check") {
		t.Errorf("no plateau reason %q", c[0].Why)
	}
	// ALBERT alone (an untrained model passed the old 1° threshold).
	wantVerdicts(t, "ALBERT alone", TransitionClaims(TransitionRuns{}, albert), NotEnough, NotEnough, NotEnough)
	wantVerdicts(t, "one seed each (was held)", TransitionClaims(transitionRuns(bertL2[:1], bertCos[:1], 0, 0), transitionRuns(albertL2[:1], albertCos[:1], 0, 0)),
		Inconclusive, Inconclusive, Inconclusive)
	if r := Roughness([]float64{1, 3, 2}); r != 1.5 {
		t.Errorf("Roughness = %v, want 1.5", r)
	}
}

func TestDepthWidthDropoutClaims(t *testing.T) {
	p := func(x float64, s Sample) Point { return Point{X: x, Sample: s} }
	lo, mid, hi := P(30, 31, 32), P(44, 45, 46), P(47, 47.5, 48)
	wantVerdicts(t, "depth paper-like", DepthClaims([]Point{p(1, lo), p(12, mid), p(24, hi), p(48, mid)}), Held, Held)
	wantVerdicts(t, "depth hurts", DepthClaims([]Point{p(1, hi), p(24, lo), p(48, mid)}), NotHeld, NotHeld)
	// "deeper" needs the intended points L=1 and L=24, not any two.
	c := DepthClaims([]Point{p(3, lo), p(12, hi)})
	wantVerdicts(t, "depth other points", c, NotEnough, NotEnough)
	wantVerdicts(t, "depth one seed (was held)", DepthClaims([]Point{p(1, S(30)), p(12, S(45)), p(24, S(47)), p(48, S(46))}), Inconclusive, Inconclusive)
	wantVerdicts(t, "width paper-like", WidthClaims([]Point{p(1024, lo), p(4096, hi), p(6144, mid)}), Held, Held)
	wantVerdicts(t, "width reversed", WidthClaims([]Point{p(1024, hi), p(4096, mid), p(6144, hi)}), NotHeld, NotHeld)
	wantVerdicts(t, "width missing 6144", WidthClaims([]Point{p(1024, lo), p(4096, hi)}), Held, NotEnough)
	wantVerdicts(t, "dropout", DropoutClaims(lo, mid), Held)
	wantVerdicts(t, "dropout reversed", DropoutClaims(mid, lo), NotHeld)
	wantVerdicts(t, "dropout one seed (was held)", DropoutClaims(S(40), S(41)), Inconclusive)
	wantVerdicts(t, "dropout none", DropoutClaims(S(), S(41)), NotEnough)
}

// Lost runs with the same status are counted together; each diverged step
// stays its own entry.
func TestLostTextCounts(t *testing.T) {
	ls := []Lost{{Status: results.StatusPending}, {Status: results.StatusRunning}, {Status: results.StatusPending}}
	if got, want := lostText(ls), "2 pending, 1 running"; got != want {
		t.Errorf("lostText = %q, want %q", got, want)
	}
}

// BERT's heads (H/64) and FFN (4H) follow H: at H 128 and 256 their values
// differ but their factors against the paper do not, so the two rows are one
// scale group and their claims pair (xlarge's BERT-large vs BERT-xlarge). A
// key set apart by its factor (steps) still splits.
func TestScaleGroupsPairRowsWhoseDerivedKeysFollowTheSweep(t *testing.T) {
	run := func(seed int64, h, steps int) RunData {
		return RunData{
			Run: results.Run{Seed: seed, Profile: "cpu"},
			Config: map[string]any{"model": map[string]any{
				"hidden_size": h, "intermediate_size": 4 * h, "num_heads": h / 64},
				"train": map[string]any{"steps": steps}},
			Scale: Scale{
				Point: map[string]any{"model.hidden_size": h},
				Factors: map[string]float64{
					"model.intermediate_size": 0.125, "model.num_heads": 0.125,
					"train.steps": float64(steps) / 125000},
			},
		}
	}
	gs := ScaleGroups([]RunData{run(1, 128, 800), run(1, 256, 800), run(2, 128, 800), run(2, 256, 800)})
	if len(gs) != 1 || len(gs[0].Runs) != 4 || gs[0].Label != "cpu" {
		t.Fatalf("got %d groups, want one labelled cpu with 4 runs: %+v", len(gs), gs)
	}
	gs = ScaleGroups([]RunData{run(1, 128, 800), run(1, 256, 800), run(1, 128, 1600), run(1, 256, 1600)})
	if len(gs) != 2 || gs[0].Label != "cpu train.steps=800" || gs[1].Label != "cpu train.steps=1600" {
		var ls []string
		for _, g := range gs {
			ls = append(ls, g.Label)
		}
		t.Fatalf("steps 800 and 1600 must be two groups labelled by their steps, got %q", ls)
	}
}
