package table

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Verdict is the outcome of checking one of the paper's claims on our runs.
type Verdict string

const (
	Held      Verdict = "held"
	NotHeld   Verdict = "did not hold"
	NotEnough Verdict = "not enough runs"
)

// Sample is one quantity measured over seeds (one value per run).
type Sample struct {
	Label  string
	Values []float64 // NaNs are dropped by NewSample
}

// NewSample keeps the finite values.
func NewSample(label string, vals ...float64) Sample {
	s := Sample{Label: label}
	for _, v := range vals {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			s.Values = append(s.Values, v)
		}
	}
	return s
}

// N is the number of values.
func (s Sample) N() int { return len(s.Values) }

// Mean is the average (NaN when empty).
func (s Sample) Mean() float64 {
	if len(s.Values) == 0 {
		return math.NaN()
	}
	t := 0.0
	for _, v := range s.Values {
		t += v
	}
	return t / float64(len(s.Values))
}

// Std is the sample standard deviation (n−1); 0 for fewer than two values.
func (s Sample) Std() float64 {
	n := len(s.Values)
	if n < 2 {
		return 0
	}
	m, t := s.Mean(), 0.0
	for _, v := range s.Values {
		t += (v - m) * (v - m)
	}
	return math.Sqrt(t / float64(n-1))
}

// Format prints "mean ± std (n=k)" with prec decimals, or "—" if empty.
func (s Sample) Format(prec int) string {
	switch s.N() {
	case 0:
		return "—"
	case 1:
		return fmt.Sprintf("%.*f (n=1)", prec, s.Mean())
	}
	return fmt.Sprintf("%.*f ± %.*f (n=%d)", prec, s.Mean(), prec, s.Std(), s.N())
}

func (s Sample) named() string {
	if s.Label == "" {
		return s.Format(2)
	}
	return s.Label + " " + s.Format(2)
}

// Claim is one of the paper's qualitative claims checked on our numbers.
type Claim struct {
	Claim   string  // the statement, as the paper makes it
	Paper   string  // the paper's evidence
	Verdict Verdict // held / did not hold / not enough runs
	Detail  string  // our numbers with their seed spread
	Noise   bool    // held or not, the difference is within the seed spread (needs n >= 2)
}

func (c Claim) String() string {
	s := fmt.Sprintf("[%s] %s: %s (paper: %s)", c.Verdict, c.Claim, c.Detail, c.Paper)
	if c.Noise {
		s += "; the difference is within the seed spread"
	}
	return s
}

// spread is the combined seed spread of a difference of two means, or 0
// when either side has a single run (unknown spread).
func spread(a, b Sample) float64 {
	if a.N() < 2 || b.N() < 2 {
		return 0
	}
	return math.Sqrt(a.Std()*a.Std()/float64(a.N()) + b.Std()*b.Std()/float64(b.N()))
}

// Greater checks mean(a) − mean(b) > margin: "a is better than b" (margin
// 0) or "a ≫ b" (margin > 0). It needs a run on each side.
func Greater(claim, paperNote string, a, b Sample, margin float64) Claim {
	c := Claim{Claim: claim, Paper: paperNote}
	if a.N() == 0 || b.N() == 0 {
		c.Verdict = NotEnough
		c.Detail = fmt.Sprintf("%s vs %s", a.named(), b.named())
		return c
	}
	d := a.Mean() - b.Mean()
	c.Detail = fmt.Sprintf("%s vs %s: difference %+.2f", a.named(), b.named(), d)
	if margin > 0 {
		c.Detail += fmt.Sprintf(" (needs > %.1f)", margin)
	}
	c.Verdict = NotHeld
	if d > margin {
		c.Verdict = Held
	}
	if sp := spread(a, b); sp > 0 {
		c.Detail += fmt.Sprintf(", seed spread ±%.2f", sp)
		c.Noise = math.Abs(d-margin) < sp
	}
	return c
}

// Near checks |mean(a) − target| <= tol: "a is at chance".
func Near(claim, paperNote string, a Sample, target, tol float64) Claim {
	c := Claim{Claim: claim, Paper: paperNote}
	if a.N() == 0 {
		c.Verdict = NotEnough
		c.Detail = a.named()
		return c
	}
	d := a.Mean() - target
	c.Detail = fmt.Sprintf("%s: %+.2f from %.1f (tolerance %.1f)", a.named(), d, target, tol)
	c.Verdict = NotHeld
	if math.Abs(d) <= tol {
		c.Verdict = Held
	}
	if a.N() >= 2 {
		se := a.Std() / math.Sqrt(float64(a.N()))
		c.Detail += fmt.Sprintf(", seed spread ±%.2f", se)
		c.Noise = math.Abs(math.Abs(d)-tol) < se
	}
	return c
}

