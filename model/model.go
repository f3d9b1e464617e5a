// Package model is ALBERT — and BERT, its special case E = H with no
// sharing — in gotch, following the official modeling.py: the factorized
// embedding (embedding.go), post-LN attention and FFN sublayers
// (attention.go, ffn.go), cross-layer parameter sharing (sharing.go), the
// pooler and pretraining heads (heads.go), and exact parameter counts from
// shapes (params.go). Named presets for every configuration of the paper are
// in config.go.
package model

import (
	"fmt"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/kernels"
)

// Param is one trainable tensor, in a stable build order.
type Param struct {
	Name   string
	Tensor *ts.Tensor
	// Decay is false for LayerNorm and bias tensors, which the official
	// optimizer excludes from weight decay and LAMB's layer adaptation.
	Decay bool
}

// Model is a built ALBERT/BERT with its pretraining heads.
type Model struct {
	Config    Config
	Device    gotch.Device
	VarStore  *nn.VarStore
	Params    []Param
	Embedding *Embedding
	Encoder   *Encoder
	Pooler    *Pooler
	MLM       *MLMHead
	Sentence  *SentenceHead // nil when the objective has no sentence loss
}

// New builds a model on dev with the official initialisation: truncated
// normal σ = initializer_range for weights and tables, LayerNorm 1/0, biases 0.
// Seed libtorch first (backend.Seed) for reproducible weights.
func New(cfg Config, dev gotch.Device) (*Model, error) {
	cfg = cfg.Resolve()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	b := &builder{vs: nn.NewVarStore(dev), dev: dev, sigma: cfg.InitializerRange}
	m := &Model{Config: cfg, Device: dev, VarStore: b.vs}
	err := func() (err error) {
		defer func() { // libtorch reports allocation failures as panics in gotch's Must API
			if r := recover(); r != nil {
				err = fmt.Errorf("model: building %s: %v", describe(cfg), r)
			}
		}()
		m.Embedding = newEmbedding(b, cfg)
		m.Encoder = newEncoder(b, cfg)
		m.Pooler = newPooler(b, cfg)
		m.MLM = newMLMHead(b, cfg, m.Embedding.Word)
		if cfg.SentenceHead {
			m.Sentence = newSentenceHead(b, cfg)
		}
		return nil
	}()
	if err != nil {
		return nil, err
	}
	m.Params = b.params
	return m, nil
}

func describe(c Config) string {
	return fmt.Sprintf("V=%d E=%d H=%d L=%d sharing=%s", c.VocabSize, c.EmbeddingSize, c.HiddenSize, c.NumLayers, c.Sharing)
}

// Inputs are one batch on the model's device: int64 tensors.
type Inputs struct {
	IDs             *ts.Tensor // [B,S]
	Segments        *ts.Tensor // [B,S]
	Mask            *ts.Tensor // [B,S], 1 real token, 0 padding
	MaskedPositions *ts.Tensor // [B,P]; nil to skip the MLM head
}

// Outputs of one forward pass; every tensor belongs to the scope passed in.
type Outputs struct {
	Hidden         *ts.Tensor   // [B,S,H], last layer
	MLMLogits      *ts.Tensor   // [B·P,V], at the masked positions only
	SentenceLogits *ts.Tensor   // [B,2]; nil without a sentence head
	States         []*ts.Tensor // with keepStates: L+1 hidden states, each layer's input then the last output
}

// Forward runs the model. Tensors it makes are owned by s.
func (m *Model) Forward(s *backend.Scope, in Inputs, train, keepStates bool) Outputs {
	kernels.NewPass() // shared layers' gradients are summed per pass (see linear)
	var out Outputs
	x := m.Embedding.Forward(s, in.IDs, in.Segments, train)
	out.Hidden, out.States = m.Encoder.Forward(s, x, m.maskAdd(s, in.Mask), train, keepStates)
	// Logits leave in fp32 whatever the arithmetic inside (bf16 under
	// autocast): the losses and accuracies are computed in fp32.
	if in.MaskedPositions != nil {
		out.MLMLogits = toFloat(s, m.MLM.Forward(s, out.Hidden, in.MaskedPositions))
	}
	if m.Sentence != nil {
		out.SentenceLogits = toFloat(s, m.Sentence.Forward(s, m.Pooler.Forward(s, out.Hidden)))
	}
	return out
}

// maskAdd turns the [B,S] padding mask into the additive attention mask
// [B,1,1,S]: 0 for real keys, -10000 for padding (official value).
func (m *Model) maskAdd(s *backend.Scope, mask *ts.Tensor) *ts.Tensor {
	size := mask.MustSize()
	f := s.T(mask.MustTotype(gotch.Float, false))
	f = s.T(f.MustSubScalar(ts.FloatScalar(1), false))
	f = s.T(f.MustMulScalar(ts.FloatScalar(10000), false))
	return s.T(f.MustView([]int64{size[0], 1, 1, size[1]}, false))
}

// NumParams counts the scalars of the tensors really built, each shared
// tensor once, under the declared convention (no pretraining heads).
func (m *Model) NumParams() Breakdown {
	part := map[string]string{}
	for _, p := range m.Config.ParamShapes() {
		part[p.Name] = p.Part
	}
	var b Breakdown
	for _, p := range m.Params {
		b.add(part[p.Name], int64(p.Tensor.Numel())) // a tensor missing from ParamShapes counts nowhere: the shape test catches it
	}
	return b
}

// builder creates the model's tensors in the VarStore, in order.
type builder struct {
	vs     *nn.VarStore
	dev    gotch.Device
	sigma  float64
	params []Param
}

func (b *builder) add(name string, t *ts.Tensor) *ts.Tensor {
	v := b.vs.Root().MustAdd(name, t, true)
	t.MustDrop() // the VarStore keeps its own handle
	decay := !strings.Contains(name, "layer_norm") && !strings.Contains(name, "bias")
	b.params = append(b.params, Param{Name: name, Tensor: v, Decay: decay})
	return v
}

func (b *builder) normal(name string, shape ...int64) *ts.Tensor {
	return b.add(name, truncatedNormal(shape, b.sigma, b.dev))
}

func (b *builder) zeros(name string, shape ...int64) *ts.Tensor {
	return b.add(name, ts.MustZeros(shape, gotch.Float, b.dev))
}

// dense is a weight [out,in] (truncated normal) and a bias [out] (zeros).
func (b *builder) dense(name string, out, in int64) (w, bias *ts.Tensor) {
	return b.normal(name+"/weight", out, in), b.zeros(name+"/bias", out)
}

// layerNorm is a scale of ones and a shift of zeros.
func (b *builder) layerNorm(name string, n int64) (w, bias *ts.Tensor) {
	return b.add(name+"/weight", ts.MustOnes([]int64{n}, gotch.Float, b.dev)), b.zeros(name+"/bias", n)
}
