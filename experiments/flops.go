package experiments

import (
	"github.com/reproml/albert/data"
	"github.com/reproml/albert/model"
	"github.com/reproml/albert/train"
)

// TrainFLOPs is the matrix arithmetic of a whole training run: the model's
// count of one step (model.Config.TrainStepFLOPs: the MLM head at the
// batch's max_predictions slots, attention over the full sequence, forward
// and backward) times the steps. Evaluation and element-wise work are not
// counted. With a measured throughput (bench.Throughput) it predicts a
// run's wall time; it is a count, not a measurement.
func TrainFLOPs(m model.Config, d data.Config, t train.Config) float64 {
	return m.TrainStepFLOPs(t.BatchSize, d.SeqLen, d.MaxPredictions) * float64(t.Steps)
}

// FLOPs is the run's training arithmetic (see TrainFLOPs).
func (r Run) FLOPs() float64 { return TrainFLOPs(r.Model, r.Data, r.Train) }
