package model

import (
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
)

// Embedding is ALBERT's factorized embedding: the word, position and
// token-type tables are E wide (V×E instead of V×H), normalised in E space,
// and projected to H by a dense layer only when E ≠ H — the official rule,
// without which the paper's E = 768 all-shared count (31M) does not hold.
type Embedding struct {
	Word, Position, TokenType *ts.Tensor // V×E, P×E, T×E
	LNWeight, LNBias          *ts.Tensor // E
	ProjWeight, ProjBias      *ts.Tensor // H×E, H; nil when E = H
	cfg                       Config
}

func newEmbedding(b *builder, c Config) *Embedding {
	V, E, H := int64(c.VocabSize), int64(c.EmbeddingSize), int64(c.HiddenSize)
	e := &Embedding{cfg: c}
	e.Word = b.normal("embeddings/word", V, E)
	e.Position = b.normal("embeddings/position", int64(c.MaxPositions), E)
	e.TokenType = b.normal("embeddings/token_type", int64(c.TypeVocabSize), E)
	e.LNWeight, e.LNBias = b.layerNorm("embeddings/layer_norm", E)
	if E != H {
		e.ProjWeight, e.ProjBias = b.dense("embeddings/projection", H, E)
	}
	return e
}

// Forward maps ids [B,S] and segment ids [B,S] to hidden states [B,S,H].
func (e *Embedding) Forward(s *backend.Scope, ids, segments *ts.Tensor, train bool) *ts.Tensor {
	seq := ids.MustSize()[1]
	x := s.T(ts.MustEmbedding(e.Word, ids, -1, false, false))
	x = s.T(x.MustAdd(s.T(ts.MustEmbedding(e.TokenType, segments, -1, false, false)), false))
	x = s.T(x.MustAdd(s.T(e.Position.MustNarrow(0, 0, seq, false)), false)) // [S,E] broadcasts over B
	x = layerNorm(s, x, e.LNWeight, e.LNBias, e.cfg.LayerNormEps)
	x = dropout(s, x, e.cfg.HiddenDropout, train)
	if e.ProjWeight != nil {
		x = linear(s, x, e.ProjWeight, e.ProjBias)
	}
	return x
}
