package model

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
)

func tiny(sharing Sharing, e int) Config {
	return Config{VocabSize: 50, EmbeddingSize: e, HiddenSize: 16, NumLayers: 3, NumHeads: 2,
		MaxPositions: 12, Sharing: sharing, SentenceHead: true}.Resolve()
}

func build(t *testing.T, c Config, seed int64) *Model {
	t.Helper()
	if err := backend.Seed(seed); err != nil {
		t.Fatal(err)
	}
	m, err := New(c, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func ints(t *testing.T, v []int64, shape ...int64) *ts.Tensor {
	t.Helper()
	x, err := ts.OfSlice(v)
	if err != nil {
		t.Fatal(err)
	}
	return x.MustView(shape, true)
}

// inputs: B=2, S=6; the second sequence has two padding positions.
func inputs(t *testing.T, padIDs ...int64) Inputs {
	p1, p2 := int64(0), int64(0)
	if len(padIDs) == 2 {
		p1, p2 = padIDs[0], padIDs[1]
	}
	return Inputs{
		IDs:             ints(t, []int64{2, 7, 9, 3, 11, 3, 2, 5, 8, 3, p1, p2}, 2, 6),
		Segments:        ints(t, []int64{0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0}, 2, 6),
		Mask:            ints(t, []int64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, 2, 6),
		MaskedPositions: ints(t, []int64{1, 4, 2, 0}, 2, 2),
	}
}

func TestOutputShapesForEverySharingMode(t *testing.T) {
	defer lockThread()()
	for _, sh := range Sharings {
		for _, e := range []int{8, 16} {
			m := build(t, tiny(sh, e), 1)
			var s backend.Scope
			out := m.Forward(&s, inputs(t), true, true)
			check := func(name string, x *ts.Tensor, want ...int64) {
				if got := x.MustSize(); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s E=%d: %s shape %v, want %v", sh, e, name, got, want)
				}
			}
			check("hidden", out.Hidden, 2, 6, 16)
			check("mlm logits", out.MLMLogits, 4, 50)
			check("sentence logits", out.SentenceLogits, 2, 2)
			if len(out.States) != 4 {
				t.Errorf("%s: %d hidden states, want L+1 = 4", sh, len(out.States))
			}
			s.Free()
		}
	}
}

func TestSharingModesShareTheRightTensors(t *testing.T) {
	defer lockThread()()
	want := map[Sharing][2]int{ShareAll: {1, 1}, ShareAttention: {1, 3}, ShareFFN: {3, 1}, ShareNone: {3, 3}}
	for sh, w := range want {
		m := build(t, tiny(sh, 8), 1)
		atts, ffns := map[*Attention]bool{}, map[*FFN]bool{}
		qs := map[*ts.Tensor]bool{}
		for _, layer := range m.Encoder.Layers {
			for _, b := range layer {
				atts[b.Attention], ffns[b.FFN] = true, true
				qs[b.Attention.QW] = true
			}
		}
		if len(atts) != w[0] || len(ffns) != w[1] || len(qs) != w[0] {
			t.Errorf("%s: %d attention and %d FFN sets, want %d and %d", sh, len(atts), len(ffns), w[0], w[1])
		}
	}
}

// A shared tensor is one tensor used by every layer: its gradient is the
// sum of the gradients each layer would give its own copy. Build the
// not-shared model with every layer a copy of the shared weights: outputs
// match, and the shared gradient equals the sum of the copies' gradients.
func TestSharedTensorAccumulatesGradientsFromAllLayers(t *testing.T) {
	defer lockThread()()
	for _, sh := range []Sharing{ShareAll, ShareAttention, ShareFFN} {
		shared := build(t, tiny(sh, 8), 3)
		plain := build(t, tiny(ShareNone, 8), 4)
		byName := map[string]*ts.Tensor{}
		for _, p := range shared.Params {
			byName[p.Name] = p.Tensor
		}
		// map each not-shared tensor to the shared one it copies
		source := func(name string) string {
			if !strings.HasPrefix(name, "encoder/layer_") {
				return name
			}
			parts := strings.SplitN(name, "/", 4) // encoder, layer_l, attention|ffn, rest
			var l int
			fmt.Sscanf(parts[1], "layer_%d", &l)
			att, ffn := shared.Config.Block(l, 0)
			if parts[2] == "attention" {
				return att + "/" + parts[3]
			}
			return ffn + "/" + parts[3]
		}
		backend.NoGrad(func() {
			for _, p := range plain.Params {
				p.Tensor.Copy_(byName[source(p.Name)])
			}
		})
		var s backend.Scope
		in := inputs(t)
		a := shared.Forward(&s, in, false, false)
		b := plain.Forward(&s, in, false, false)
		if d := maxAbsDiff(a.Hidden, b.Hidden); d > 1e-5 {
			t.Fatalf("%s: outputs differ by %g", sh, d)
		}
		for _, out := range []Outputs{a, b} {
			loss := s.T(s.T(out.Hidden.MustSum(gotch.Float, false)).MustAdd(s.T(out.MLMLogits.MustSum(gotch.Float, false)), false))
			loss.MustBackward()
		}
		sum := map[string]*ts.Tensor{}
		for _, p := range plain.Params {
			src := source(p.Name)
			g := s.T(p.Tensor.MustGrad(false))
			if !g.MustDefined() {
				continue // not in the loss (pooler, sentence head)
			}
			if sum[src] == nil {
				sum[src] = s.T(g.MustZerosLike(false))
			}
			sum[src] = s.T(sum[src].MustAdd(g, false))
		}
		att, _ := shared.Config.Block(0, 0)
		if sh == ShareFFN {
			_, att = shared.Config.Block(0, 0)
		}
		name := att + "/" + map[bool]string{true: "query/weight", false: "intermediate/weight"}[sh != ShareFFN]
		g := s.T(byName[name].MustGrad(false))
		if d := maxAbsDiff(g, sum[name]); d > 1e-4 {
			t.Errorf("%s: gradient of shared %s differs from the sum over layers by %g", sh, name, d)
		}
		if n := s.T(g.MustAbs(false)).MustSum(gotch.Float, true).Float64Values()[0]; n == 0 {
			t.Errorf("%s: shared %s got no gradient", sh, name)
		}
		s.Free()
	}
}

func TestProjectionOnlyWhenEDiffersFromH(t *testing.T) {
	defer lockThread()()
	if m := build(t, tiny(ShareAll, 16), 1); m.Embedding.ProjWeight != nil {
		t.Error("E = H built a projection")
	}
	if m := build(t, tiny(ShareAll, 8), 1); m.Embedding.ProjWeight == nil {
		t.Error("E ≠ H built no projection")
	}
}

func TestMLMDecoderIsTheWordTable(t *testing.T) {
	defer lockThread()()
	m := build(t, tiny(ShareAll, 8), 1)
	if m.MLM.Decoder != m.Embedding.Word {
		t.Fatal("MLM decoder is not the word-embedding tensor")
	}
	ve := 0
	for _, p := range m.Params {
		if sz := p.Tensor.MustSize(); len(sz) == 2 && sz[0] == 50 && sz[1] == 8 {
			ve++
		}
	}
	if ve != 1 {
		t.Fatalf("%d V×E tensors, want 1 (tied)", ve)
	}
}

func TestPaddingDoesNotChangeRealPositions(t *testing.T) {
	defer lockThread()()
	m := build(t, tiny(ShareNone, 8), 1)
	var s backend.Scope
	defer s.Free()
	a := m.Forward(&s, inputs(t, 0, 0), false, false)
	b := m.Forward(&s, inputs(t, 17, 42), false, false)
	real := func(x *ts.Tensor) *ts.Tensor { return s.T(s.T(x.MustSelect(0, 1, false)).MustNarrow(0, 0, 4, false)) }
	if d := maxAbsDiff(real(a.Hidden), real(b.Hidden)); d > 1e-6 {
		t.Fatalf("padding tokens changed real positions by %g", d)
	}
	if d := maxAbsDiff(s.T(a.Hidden.MustSelect(0, 1, false)), s.T(b.Hidden.MustSelect(0, 1, false))); d == 0 {
		t.Fatal("padding positions themselves did not change: the test checks nothing")
	}
}

func TestFixedSeedGivesIdenticalOutputs(t *testing.T) {
	defer lockThread()()
	var s backend.Scope
	defer s.Free()
	a := build(t, tiny(ShareAll, 8), 5).Forward(&s, inputs(t), false, false)
	b := build(t, tiny(ShareAll, 8), 5).Forward(&s, inputs(t), false, false)
	c := build(t, tiny(ShareAll, 8), 6).Forward(&s, inputs(t), false, false)
	if d := maxAbsDiff(a.Hidden, b.Hidden); d != 0 {
		t.Fatalf("same seed, outputs differ by %g", d)
	}
	if d := maxAbsDiff(a.Hidden, c.Hidden); d == 0 {
		t.Fatal("different seeds, identical outputs")
	}
}

// The count from shapes (used for xxlarge without building it) must equal
// the count of a really built model, tensor by tensor.
func TestShapeCountEqualsBuiltModel(t *testing.T) {
	defer lockThread()()
	grouped := tiny(ShareAll, 8)
	grouped.NumLayers, grouped.NumHiddenGroups, grouped.InnerGroupNum = 4, 2, 2
	noHead := tiny(ShareFFN, 16)
	noHead.SentenceHead = false
	for _, c := range []Config{tiny(ShareAll, 8), tiny(ShareAttention, 8), tiny(ShareFFN, 16), tiny(ShareNone, 16), grouped, noHead} {
		m := build(t, c, 1)
		shapes := map[string]string{}
		for _, p := range c.ParamShapes() {
			shapes[p.Name] = fmt.Sprint(p.Shape)
		}
		if len(shapes) != len(m.Params) {
			t.Errorf("%s: %d tensors from shapes, %d built", describe(c), len(shapes), len(m.Params))
		}
		for _, p := range m.Params {
			if shapes[p.Name] != fmt.Sprint(p.Tensor.MustSize()) {
				t.Errorf("%s: %s built %v, shapes say %s", describe(c), p.Name, p.Tensor.MustSize(), shapes[p.Name])
			}
		}
		if got, want := m.NumParams(), c.Params(); got != want {
			t.Errorf("%s: built %+v, from shapes %+v", describe(c), got, want)
		}
		if int64(m.VarStore.Len()) != int64(len(m.Params)) {
			t.Errorf("%s: VarStore has %d tensors, model lists %d", describe(c), m.VarStore.Len(), len(m.Params))
		}
	}
}

func TestTruncatedNormalStaysWithinTwoSigma(t *testing.T) {
	defer lockThread()()
	backend.Seed(1)
	x := truncatedNormal([]int64{20000}, 0.02, gotch.CPU)
	defer x.MustDrop()
	var sum, sq, mx float64
	v := x.Float64Values()
	for _, f := range v {
		sum += f
		sq += f * f
		mx = math.Max(mx, math.Abs(f))
	}
	n := float64(len(v))
	std := math.Sqrt(sq/n - (sum/n)*(sum/n))
	// a N(0,σ²) truncated at ±2σ has std ≈ 0.88σ
	if mx > 0.04+1e-6 || math.Abs(std-0.88*0.02) > 0.001 || math.Abs(sum/n) > 0.001 {
		t.Fatalf("max %g std %g mean %g", mx, std, sum/n)
	}
}

func maxAbsDiff(a, b *ts.Tensor) float64 {
	d := a.MustSub(b, false)
	defer d.MustDrop()
	m := d.MustAbs(true).MustMax(true)
	defer m.MustDrop()
	return m.Float64Values()[0]
}

func BenchmarkTinyForwardBackward(b *testing.B) {
	backend.Init()
	c := Config{VocabSize: 8000, EmbeddingSize: 64, HiddenSize: 256, NumLayers: 4, NumHeads: 4, MaxPositions: 128, Sharing: ShareAll, SentenceHead: true}
	m, _ := New(c, gotch.CPU)
	ids := make([]int64, 16*128)
	for i := range ids {
		ids[i] = int64(i % 8000)
	}
	x, _ := ts.OfSlice(ids)
	x = x.MustView([]int64{16, 128}, true)
	pos := make([]int64, 16*20)
	for i := range pos {
		pos[i] = int64(i % 128)
	}
	p, _ := ts.OfSlice(pos)
	p = p.MustView([]int64{16, 20}, true)
	ones := x.MustOnesLike(false)
	for i := 0; i < b.N; i++ {
		var s backend.Scope
		out := m.Forward(&s, Inputs{IDs: x, Segments: s.T(x.MustZerosLike(false)), Mask: ones, MaskedPositions: p}, true, false)
		loss := s.T(out.MLMLogits.MustMean(gotch.Float, false))
		loss.MustBackward()
		s.Free()
	}
}

var lockThread = backend.LockThread