// Point is a sample at a value of a swept axis (the paper's value).
type Point struct {
	X float64
	Sample
}

func sortPoints(ps []Point) []Point {
	out := append([]Point(nil), ps...)
	sort.Slice(out, func(i, j int) bool { return out[i].X < out[j].X })
	return out
}

func withData(ps []Point) []Point {
	var out []Point
	for _, p := range sortPoints(ps) {
		if p.N() > 0 {
			out = append(out, p)
		}
	}
	return out
}

func listPoints(ps []Point, axis string) string {
	var parts []string
	for _, p := range ps {
		parts = append(parts, fmt.Sprintf("%s=%g: %s", axis, p.X, p.Format(2)))
	}
	return strings.Join(parts, "; ")
}

// Best checks that the point at x = want has the highest mean among at
// least two measured points.
func Best(claim, paperNote, axis string, ps []Point, want float64) Claim {
	c := Claim{Claim: claim, Paper: paperNote}
	ps = withData(ps)
	c.Detail = listPoints(ps, axis)
	var at *Point
	for i := range ps {
		if ps[i].X == want {
			at = &ps[i]
		}
	}
	if len(ps) < 2 || at == nil {
		c.Verdict = NotEnough
		if c.Detail == "" {
			c.Detail = "no runs"
		}
		return c
	}
	best := ps[0]
	runnerUp := math.Inf(-1)
	for _, p := range ps {
		if p.Mean() > best.Mean() {
			best = p
		}
	}
	for _, p := range ps {
		if p.X != best.X && p.Mean() > runnerUp {
			runnerUp = p.Mean()
		}
	}
	c.Verdict = NotHeld
	if best.X == want {
		c.Verdict = Held
	}
	c.Detail += fmt.Sprintf(" → best %s=%g", axis, best.X)
	var others []Sample
	for _, p := range ps {
		if p.X != best.X {
			others = append(others, p.Sample)
		}
	}
	// Within noise when the best and the runner-up are closer than their spread.
	for _, o := range others {
		if o.Mean() == runnerUp {
			if sp := spread(best.Sample, o); sp > 0 && best.Mean()-o.Mean() < sp {
				c.Noise = true
			}
		}
	}
	return c
}

// Increases checks that the largest x has a higher mean than the smallest
// (the paper's "improves with E, but not by much"); the detail lists every
// point so a non-monotone curve is visible.
func Increases(claim, paperNote, axis string, ps []Point) Claim {
	c := Claim{Claim: claim, Paper: paperNote}
	ps = withData(ps)
	c.Detail = listPoints(ps, axis)
	if len(ps) < 2 {
		c.Verdict = NotEnough
		if c.Detail == "" {
			c.Detail = "no runs"
		}
		return c
	}
	lo, hi := ps[0], ps[len(ps)-1]
	g := Greater(claim, paperNote, hi.Sample, lo.Sample, 0)
	c.Verdict, c.Noise = g.Verdict, g.Noise
	mono := true
	for i := 1; i < len(ps); i++ {
		mono = mono && ps[i].Mean() >= ps[i-1].Mean()
	}
	c.Detail += fmt.Sprintf(" → %s=%g vs %s=%g: %+.2f", axis, hi.X, axis, lo.X, hi.Mean()-lo.Mean())
	if !mono {
		c.Detail += " (not monotone)"
	}
	return c
}

// All combines sub-checks of one claim made at several points (e.g. at
// E = 768 and E = 128): held if every measured point held, not enough runs
// if none could be checked.
func All(claim, paperNote string, subs []Claim, labels []string) Claim {
	c := Claim{Claim: claim, Paper: paperNote, Verdict: NotEnough}
	var parts []string
	checked := 0
	held := true
	for i, s := range subs {
		parts = append(parts, fmt.Sprintf("%s: %s [%s]", labels[i], s.Detail, s.Verdict))
		if s.Verdict == NotEnough {
			continue
		}
		checked++
		held = held && s.Verdict == Held
		c.Noise = c.Noise || s.Noise
	}
	c.Detail = strings.Join(parts, "; ")
	if checked > 0 {
		c.Verdict = NotHeld
		if held {
			c.Verdict = Held
		}
	}
	return c
}

