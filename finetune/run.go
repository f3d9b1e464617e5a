package finetune

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/finetune/tasks"
	"github.com/reproml/albert/model"
	"github.com/reproml/albert/results"
	"github.com/reproml/albert/train"
)

// Job is one fine-tuning run.
type Job struct {
	RunID   int64
	Name    string // label for progress output
	Seed    int64  // head init, training order and dropout
	Encoder model.Config
	// Pretrained is the folder of the pretraining run whose encoder is
	// loaded (its newest good checkpoint); "" fine-tunes a random init.
	Pretrained string
	Config     Config
	Data       *Data
	Dir        string // checkpoints; one found here is resumed
	Device     string
	Store      *results.Store
	Progress   io.Writer

	// afterStep is called after each step (tests: a non-nil error stops the
	// run there, as a kill would).
	afterStep func(step int) error
}

// Result says how a fine-tuning run ended.
type Result struct {
	Diverged bool
	Reason   string
	Step     int
	Resumed  int     // the step it resumed from (0: fresh)
	Seconds  float64 // across resumes
	BestStep int     // the step of the best evaluation
	Best     []results.Score
}

// logEvery is the step interval of the train curve (loss, lr, grad norm).
const logEvery = 10

// heartbeatEvery keeps the run's claim fresh.
const heartbeatEvery = 5 * time.Second

// Run fine-tunes job to the end: AdamW steps on the training features,
// an evaluation of every split each Config.EvalEvery steps and at the end
// (curves in metrics, split = the evaluation split), a checkpoint after
// each evaluation, the weights of the best evaluation so far (best.go: the
// official model.ckpt-best), and at the end the scores of the evaluation
// that was best on the first split's primary metric (finetune_best). A checkpoint in job.Dir is resumed; rows written after
// it are dropped, so a killed and resumed run stores what an
// uninterrupted one does.
func Run(ctx context.Context, job Job) (res Result, err error) {
	defer backend.LockThread()()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("finetune: %v", r)
		}
	}()
	if err := job.check(); err != nil {
		return res, err
	}
	if err := backend.Init(); err != nil {
		return res, err
	}
	dev, err := backend.Device(job.Device)
	if err != nil {
		return res, err
	}
	m, err := NewModel(job.Encoder, job.Data.Task, job.Config, job.Seed, dev)
	if err != nil {
		return res, err
	}
	defer m.Close()
	opt, err := train.NewOptimizer(job.Config.Optimizer(), m.Params)
	if err != nil {
		return res, err
	}
	defer opt.Close()
	ck, err := train.LoadCheckpoint(job.Dir, m.shell, opt)
	switch {
	case errors.Is(err, train.ErrNoCheckpoint):
		ck = train.Checkpoint{}
		if job.Pretrained != "" {
			if err := m.LoadPretrained(job.Pretrained); err != nil {
				return res, err
			}
		}
	case err != nil:
		return res, err
	}
	st := job.Store
	if err := st.DeleteMetricsAfter(job.RunID, ck.Step); err != nil {
		return res, err
	}
	if err := st.DeleteBest(job.RunID); err != nil {
		return res, err
	}
	prov := train.Provenance(dev)
	prov.Extra["finetune_init"] = map[bool]string{true: results.InitPretrained, false: results.InitRandom}[job.Pretrained != ""]
	if err := st.PutProvenance(job.RunID, prov); err != nil {
		return res, err
	}
	if err := st.Heartbeat(job.RunID, ck.Step); err != nil {
		return res, err
	}
	r := &runner{job: job, m: m, opt: opt, dev: dev, metrics: st.NewMetricWriter(job.RunID),
		ord: &order{n: len(job.Data.Train), seed: job.Seed}}
	defer r.metrics.Close()
	if r.best, err = bestSoFar(st, job.RunID, job.Data); err != nil {
		return res, err
	}
	res, err = r.loop(ctx, ck)
	if cerr := r.metrics.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil || res.Diverged {
		return res, err
	}
	res.BestStep, res.Best, err = bestOf(st, job.RunID, job.Data)
	if err != nil {
		return res, err
	}
	if err := checkBest(job.Dir, res.BestStep); err != nil {
		return res, err
	}
	return res, st.PutBest(job.RunID, res.BestStep, res.Best)
}

