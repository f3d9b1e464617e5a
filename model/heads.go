package model

import (
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
)

// Pooler is dense + tanh on the [CLS] hidden state.
type Pooler struct{ W, B *ts.Tensor }

func newPooler(b *builder, c Config) *Pooler {
	p := &Pooler{}
	p.W, p.B = b.dense("pooler", int64(c.HiddenSize), int64(c.HiddenSize))
	return p
}

// Forward maps hidden [B,S,H] to pooled [B,H].
func (p *Pooler) Forward(s *backend.Scope, hidden *ts.Tensor) *ts.Tensor {
	cls := s.T(hidden.MustSelect(1, 0, false))
	return s.T(linear(s, cls, p.W, p.B).MustTanh(false))
}

// MLMHead predicts masked tokens: dense H→E + GELU + LayerNorm(E), then the
// decoder, which is the word-embedding table itself (tied), plus a V bias.
// It runs only at the masked positions, not over the whole sequence.
type MLMHead struct {
	W, B, LNWeight, LNBias, OutBias *ts.Tensor
	Decoder                         *ts.Tensor // the V×E word table (same tensor)
	cfg                             Config
}

func newMLMHead(b *builder, c Config, word *ts.Tensor) *MLMHead {
	E := int64(c.EmbeddingSize)
	h := &MLMHead{cfg: c, Decoder: word}
	h.W, h.B = b.dense("mlm/transform", E, int64(c.HiddenSize))
	h.LNWeight, h.LNBias = b.layerNorm("mlm/layer_norm", E)
	h.OutBias = b.zeros("mlm/output_bias", int64(c.VocabSize))
	return h
}

// Forward gathers hidden [B,S,H] at positions [B,P] and returns logits [B·P,V].
func (h *MLMHead) Forward(s *backend.Scope, hidden, positions *ts.Tensor) *ts.Tensor {
	size := hidden.MustSize()
	B, S, H := size[0], size[1], size[2]
	P := positions.MustSize()[1]
	offsets := s.T(s.T(ts.MustArange(ts.IntScalar(B), positions.DType(), positions.MustDevice())).MustMulScalar(ts.IntScalar(S), false))
	flat := s.T(s.T(positions.MustAdd(s.T(offsets.MustUnsqueeze(1, false)), false)).MustView([]int64{B * P}, false))
	x := s.T(s.T(hidden.MustView([]int64{B * S, H}, false)).MustIndexSelect(0, flat, false)) // [B·P,H]
	x = linear(s, x, h.W, h.B)
	x = s.T(x.MustGelu("tanh", false))
	x = layerNorm(s, x, h.LNWeight, h.LNBias, h.cfg.LayerNormEps)
	return linear(s, x, h.Decoder, h.OutBias) // x·Wᵀ + b with W the V×E word table
}

// SentenceHead is the 2-way classifier on the pooled output, trained as NSP
// or SOP depending on the pairs it is given (label 1 = random / swapped).
type SentenceHead struct{ W, B *ts.Tensor }

func newSentenceHead(b *builder, c Config) *SentenceHead {
	h := &SentenceHead{}
	h.W, h.B = b.dense("sentence", 2, int64(c.HiddenSize))
	return h
}

// Forward maps pooled [B,H] to logits [B,2].
func (h *SentenceHead) Forward(s *backend.Scope, pooled *ts.Tensor) *ts.Tensor {
	return linear(s, pooled, h.W, h.B)
}