// Roughness is how much a per-layer quantity jumps between consecutive
// layers: the mean absolute difference (0 for a flat or single-layer
// curve). A smoother transition curve has a smaller roughness.
func Roughness(perLayer []float64) float64 {
	if len(perLayer) < 2 {
		return math.NaN()
	}
	t := 0.0
	for i := 1; i < len(perLayer); i++ {
		t += math.Abs(perLayer[i] - perLayer[i-1])
	}
	return t / float64(len(perLayer)-1)
}

// The claims of each ablation, over numbers. Accuracies are in percent.

// SentenceClaims: v6 Table 5. nspOfSOP is the NSP accuracy of SOP-trained
// models, sopOfNSP the SOP accuracy of NSP-trained models.
func SentenceClaims(nspOfSOP, sopOfNSP Sample) []Claim {
	nspOfSOP.Label, sopOfNSP.Label = "SOP-trained on NSP", "NSP-trained on SOP"
	return []Claim{
		Greater("SOP-trained model's NSP accuracy ≫ NSP-trained model's SOP accuracy (by > 10 points)",
			"78.9 vs 52.0 (v6 Table 5)", nspOfSOP, sopOfNSP, 10),
		Near("NSP-trained model's SOP accuracy is near chance (50 ± 5)",
			"52.0, \"about random\" (v6 Table 5)", sopOfNSP, 50, 5),
	}
}

// SharingPoint is one embedding size of v6 Table 4: MLM accuracy of each
// sharing strategy.
type SharingPoint struct {
	E                         float64 // the paper's E
	All, Attention, FFN, None Sample
}

// SharingClaims: v6 Table 4, on MLM accuracy.
func SharingClaims(pts []SharingPoint) []Claim {
	sort.Slice(pts, func(i, j int) bool { return pts[i].E > pts[j].E })
	var a, b []Claim
	var labels []string
	for _, p := range pts {
		labels = append(labels, fmt.Sprintf("E=%g", p.E))
		p.All.Label, p.None.Label, p.FFN.Label, p.Attention.Label = "all-shared", "not-shared", "shared-FFN", "shared-attention"
		a = append(a, Greater("", "", p.None, p.All, 0))
		b = append(b, Greater("", "", p.Attention, p.FFN, 0))
	}
	return []Claim{
		All("all-shared < not-shared (MLM accuracy)", "Avg 79.8 vs 82.3 at E=768, 80.1 vs 81.6 at E=128 (v6 Table 4)", a, labels),
		All("shared-FFN hurts more than shared-attention (MLM accuracy: shared-FFN < shared-attention)",
			"Avg 79.5 vs 81.6 at E=768, 80.2 vs 81.7 at E=128 (v6 Table 4)", b, labels),
	}
}

// EmbeddingClaims: v6 Table 3, on MLM accuracy by the paper's E.
func EmbeddingClaims(allShared, notShared []Point) []Claim {
	return []Claim{
		Best("E = 128 is best among all-shared (MLM accuracy)", "all-shared Avg 79.0 / 80.1 / 79.6 / 79.8 at E = 64 / 128 / 256 / 768 (v6 Table 3)",
			"E", allShared, 128),
		Increases("not-shared improves with E (MLM accuracy)", "not-shared Avg 81.3 / 81.7 / 81.8 / 82.3 at E = 64 / 128 / 256 / 768 (v6 Table 3)",
			"E", notShared),
	}
}

// XlargeClaims: v1 Table 1 / Figure 1. Accuracies of BERT-large and
// BERT-xlarge; losses are held-out MLM losses.
func XlargeClaims(largeAcc, xlargeAcc, largeLoss, xlargeLoss Sample) []Claim {
	largeAcc.Label, xlargeAcc.Label, largeLoss.Label, xlargeLoss.Label = "BERT-large", "BERT-xlarge", "BERT-large", "BERT-xlarge"
	return []Claim{
		Greater("BERT-xlarge degrades vs BERT-large (lower held-out MLM accuracy)",
			"\"the larger model has lower masked LM accuracy\" (v1 Figure 1); RACE 73.9 vs 54.3 (v1 Table 1)", largeAcc, xlargeAcc, 0),
		Greater("BERT-xlarge has a higher held-out MLM loss than BERT-large",
			"implied by v1 Figure 1 (no curve values transcribed)", xlargeLoss, largeLoss, 0),
	}
}