func (j Job) check() error {
	switch {
	case j.Store == nil:
		return errors.New("finetune: job has no results store")
	case j.Dir == "":
		return errors.New("finetune: job has no checkpoint folder")
	case j.Data == nil || len(j.Data.Train) == 0 || len(j.Data.Evals) == 0:
		return errors.New("finetune: job has no training or evaluation data")
	}
	if err := j.Config.Validate(); err != nil {
		return fmt.Errorf("finetune: %w", err)
	}
	if err := j.Encoder.Validate(); err != nil {
		return fmt.Errorf("finetune: encoder: %w", err)
	}
	if j.Config.MaxSeqLen > j.Encoder.Resolve().MaxPositions {
		return fmt.Errorf("finetune: max_seq_len %d exceeds the encoder's max_positions %d", j.Config.MaxSeqLen, j.Encoder.Resolve().MaxPositions)
	}
	return nil
}

type runner struct {
	job     Job
	m       *Model
	opt     *train.Optimizer
	dev     gotch.Device
	metrics *results.MetricWriter
	ord     *order
	best    float64 // the best primary dev score so far (BestWeights holds its weights)
}

func (r *runner) loop(ctx context.Context, ck train.Checkpoint) (Result, error) {
	c := r.job.Config
	oc := c.Optimizer()
	res := Result{Resumed: ck.Step, Step: ck.Step}
	start := time.Now()
	lastBeat := time.Now()
	last := ck
	seconds := func() float64 { return ck.Seconds + time.Since(start).Seconds() }
	lastLoss := math.NaN() // the last training loss read, for progress lines
	if r.job.Progress != nil && ck.Step > 0 {
		fmt.Fprintf(r.job.Progress, "%s: resuming at step %d/%d\n", r.job.Name, ck.Step, c.Steps)
	}
	for step := ck.Step; step < c.Steps; step++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := backend.Seed(stepSeed(r.job.Seed, step)); err != nil {
			return res, err
		}
		lr := oc.LearningRate(step)
		read := step%logEvery == 0 || step == c.Steps-1
		loss, norm, err := r.step(step, lr, read)
		if err != nil {
			return res, err
		}
		res.Step = step + 1
		if read {
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				res.Diverged, res.Reason = true, fmt.Sprintf("loss %v at step %d", loss, step+1)
				r.metrics.Add(step+1, "train", "loss", loss)
				res.Seconds = seconds()
				return res, nil
			}
			lastLoss = loss
			r.metrics.Add(step+1, "train", "loss", loss)
			r.metrics.Add(step+1, "train", "grad_norm", norm)
			r.metrics.Add(step+1, "train", "lr", lr)
		}
		done := step+1 == c.Steps
		if done || (c.EvalEvery > 0 && (step+1)%c.EvalEvery == 0) {
			scores, err := r.evaluate(step + 1)
			if err != nil {
				return res, err
			}
			for _, s := range scores {
				r.metrics.Add(step+1, s.Split, s.Name, s.Value)
			}
			if r.job.Progress != nil {
				fmt.Fprintf(r.job.Progress, "%s: step %d/%d train loss %.4f%s\n", r.job.Name, step+1, c.Steps, lastLoss, describe(scores))
			}
			// Rows first, then the best weights, then the checkpoint (see
			// train's loop): a resume replays whatever came after it.
			if err := r.metrics.Flush(); err != nil {
				return res, err
			}
			// A run whose every score is NaN keeps its last evaluation, as bestOf.
			v, ok := primary(r.job.Data, scores)
			if (ok && v > r.best) || (done && math.IsInf(r.best, -1)) {
				if err := saveBest(r.job.Dir, r.m, r.job.Data, step+1, v); err != nil {
					return res, err
				}
				if ok {
					r.best = v
				}
			}
			next := train.Checkpoint{Step: step + 1, Cursor: int64(step+1) * int64(c.BatchSize), Seconds: seconds(), Previous: prior(last)}
			if err := train.SaveCheckpoint(r.job.Dir, next, r.m.shell, r.opt); err != nil {
				return res, err
			}
			last = next
			if saved, err := readCheckpoint(r.job.Dir); err == nil {
				last = saved
			}
		}
		if r.job.afterStep != nil {
			if err := r.job.afterStep(step + 1); err != nil {
				return res, err
			}
		}
		if time.Since(lastBeat) > heartbeatEvery || done {
			if err := r.job.Store.Heartbeat(r.job.RunID, step+1); err != nil {
				return res, err
			}
			lastBeat = time.Now()
		}
	}
	res.Seconds = seconds()
	return res, nil
}

