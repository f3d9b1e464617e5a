package model

// FLOPs is the matrix arithmetic of one forward pass of the pretraining
// model, in floating-point operations (2 per multiply-add), as the model
// computes it: every dense layer at the tokens it is applied to, attention's
// two products over the full S×S (padding is masked, not skipped), the E→H
// projection only when E ≠ H, the MLM head only at the batch's P masked
// slots per sequence (data.Config.MaxPredictions: the batch is padded to P,
// and the padded slots are computed too), and the pooler and sentence head
// only when the model has a sentence head. Cross-layer sharing saves
// parameters, not arithmetic: every layer runs its InnerBlocks blocks.
//
// Element-wise work (GELU, softmax, LayerNorm, dropout, biases, the loss)
// and the embedding lookups are not counted: a few percent of a step, and
// not matrix work. This is the one count of the project: `exp bench`'s
// GFLOP/s and `exp run --dry-run`'s cost and time estimates both use it.
type FLOPs struct {
	Projection   float64 // embedding projection E→H (0 when E = H)
	AttentionQKV float64 // query, key, value and output projections
	Scores       float64 // Q·Kᵀ and probabilities·V
	FFN          float64 // H→I and I→H
	MLMTransform float64 // the MLM head's dense H→E, at the masked slots
	MLMDecoder   float64 // the tied V×E decoder, at the masked slots
	Pooler       float64 // dense H→H on [CLS] (with a sentence head)
	Sentence     float64 // the 2-way sentence head
}

// Total is the forward pass's sum.
func (f FLOPs) Total() float64 {
	return f.Projection + f.AttentionQKV + f.Scores + f.FFN + f.MLMTransform + f.MLMDecoder + f.Pooler + f.Sentence
}

// ForwardFLOPs counts one forward pass over batch sequences of seq tokens
// with preds masked slots each (see FLOPs).
func (c Config) ForwardFLOPs(batch, seq, preds int) FLOPs {
	c = c.Resolve()
	B, S, P := float64(batch), float64(seq), float64(min(preds, seq))
	V, E, H, I := float64(c.VocabSize), float64(c.EmbeddingSize), float64(c.HiddenSize), float64(c.IntermediateSize)
	T := B * S // tokens
	blocks := float64(c.NumLayers * c.InnerBlocks())
	var f FLOPs
	if c.EmbeddingSize != c.HiddenSize {
		f.Projection = 2 * T * E * H
	}
	f.AttentionQKV = blocks * 4 * 2 * T * H * H
	f.Scores = blocks * 2 * 2 * T * S * H // per head S×S×d twice; heads × d = H
	f.FFN = blocks * 2 * 2 * T * H * I
	f.MLMTransform = 2 * B * P * H * E
	f.MLMDecoder = 2 * B * P * E * V
	if c.SentenceHead {
		f.Pooler = 2 * B * H * H
		f.Sentence = 2 * B * H * 2
	}
	return f
}

// TrainStepFLOPs is the arithmetic of one training step (forward and
// backward) over a global batch: 3 × the forward pass, since every product
// above is differentiated for both its operands — each weight and each
// input, the first layer's input included because the embedding tables and
// their LayerNorm are trained — and each of those two gradients costs what
// the forward product did. Gradient accumulation and data parallelism split
// the same arithmetic; the optimizer's element-wise update is not counted.
func (c Config) TrainStepFLOPs(batch, seq, preds int) float64 {
	return 3 * c.ForwardFLOPs(batch, seq, preds).Total()
}
