package model

import (
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
)

// Encoder is the stack of L layers with cross-layer parameter sharing.
// Config.Block names the attention and FFN parameter set each layer uses;
// layers that share a set hold the same *Attention or *FFN, so the same
// tensors take part in every such layer and backward accumulates the
// gradients of all of them into one tensor (not copies kept equal).
type Encoder struct {
	Layers [][]Block // per layer, its inner blocks in order
	cfg    Config
}

// Block is one attention+FFN pair as a layer runs it.
type Block struct {
	Attention *Attention
	FFN       *FFN
}

func newEncoder(b *builder, c Config) *Encoder {
	atts := map[string]*Attention{}
	ffns := map[string]*FFN{}
	e := &Encoder{cfg: c}
	for l := 0; l < c.NumLayers; l++ {
		var layer []Block
		for i := 0; i < c.InnerBlocks(); i++ {
			an, fn := c.Block(l, i)
			if atts[an] == nil {
				atts[an] = newAttention(b, an, c)
			}
			if ffns[fn] == nil {
				ffns[fn] = newFFN(b, fn, c)
			}
			layer = append(layer, Block{Attention: atts[an], FFN: ffns[fn]})
		}
		e.Layers = append(e.Layers, layer)
	}
	return e
}

// Forward runs every layer on x [B,S,H]. With keep, it also returns the
// hidden state entering each layer and the last one leaving (L+1 tensors),
// for the paper's layer-transition figure.
func (e *Encoder) Forward(s *backend.Scope, x, maskAdd *ts.Tensor, train, keep bool) (*ts.Tensor, []*ts.Tensor) {
	var states []*ts.Tensor
	var ls backend.Scope // one layer's intermediates: autograd keeps what backward needs
	defer ls.Free()
	for _, layer := range e.Layers {
		if keep {
			states = append(states, x)
		}
		y := x
		for _, blk := range layer {
			y = blk.Attention.Forward(&ls, y, maskAdd, train)
			y = blk.FFN.Forward(&ls, y, train)
		}
		// Only the layer's output outlives it: a second handle in s, then
		// the layer's ~30 handles go (gotch gives each 100 KB of Go heap).
		x = s.T(y.MustShallowClone())
		ls.Free()
	}
	if keep {
		states = append(states, x)
	}
	return x, states
}
