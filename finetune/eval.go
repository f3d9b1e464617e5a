package finetune

import (
	"encoding/json"
	"fmt"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/finetune/tasks"
	"github.com/reproml/albert/results"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// Predictions are a model's outputs on one evaluation split, per feature,
// on the host.
type Predictions struct {
	Logits     [][]float64 // classification: [labels]; multiple choice: [choices]
	Values     []float64   // regression
	Start, End [][]float64 // span (SpanHeadV1): per position
	Beams      []Beam      // span (SpanHeadV2): per feature
	Loss       float64     // mean training loss over the split
}

// evalBatch is the evaluation batch size (sequences are never trained on,
// so a larger batch only trades memory for fewer calls).
func evalBatch(c Config) int { return max(c.BatchSize, 32) }

// predict runs the model in eval mode (no dropout, no gradients) over fs.
func (m *Model) predict(fs []tasks.Feature, batch int) Predictions {
	var p Predictions
	var lossSum float64
	for lo := 0; lo < len(fs); lo += batch {
		hi := min(lo+batch, len(fs))
		func() {
			var s backend.Scope
			defer s.Free()
			backend.NoGrad(func() {
				in := ToDevice(&s, fs[lo:hi], m.Head.Kind, m.Enc.Device)
				out := m.Forward(&s, in, false)
				lossSum += backend.Float64s(m.Loss(&s, in, out))[0] * float64(hi-lo)
				switch m.Head.Kind {
				case tasks.Regression:
					p.Values = append(p.Values, backend.Float64s(out.Logits)...)
				case tasks.Span:
					if out.V2 != nil {
						p.Beams = append(p.Beams, beams(out.V2, hi-lo)...)
						break
					}
					p.Start = append(p.Start, rows(backend.Float64s(out.Start), hi-lo)...)
					p.End = append(p.End, rows(backend.Float64s(out.End), hi-lo)...)
				default:
					p.Logits = append(p.Logits, rows(backend.Float64s(out.Logits), hi-lo)...)
				}
			})
		}()
	}
	p.Loss = lossSum / float64(max(1, len(fs)))
	return p
}

// rows splits a row-major [n, k] slice into n rows.
func rows(v []float64, n int) [][]float64 {
	k := len(v) / n
	out := make([][]float64, n)
	for i := range out {
		out[i] = v[i*k : (i+1)*k]
	}
	return out
}

// evaluate scores every evaluation split at step: the task's metrics and
// the mean loss. Span tasks also write the official predictions files.
func (r *runner) evaluate(step int) ([]results.Score, error) {
	var out []results.Score
	for _, e := range r.job.Data.Evals {
		p := r.m.predict(e.Features, evalBatch(r.job.Config))
		ms, err := scoreSplit(r.job.Data.Task, e, p, r.job.Config, predictionsDir(r.job.Dir, e.Split, step))
		if err != nil {
			return nil, fmt.Errorf("finetune: scoring %s %s at step %d: %w", r.job.Data.Task.Name, e.Split, step, err)
		}
		for _, name := range r.job.Data.Task.Metrics {
			v, ok := ms[name]
			if !ok {
				return nil, fmt.Errorf("finetune: scoring %s %s gave no %s", r.job.Data.Task.Name, e.Split, name)
			}
			out = append(out, results.Score{Split: string(e.Split), Name: name, Value: v})
		}
		out = append(out, results.Score{Split: string(e.Split), Name: "loss", Value: p.Loss})
	}
	return out, nil
}
