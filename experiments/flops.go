package experiments

import (
	"github.com/reproml/albert/data"
	"github.com/reproml/albert/model"
	"github.com/reproml/albert/train"
)

// TrainFLOPs estimates the floating-point operations of a whole training run
// (forward + backward = 3 × forward, 2 FLOPs per multiply-add), ignoring
// evaluation and element-wise work. It is a cost model for sizing profiles —
// the time of one measured run divided by its estimate predicts the others
// on the same machine — not a measurement.
func TrainFLOPs(m model.Config, d data.Config, t train.Config) float64 {
	m = m.Resolve()
	B, S, P := float64(t.BatchSize), float64(d.SeqLen), float64(min(d.MaxPredictions, d.SeqLen))
	V, E, H, I := float64(m.VocabSize), float64(m.EmbeddingSize), float64(m.HiddenSize), float64(m.IntermediateSize)
	tokens := B * S
	var fwd float64
	if m.EmbeddingSize != m.HiddenSize {
		fwd += 2 * E * H * tokens // factorized embedding projection
	}
	blocks := float64(m.NumLayers * m.InnerBlocks()) // sharing saves parameters, not compute
	perBlock := 2*4*H*H*tokens +                     // Q, K, V, O
		2*2*S*H*tokens + // scores and weighted sum
		2*2*H*I*tokens // FFN in and out
	fwd += blocks * perBlock
	fwd += 2 * H * H * B           // pooler
	fwd += 2 * (H*E + E*V) * B * P // MLM transform and tied decoder, masked positions only
	fwd += 2 * 2 * H * B           // sentence head (small either way)
	return 3 * fwd * float64(t.Steps)
}

// FLOPs is the run's estimated training cost (see TrainFLOPs).
func (r Run) FLOPs() float64 { return TrainFLOPs(r.Model, r.Data, r.Train) }