// TransitionClaims: v6 Figure 1. Each slice holds one run's per-layer
// values (in layer order).
func TransitionClaims(bertL2, albertL2, bertCos, albertCos [][]float64) []Claim {
	rough := func(label string, runs [][]float64) Sample {
		var v []float64
		for _, r := range runs {
			v = append(v, Roughness(r))
		}
		return NewSample(label, v...)
	}
	floor := func(label string, runs [][]float64) Sample {
		var v []float64
		for _, r := range runs {
			if len(r) == 0 {
				continue
			}
			m := math.Inf(1)
			for _, x := range r {
				m = math.Min(m, x)
			}
			v = append(v, m)
		}
		return NewSample(label, v...)
	}
	return []Claim{
		Greater("ALBERT's layer transitions are smoother than BERT's: L2 distance (mean |Δ| between consecutive layers)",
			"v6 Figure 1: \"the transitions from layer to layer are much smoother for ALBERT than for BERT\"",
			rough("BERT roughness", bertL2), rough("ALBERT roughness", albertL2), 0),
		Greater("ALBERT's layer transitions are smoother than BERT's: cosine angle (mean |Δ| in degrees between consecutive layers)",
			"v6 Figure 1", rough("BERT roughness", bertCos), rough("ALBERT roughness", albertCos), 0),
		Greater("ALBERT's transitions do not converge to 0 (smallest per-layer cosine angle > 1°)",
			"v6 Figure 1: \"do not converge to 0 even after 24 layers\"", floor("ALBERT min angle", albertCos), NewSample("threshold", 1), 0),
	}
}

// DepthClaims: v6 Table 11, MLM accuracy by the paper's number of layers.
func DepthClaims(ps []Point) []Claim {
	at := func(x float64) Sample {
		for _, p := range ps {
			if p.X == x {
				p.Label = fmt.Sprintf("L=%g", x)
				return p.Sample
			}
		}
		return Sample{Label: fmt.Sprintf("L=%g", x)}
	}
	d := withData(ps)
	var lo, hi Sample
	if len(d) >= 2 {
		lo, hi = d[0].Sample, d[len(d)-1].Sample
		lo.Label, hi.Label = fmt.Sprintf("L=%g", d[0].X), fmt.Sprintf("L=%g", d[len(d)-1].X)
	}
	return []Claim{
		Greater("deeper is better: the deepest measured ALBERT-large beats the shallowest (MLM accuracy)",
			"Avg 52.9 at L=1 to 82.1 at L=24 (v6 Table 11)", hi, lo, 0),
		Greater("gains saturate: 48 layers is no better than 24 (MLM accuracy, L=24 > L=48)",
			"Avg 82.1 at L=24 vs 81.8 at L=48 (v6 Table 11)", at(24), at(48), 0),
	}
}

// WidthClaims: v6 Table 12, MLM accuracy by the paper's hidden size.
func WidthClaims(ps []Point) []Claim {
	at := func(x float64) Sample {
		for _, p := range ps {
			if p.X == x {
				p.Label = fmt.Sprintf("H=%g", x)
				return p.Sample
			}
		}
		return Sample{Label: fmt.Sprintf("H=%g", x)}
	}
	return []Claim{
		Greater("wider helps up to H = 4096 (MLM accuracy, H=4096 > H=1024)",
			"Avg 71.2 at H=1024 vs 76.3 at H=4096 (v6 Table 12)", at(4096), at(1024), 0),
		Greater("too wide degrades: H = 6144 is worse than H = 4096 (MLM accuracy)",
			"Avg 76.3 at H=4096 vs 74.0 at H=6144 (v6 Table 12)", at(4096), at(6144), 0),
	}
}

// DropoutClaims: v6 Table 8 / Figure 2b, held-out MLM accuracy.
func DropoutClaims(with, without Sample) []Claim {
	with.Label, without.Label = "with dropout", "without dropout"
	return []Claim{
		Greater("removing dropout helps (held-out MLM accuracy without > with)",
			"Avg 90.7 vs 90.4 (v6 Table 8); higher dev MLM accuracy without dropout (v6 Figure 2b)", without, with, 0),
	}
}
