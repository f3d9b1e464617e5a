package table

import (
	"math"
	"testing"
)

func S(v ...float64) Sample { return NewSample("", v...) }

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
			t.Errorf("%s: claim %d (%s) = %s, want %s (%s)", name, i, got[i].Claim, g[i], want[i], got[i].Detail)
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
}

func TestSentenceClaims(t *testing.T) {
	wantVerdicts(t, "paper's numbers", SentenceClaims(S(78.9), S(52.0)), Held, Held)
	wantVerdicts(t, "SOP transfer weak", SentenceClaims(S(58, 60), S(52, 53)), NotHeld, Held)
	wantVerdicts(t, "NSP model solves SOP", SentenceClaims(S(80), S(70)), NotHeld, NotHeld)
	wantVerdicts(t, "no runs", SentenceClaims(S(), S()), NotEnough, NotEnough)
	wantVerdicts(t, "one side only", SentenceClaims(S(80), S()), NotEnough, NotEnough)
	c := SentenceClaims(S(70, 90), S(52, 54))[0] // diff 27, 17 above the margin, spread ≈ 10.05 → clear
	if c.Verdict != Held || c.Noise {
		t.Errorf("clear: %+v", c)
	}
	c = SentenceClaims(S(55, 75), S(50, 52))[0] // diff 14, 4 above the margin, spread ≈ 10.05 → within noise
	if c.Verdict != Held || !c.Noise {
		t.Errorf("noisy: %+v", c)
	}
}

func TestSharingClaims(t *testing.T) {
	pt := func(e, all, att, ffn, none float64) SharingPoint {
		return SharingPoint{E: e, All: S(all), Attention: S(att), FFN: S(ffn), None: S(none)}
	}
	wantVerdicts(t, "paper-like", SharingClaims([]SharingPoint{pt(768, 40, 45, 39, 46), pt(128, 41, 46, 42, 45)}), Held, Held)
	wantVerdicts(t, "fails at one E", SharingClaims([]SharingPoint{pt(768, 40, 45, 39, 46), pt(128, 47, 44, 45, 45)}), NotHeld, NotHeld)
	wantVerdicts(t, "one E measured", SharingClaims([]SharingPoint{pt(768, 40, 45, 39, 46), {E: 128}}), Held, Held)
	wantVerdicts(t, "none", SharingClaims([]SharingPoint{{E: 768}, {E: 128}}), NotEnough, NotEnough)
}

func TestEmbeddingClaims(t *testing.T) {
	p := func(x float64, v ...float64) Point { return Point{X: x, Sample: S(v...)} }
	shared := []Point{p(64, 40), p(128, 42, 43), p(256, 41), p(768, 41.5)}
	notShared := []Point{p(64, 43), p(128, 44), p(768, 45)}
	wantVerdicts(t, "paper-like", EmbeddingClaims(shared, notShared), Held, Held)
	shared[2] = p(256, 44)
	notShared[2] = p(768, 42)
	wantVerdicts(t, "reversed", EmbeddingClaims(shared, notShared), NotHeld, NotHeld)
	wantVerdicts(t, "128 missing", EmbeddingClaims([]Point{p(64, 40), p(256, 41), p(128)}, []Point{p(768, 45)}), NotEnough, NotEnough)
}

func TestXlargeClaims(t *testing.T) {
	wantVerdicts(t, "degrades", XlargeClaims(S(60), S(50), S(2.0), S(2.5)), Held, Held)
	wantVerdicts(t, "improves", XlargeClaims(S(50), S(60), S(2.5), S(2.0)), NotHeld, NotHeld)
	wantVerdicts(t, "no xlarge", XlargeClaims(S(50), S(), S(2.5), S()), NotEnough, NotEnough)
}

func TestTransitionClaims(t *testing.T) {
	bert := [][]float64{{10, 4, 9, 3}}
	albert := [][]float64{{6, 5, 4.5, 4}}
	wantVerdicts(t, "smooth ALBERT", TransitionClaims(bert, albert, [][]float64{{40, 20, 35, 15}}, [][]float64{{25, 22, 20, 19}}), Held, Held, Held)
	wantVerdicts(t, "rough ALBERT, collapsed angle", TransitionClaims(albert, bert, [][]float64{{25, 22, 20, 19}}, [][]float64{{40, 0.5, 35, 15}}), NotHeld, NotHeld, NotHeld)
	wantVerdicts(t, "no runs", TransitionClaims(nil, nil, nil, nil), NotEnough, NotEnough, NotEnough)
	if r := Roughness([]float64{1, 3, 2}); r != 1.5 {
		t.Errorf("Roughness = %v, want 1.5", r)
	}
}

func TestDepthWidthDropoutClaims(t *testing.T) {
	p := func(x float64, v ...float64) Point { return Point{X: x, Sample: S(v...)} }
	wantVerdicts(t, "depth paper-like", DepthClaims([]Point{p(1, 30), p(12, 45), p(24, 47), p(48, 46)}), Held, Held)
	wantVerdicts(t, "depth hurts", DepthClaims([]Point{p(1, 50), p(24, 40), p(48, 45)}), NotHeld, NotHeld)
	wantVerdicts(t, "depth one point", DepthClaims([]Point{p(12, 45)}), NotEnough, NotEnough)
	wantVerdicts(t, "width paper-like", WidthClaims([]Point{p(1024, 40), p(4096, 45), p(6144, 44)}), Held, Held)
	wantVerdicts(t, "width reversed", WidthClaims([]Point{p(1024, 46), p(4096, 45), p(6144, 47)}), NotHeld, NotHeld)
	wantVerdicts(t, "width missing 6144", WidthClaims([]Point{p(1024, 40), p(4096, 45)}), Held, NotEnough)
	wantVerdicts(t, "dropout", DropoutClaims(S(40), S(41)), Held)
	wantVerdicts(t, "dropout reversed", DropoutClaims(S(41, 42), S(40, 40.5)), NotHeld)
	wantVerdicts(t, "dropout none", DropoutClaims(S(), S(41)), NotEnough)
}