// step is one AdamW step on the batch of step; with read it returns the
// loss and the gradient norm (a device sync).
func (r *runner) step(step int, lr float64, read bool) (loss, norm float64, err error) {
	var s backend.Scope
	defer s.Free()
	c := r.job.Config
	fs := r.ord.batch(r.job.Data.Train, step, c.BatchSize)
	in := ToDevice(&s, fs, r.m.Head.Kind, r.dev)
	out := r.m.Forward(&s, in, true)
	l := r.m.Loss(&s, in, out)
	n, err := r.opt.Apply(&s, l, lr, c.ClipNorm)
	if err != nil {
		return 0, 0, err
	}
	if !read {
		return 0, 0, nil
	}
	flat := s.T(n.MustView([]int64{-1}, false))
	v := backend.Float64s(s.T(ts.MustStack([]*ts.Tensor{s.T(l.MustDetach(false)), s.T(flat.MustSelect(0, 0, false))}, 0)))
	return v[0], v[1], nil
}

func stepSeed(seed int64, step int) int64 { return seed*1_000_003 + int64(step) + 7_777 }

// prior is c as the Previous of the next checkpoint (see train.Checkpoint).
func prior(c train.Checkpoint) *train.Checkpoint {
	if c.File == "" {
		return nil
	}
	c.Previous = nil
	return &c
}

// readCheckpoint reads the record SaveCheckpoint wrote (with its file name
// and checksum), so that the next checkpoint keeps it as its fallback.
func readCheckpoint(dir string) (train.Checkpoint, error) {
	var c train.Checkpoint
	b, err := os.ReadFile(filepath.Join(dir, "checkpoint.json"))
	if err != nil {
		return c, err
	}
	return c, jsonUnmarshal(b, &c)
}

func describe(scores []results.Score) string {
	out := ""
	for _, s := range scores {
		out += fmt.Sprintf(" %s/%s %.4f", s.Split, s.Name, s.Value)
	}
	return out
}

// bestOf picks, from the stored curves, the evaluation with the highest
// primary metric on the first evaluation split (the earliest on ties) and
// returns every split's scores at that step.
func bestOf(st *results.Store, runID int64, d *Data) (int, []results.Score, error) {
	first := string(d.Evals[0].Split)
	curve, err := st.Curve(runID, first, d.Task.Metric)
	if err != nil {
		return 0, nil, err
	}
	step, best := 0, math.Inf(-1)
	for _, p := range curve {
		if !math.IsNaN(p.Value) && p.Value > best {
			step, best = p.Step, p.Value
		}
	}
	if step == 0 && len(curve) > 0 {
		step = curve[len(curve)-1].Step
	}
	var out []results.Score
	for _, e := range d.Evals {
		for _, name := range metricNames(d.Task) {
			pts, err := st.Curve(runID, string(e.Split), name)
			if err != nil {
				return 0, nil, err
			}
			for _, p := range pts {
				if p.Step == step {
					out = append(out, results.Score{Split: string(e.Split), Name: name, Value: p.Value})
				}
			}
		}
	}
	return step, out, nil
}

// metricNames are the metrics stored for task: its own, plus the eval loss.
func metricNames(t tasks.Task) []string {
	return append(append([]string(nil), t.Metrics...), "loss")
}
