package model

import "fmt"

// Parameter counting convention (declared once, used everywhere):
//
// The model's count is embeddings + E→H projection + encoder + pooler, every
// shared tensor counted once, pretraining heads (MLM transform and bias,
// sentence classifier) excluded. This is the count of the released ALBERT
// checkpoints (ALBERT-base 11,683,584) and it rounds to the paper's printed
// number for every ALBERT and mixed-sharing row; the paper's BERT and
// not-shared rows round to it without the pooler (one H²+H), and a few cells
// match no convention (see results/paper). Heads are reported separately.

// ParamShape is one tensor of the model, as the model builds it.
type ParamShape struct {
	Name  string  // e.g. "encoder/group_0/inner_0/attention/query/weight"
	Part  string  // embeddings | projection | attention | ffn | pooler | mlm_head | sentence_head
	Shape []int64 // the tensor's shape
}

// Numel is the number of scalars in the tensor.
func (p ParamShape) Numel() int64 {
	n := int64(1)
	for _, d := range p.Shape {
		n *= d
	}
	return n
}

// Breakdown splits a parameter count by part of the model.
type Breakdown struct {
	Embeddings   int64 `json:"embeddings"`
	Projection   int64 `json:"projection"`
	Attention    int64 `json:"attention"`
	FFN          int64 `json:"ffn"`
	Pooler       int64 `json:"pooler"`
	MLMHead      int64 `json:"mlm_head"`
	SentenceHead int64 `json:"sentence_head"`
}

// Encoder is the attention and FFN parameters together.
func (b Breakdown) Encoder() int64 { return b.Attention + b.FFN }

// Model is the count under the declared convention (no pretraining heads).
func (b Breakdown) Model() int64 { return b.Embeddings + b.Projection + b.Encoder() + b.Pooler }

// WithHeads adds the pretraining heads.
func (b Breakdown) WithHeads() int64 { return b.Model() + b.MLMHead + b.SentenceHead }

// Params counts c's parameters from shapes alone, without allocating the
// model: even ALBERT-xxlarge is counted instantly.
func (c Config) Params() Breakdown {
	var b Breakdown
	for _, p := range c.ParamShapes() {
		b.add(p.Part, p.Numel())
	}
	return b
}

// add counts n scalars of one part of the model.
func (b *Breakdown) add(part string, n int64) {
	switch part {
	case "embeddings":
		b.Embeddings += n
	case "projection":
		b.Projection += n
	case "attention":
		b.Attention += n
	case "ffn":
		b.FFN += n
	case "pooler":
		b.Pooler += n
	case "mlm_head":
		b.MLMHead += n
	case "sentence_head":
		b.SentenceHead += n
	}
}

// Block names the distinct attention and FFN parameter sets of layer l:
// layers that share a set get the same name. This is the whole of cross-layer
// sharing: New builds one set per distinct name and every layer uses its set.
func (c Config) Block(l, inner int) (attention, ffn string) {
	c = c.Resolve()
	switch c.Sharing {
	case ShareAll:
		// The official grouping: layer l runs group int(l/L·G), which holds
		// inner_group_num blocks applied in sequence.
		g := l * c.NumHiddenGroups / c.NumLayers
		name := fmt.Sprintf("encoder/group_%d/inner_%d", g, inner)
		return name + "/attention", name + "/ffn"
	case ShareAttention:
		return "encoder/shared/attention", fmt.Sprintf("encoder/layer_%d/ffn", l)
	case ShareFFN:
		return fmt.Sprintf("encoder/layer_%d/attention", l), "encoder/shared/ffn"
	default:
		return fmt.Sprintf("encoder/layer_%d/attention", l), fmt.Sprintf("encoder/layer_%d/ffn", l)
	}
}

// InnerBlocks is how many attention+FFN blocks each layer runs (official
// inner_group_num; 1 unless sharing = "all" says otherwise).
func (c Config) InnerBlocks() int {
	c = c.Resolve()
	if c.Sharing == ShareAll {
		return c.InnerGroupNum
	}
	return 1
}

// ParamShapes lists every tensor the model builds, each shared tensor once,
// in build order.
func (c Config) ParamShapes() []ParamShape {
	c = c.Resolve()
	V, E, H, I := int64(c.VocabSize), int64(c.EmbeddingSize), int64(c.HiddenSize), int64(c.IntermediateSize)
	P, T := int64(c.MaxPositions), int64(c.TypeVocabSize)
	var out []ParamShape
	add := func(part, name string, shape ...int64) {
		out = append(out, ParamShape{Name: name, Part: part, Shape: shape})
	}
	add("embeddings", "embeddings/word", V, E)
	add("embeddings", "embeddings/position", P, E)
	add("embeddings", "embeddings/token_type", T, E)
	add("embeddings", "embeddings/layer_norm/weight", E)
	add("embeddings", "embeddings/layer_norm/bias", E)
	if E != H { // the official rule: no projection when E = H
		add("projection", "embeddings/projection/weight", H, E)
		add("projection", "embeddings/projection/bias", H)
	}
	seen := map[string]bool{}
	for l := 0; l < c.NumLayers; l++ {
		for i := 0; i < c.InnerBlocks(); i++ {
			att, ffn := c.Block(l, i)
			if !seen[att] {
				seen[att] = true
				for _, n := range []string{"query", "key", "value", "output"} {
					add("attention", att+"/"+n+"/weight", H, H)
					add("attention", att+"/"+n+"/bias", H)
				}
				add("attention", att+"/layer_norm/weight", H)
				add("attention", att+"/layer_norm/bias", H)
			}
			if !seen[ffn] {
				seen[ffn] = true
				add("ffn", ffn+"/intermediate/weight", I, H)
				add("ffn", ffn+"/intermediate/bias", I)
				add("ffn", ffn+"/output/weight", H, I)
				add("ffn", ffn+"/output/bias", H)
				add("ffn", ffn+"/layer_norm/weight", H)
				add("ffn", ffn+"/layer_norm/bias", H)
			}
		}
	}
	add("pooler", "pooler/weight", H, H)
	add("pooler", "pooler/bias", H)
	// MLM head: dense H→E + GELU + LayerNorm(E); the decoder is the word table.
	add("mlm_head", "mlm/transform/weight", E, H)
	add("mlm_head", "mlm/transform/bias", E)
	add("mlm_head", "mlm/layer_norm/weight", E)
	add("mlm_head", "mlm/layer_norm/bias", E)
	add("mlm_head", "mlm/output_bias", V)
	if c.SentenceHead {
		add("sentence_head", "sentence/weight", 2, H)
		add("sentence_head", "sentence/bias", 2)
	}
	return out
}
