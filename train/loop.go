// Package train pretrains one model: the MLM (+ NSP/SOP) loss, LAMB or
// AdamW with the official schedule and clipping, gradient accumulation,
// held-out evaluation (paper Table 5's intrinsic accuracies and the layer
// transitions of Figure 1), checkpoints with exact resume, divergence
// detection, and every number written to the results store.
package train

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
	"github.com/reproml/albert/data"
	"github.com/reproml/albert/kernels"
	"github.com/reproml/albert/model"
	"github.com/reproml/albert/results"
)

// Job is one run to train.
type Job struct {
	RunID     int64
	Name      string // label for progress output
	Seed      int64
	Objective data.Objective
	Model     model.Config
	Data      data.Config
	Train     Config
	Dir       string // checkpoints; a checkpoint found here is resumed
	Attempt   int    // 1 (or 0), or 1 + how many times the run was retried from step 0: progress says "retry N"
	Device    string // auto | cpu | cuda | cuda:N
	CacheRoot string // data cache (default out/cache)
	Store     *results.Store
	Progress  io.Writer // nil: no progress output
	// EvalBatchSize for the held-out sets (default: the micro-batch size).
	EvalBatchSize int
	// World trains the run data-parallel (nil: alone). Every rank runs Run
	// with the same configuration; each reads its shard of every global
	// batch (Train.BatchSize stays the global batch, so the run is the same
	// configuration under any world size). Only rank 0 uses Store and Dir —
	// checkpoints, metrics, evals, heartbeats — and the others may leave
	// them empty; rank 0's state (resumed or fresh) is broadcast to all.
	World World

	afterStep func(step int) // tests: called after each optimizer step
}

// Result says how a run ended.
type Result struct {
	Diverged bool
	Reason   string  // why it diverged
	Step     int     // optimizer steps done
	Seconds  float64 // training wall time across resumes
	Resumed  int     // the step it resumed from (0: fresh)
	Fallback string  // why the newest checkpoint was passed over for the previous one ("" if it was not)
	Final    map[string]float64
}

// ErrPreempted, as the cause of a cancelled context (context.WithCancelCause),
// makes Run save a checkpoint at the next step boundary before it returns an
// error wrapping it: a Slurm preemption or time limit, after which the run
// resumes exactly where it stopped. A plain cancellation stops without one.
var ErrPreempted = errors.New("preempted")

// heartbeatEvery keeps the run's claim fresh (stale after a few minutes).
const heartbeatEvery = 5 * time.Second

// Run trains job to the end (or divergence). A context cancellation stops
// it between steps and returns the context's error; the last checkpoint
// lets a later Run continue exactly where the curve left off.
func Run(ctx context.Context, job Job) (res Result, err error) {
	defer backend.LockThread()()
	defer func() { // gotch's Must API reports libtorch failures (e.g. out of memory) as panics
		if r := recover(); r != nil {
			err = fmt.Errorf("train: %v", r)
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
	// exp run refuses these before the database opens; a caller that skips
	// it must not train an fp32 run under another precision's name.
	if err := job.Train.CheckPrecision(dev.IsCuda()); err != nil {
		return res, err
	}
	release, err := usePrecision(job.Train, dev)
	if err != nil {
		return res, err
	}
	defer release()
	if job.CacheRoot == "" {
		job.CacheRoot = "out/cache"
	}
	ds, err := data.Prepare(job.Data, job.Objective, job.CacheRoot)
	if err != nil {
		return res, err
	}
	if ds.VocabSize() != job.Model.VocabSize {
		return res, fmt.Errorf("train: model vocab_size %d ≠ tokenizer vocab %d", job.Model.VocabSize, ds.VocabSize())
	}
	micro := job.Train.BatchSize / job.Train.GradAccum
	if job.EvalBatchSize <= 0 {
		job.EvalBatchSize = micro
	}
	var evalSets data.EvalSets
	if leads(job.World) {
		if evalSets, err = ds.EvalSets(job.EvalBatchSize); err != nil {
			return res, err
		}
	}

	if err := backend.Seed(job.Seed); err != nil {
		return res, err
	}
	m, err := model.New(job.Model, dev)
	if err != nil {
		return res, err
	}
	defer m.VarStore.Destroy()
	opt, err := NewOptimizer(job.Train, m.Params)
	if err != nil {
		return res, err
	}
	defer opt.Close()

	st := &state{job: job, m: m, opt: opt, evalSets: evalSets, dev: dev}
	var ck Checkpoint
	if leads(job.World) {
		ck, err = LoadCheckpoint(job.Dir, m, opt)
		switch {
		case errors.Is(err, ErrNoCheckpoint):
			ck = Checkpoint{}
		case err != nil:
			return res, err
		}
	}
	if job.World != nil {
		if ck.Step, ck.Cursor, err = syncState(job.World, st.params(), opt, ck.Step, ck.Cursor); err != nil {
			return res, err
		}
	}
	res.Resumed = ck.Step
	if ck.Fallback != "" && job.Progress != nil {
		fmt.Fprintf(job.Progress, "%s: %s; resuming from the previous checkpoint at step %d\n", job.label(), ck.Fallback, ck.Step)
	}
	if leads(job.World) {
		// Rows a killed attempt wrote after its checkpoint are dropped: the
		// resumed curve then equals an uninterrupted one, without duplicates.
		if err := job.Store.DeleteMetricsAfter(job.RunID, ck.Step); err != nil {
			return res, err
		}
		prov := Provenance(dev)
		prov.Extra["precision"] = job.Train.PrecisionName()
		if w := job.World; w != nil {
			// The world is provenance, not identity: the run's config (and
			// hash) says the global batch, whatever the world that trains it.
			prov.Extra["world_size"] = fmt.Sprint(w.Size())
			prov.Extra["dist_backend"] = w.Backend()
		}
		if err := job.Store.PutProvenance(job.RunID, prov); err != nil {
			return res, err
		}
		if err := job.Store.Heartbeat(job.RunID, ck.Step); err != nil {
			return res, err
		}
		st.metrics = job.Store.NewMetricWriter(job.RunID)
		defer st.metrics.Close()
	}

	loader, err := ds.NewShardLoader(micro, job.Seed, ck.Cursor, rankOf(job.World), worldSize(job.World))
	if err != nil {
		return res, fmt.Errorf("train: batch_size %d / grad_accum %d over %d ranks: %w", job.Train.BatchSize, job.Train.GradAccum, worldSize(job.World), err)
	}
	defer loader.Close()
	st.loader = loader
	res, err = st.loop(ctx, ck)
	res.Fallback = ck.Fallback
	if st.metrics != nil {
		if cerr := st.metrics.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}
	return res, err
}

// params are the model's parameter tensors.
func (st *state) params() []*ts.Tensor {
	out := make([]*ts.Tensor, len(st.m.Params))
	for i, p := range st.m.Params {
		out[i] = p.Tensor
	}
	return out
}

// rankOf is w's rank, 0 for none.
func rankOf(w World) int {
	if w == nil {
		return 0
	}
	return w.Rank()
}

// label names the run in progress output: its name, and "retry N" for an
// attempt after the first.
func (j Job) label() string {
	if j.Attempt > 1 {
		return fmt.Sprintf("%s (retry %d)", j.Name, j.Attempt-1)
	}
	return j.Name
}

func (j Job) check() error {
	if j.Store == nil && leads(j.World) {
		return errors.New("train: job has no results store")
	}
	if j.Dir == "" && leads(j.World) {
		return errors.New("train: job has no checkpoint folder")
	}
	if err := j.Train.Validate(); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if err := j.Model.Validate(); err != nil {
		return fmt.Errorf("train: model: %w", err)
	}
	if err := j.Data.Validate(); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if !j.Objective.Valid() {
		return fmt.Errorf("train: objective %q: want none, nsp or sop", j.Objective)
	}
	if (j.Objective != data.ObjectiveNone) != j.Model.SentenceHead {
		return fmt.Errorf("train: objective %q and model.sentence_head = %v disagree", j.Objective, j.Model.SentenceHead)
	}
	return nil
}

type state struct {
	job      Job
	m        *model.Model
	opt      *Optimizer
	loader   *data.Loader
	evalSets data.EvalSets
	metrics  *results.MetricWriter
	dev      gotch.Device
	recent   []float64 // last logged losses, for the final train_loss
	sp       *stepper
}

func (st *state) loop(ctx context.Context, ck Checkpoint) (Result, error) {
	c := st.job.Train
	res := Result{Resumed: ck.Step}
	start := time.Now()
	lastBeat := time.Now()
	prog := newProgress(st.job.Progress, st.job.label(), ck.Step, c.Steps)
	last := ck // the last good checkpoint: the next one keeps it as its Previous
	defer prog.finish()
	var tokens int
	tick := time.Now()
	lead := leads(st.job.World)
	for step := ck.Step; step < c.Steps; step++ {
		if err := st.stopVote(ctx); err != nil {
			if errors.Is(err, ErrPreempted) {
				return res, st.preempt(step, err, last, ck.Seconds+time.Since(start).Seconds())
			}
			return res, err
		}
		// Dropout draws from libtorch's generator: seeding it from (seed,
		// step) makes each step reproducible on its own, so a resumed run
		// matches an uninterrupted one without saving generator state.
		if err := backend.Seed(rankSeed(st.job.Seed, step, rankOf(st.job.World))); err != nil {
			return res, err
		}
		lr := c.LearningRate(step)
		sums, n, err := st.step(lr, step%max(1, c.LogEvery) == 0 || step == c.Steps-1)
		if err != nil {
			return res, err
		}
		tokens += n
		res.Step = step + 1
		if sums != nil {
			loss := sums[0]
			if bad := diverged(loss, c.DivergeLoss); bad != "" { // every rank reads the world's loss: all stop here
				res.Diverged, res.Reason = true, fmt.Sprintf("%s at step %d", bad, step+1)
				st.add(step+1, "train", "loss", loss)
				res.Seconds = ck.Seconds + time.Since(start).Seconds()
				return res, nil
			}
			el := time.Since(tick).Seconds()
			tps := float64(tokens) / math.Max(el, 1e-9)
			tokens, tick = 0, time.Now()
			if w := st.job.World; w != nil {
				tps *= float64(w.Size()) // the world's tokens/s: every shard is the same size
			}
			st.add(step+1, "train", "loss", loss)
			st.add(step+1, "train", "mlm_loss", sums[1])
			if st.m.Sentence != nil {
				st.add(step+1, "train", "sentence_loss", sums[2])
			}
			st.add(step+1, "train", "grad_norm", sums[3])
			st.add(step+1, "train", "lr", lr)
			st.add(step+1, "train", "tokens_per_sec", tps)
			st.recent = append(st.recent, loss)
			if len(st.recent) > 5 {
				st.recent = st.recent[1:]
			}
			prog.update(step+1, loss, tps)
		}
		done := step+1 == c.Steps
		if c.EvalEvery > 0 && (step+1)%c.EvalEvery == 0 && !done && lead {
			st.eval(step + 1) // the other ranks wait for it in the next step's first collective
		}
		if (c.CheckpointEvery > 0 && (step+1)%c.CheckpointEvery == 0) || done {
			if err := st.checkpoint(step, &last, ck.Seconds+time.Since(start).Seconds()); err != nil {
				return res, err
			}
		}
		if st.job.afterStep != nil {
			st.job.afterStep(step + 1)
		}
		if lead && (time.Since(lastBeat) > heartbeatEvery || done) {
			if err := st.job.Store.Heartbeat(st.job.RunID, step+1); err != nil {
				return res, err
			}
			lastBeat = time.Now()
		}
	}
	if !lead {
		res.Seconds = ck.Seconds + time.Since(start).Seconds()
		return res, nil // rank 0 alone scores the held-out sets and stores the result
	}
	final := st.eval(c.Steps)
	final["train_loss"] = mean(st.recent)
	if err := st.job.Store.PutEvals(st.job.RunID, final); err != nil {
		return res, err
	}
	tr := Transitions(st.m, st.evalSets.MLM, st.job.Train.EvalBatches)
	if err := st.job.Store.PutTransitions(st.job.RunID, tr); err != nil {
		return res, err
	}
	res.Final = final
	res.Seconds = ck.Seconds + time.Since(start).Seconds()
	return res, nil
}

// checkpoint saves the state after step+1 optimizer steps (rank 0 alone)
// and, in a world, waits at a barrier until it is written: a rank that
// gets past it knows the checkpoint of this step exists.
func (st *state) checkpoint(step int, last *Checkpoint, seconds float64) error {
	if leads(st.job.World) {
		// Metrics first: a resumed run restarts from the newest checkpoint
		// file and keeps only the rows up to it, so every row up to a
		// checkpoint must be stored before the file appears. (In the other
		// order a kill -9 between the two lost the rows since the last
		// flush: the end-to-end kill test caught it once steps got faster.)
		if err := st.metrics.Flush(); err != nil {
			return err
		}
		next := Checkpoint{Step: step + 1, Cursor: st.loader.Cursor(), Seconds: seconds, Previous: last.prior()}
		saved, err := saveCheckpoint(st.job.Dir, next, st.m, st.opt)
		if err != nil {
			return err
		}
		*last = saved
	}
	if st.job.World != nil {
		if err := st.job.World.Barrier(); err != nil {
			return fmt.Errorf("train: barrier after the checkpoint of step %d: %w", step+1, err)
		}
	}
	return nil
}

// stopVote decides whether to stop before this step, and how. Alone, it
// returns the context's state: nil, its cause when that is ErrPreempted,
// else its error. In a world it all-reduces every rank's state and returns
// the world's decision, the same on every rank: ErrPreempted when any rank
// was preempted (all checkpoint at this step), another error when any rank
// stopped, nil when none did. It costs one all-reduce of two numbers a step.
//
// The context is read once, before the all-reduce, and the decision depends
// only on the sums: a signal that lands during the all-reduce waits for the
// next step's vote. (Reading it again afterwards made a rank stop alone
// while the others went on into the gradients' all-reduce: a hang until the
// collective timeout, caught by the Slurm world test.)
func (st *state) stopVote(ctx context.Context) error {
	var own error // this rank's reason to stop, if any
	if err := ctx.Err(); err != nil {
		own = err
		if cause := context.Cause(ctx); errors.Is(cause, ErrPreempted) {
			own = cause
		}
	}
	w := st.job.World
	if w == nil {
		return own
	}
	var stop, preempt float32
	if own != nil {
		stop = 1
		if errors.Is(own, ErrPreempted) {
			preempt = 1
		}
	}
	v := ts.MustOfSlice([]float32{stop, preempt})
	defer v.MustDrop()
	if err := w.AllReduceSum([]*ts.Tensor{v}); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return worldStop(own, backend.Float64s(v))
}

// worldStop is the world's decision from the sums of every rank's
// [stopped, preempted] votes, with own (this rank's vote) in the message.
func worldStop(own error, sums []float64) error {
	switch {
	case sums[1] > 0 && errors.Is(own, ErrPreempted):
		return own
	case sums[1] > 0 && own != nil:
		return fmt.Errorf("train: %w, and another rank was %w", own, ErrPreempted)
	case sums[1] > 0:
		return fmt.Errorf("train: another rank was %w", ErrPreempted)
	case own != nil:
		return own
	case sums[0] > 0:
		return errors.New("train: another rank of the world stopped")
	}
	return nil
}

// add records a metric (rank 0 alone: the others have no writer).
func (st *state) add(step int, split, name string, v float64) {
	if st.metrics != nil {
		st.metrics.Add(step, split, name, v)
	}
}

// preempt checkpoints the run after step optimizer steps (unless last is
// that checkpoint already) and returns the error Run stops with.
func (st *state) preempt(step int, cause error, last Checkpoint, seconds float64) error {
	if !leads(st.job.World) {
		// Wait for rank 0's checkpoint: a rank that ended first could have
		// its launcher (srun) end rank 0 before the file is written.
		if err := st.job.World.Barrier(); err != nil {
			return fmt.Errorf("train: waiting for rank 0's checkpoint on preemption: %w", err)
		}
		return fmt.Errorf("train: stopped at step %d, checkpointed by rank 0: %w", step, cause)
	}
	if step > last.Step {
		if err := st.metrics.Flush(); err != nil { // rows first, as in the loop
			return err
		}
		next := Checkpoint{Step: step, Cursor: st.loader.Cursor(), Seconds: seconds, Previous: last.prior()}
		if _, err := saveCheckpoint(st.job.Dir, next, st.m, st.opt); err != nil {
			return fmt.Errorf("train: checkpoint on preemption: %w", err)
		}
	}
	if st.job.World != nil {
		if err := st.job.World.Barrier(); err != nil {
			return fmt.Errorf("train: barrier after the checkpoint on preemption: %w", err)
		}
	}
	if err := st.job.Store.Heartbeat(st.job.RunID, step); err != nil {
		return err
	}
	return fmt.Errorf("train: checkpointed at step %d and stopped: %w", step, cause)
}

// step runs one optimizer step over GradAccum micro-batches from the
// loader. With read, it returns [loss, mlm loss, sentence loss, grad norm]
// (a device sync); otherwise nothing is copied back to the host.
func (st *state) step(lr float64, read bool) ([]float64, int, error) {
	if st.sp == nil {
		st.sp = newStepper(st.m, st.opt, st.job.Train, st.dev)
		st.sp.world = st.job.World
	}
	return st.sp.step(st.loader.Next, lr, read)
}

func acc(s *backend.Scope, sum, x *ts.Tensor) *ts.Tensor {
	x = s.T(x.MustDetach(false))
	if sum == nil {
		return x
	}
	return s.T(sum.MustAdd(x, false))
}

// clipGrads computes the global L2 norm of the gradients (nil entries
// skipped) and the factor that scales it to at most maxNorm (official:
// tf.clip_by_global_norm, 1.0), both on the device: no host sync. The
// factor is nil when maxNorm ≤ 0 (no clipping). The gradients are left as
// they are: the optimizer applies the factor as it reads them, which saves
// a pass over every gradient. On the CPU the norm is one kernels.GlobalNorm
// pass over all gradients.
func clipGrads(s *backend.Scope, grads []*ts.Tensor, maxNorm float64) (norm, factor *ts.Tensor) {
	var gs []*ts.Tensor
	for _, g := range grads {
		if g != nil {
			gs = append(gs, g)
		}
	}
	if kernels.Applies(gs...) {
		n, f, err := kernels.GlobalNorm(gs, maxNorm)
		if err != nil {
			panic(fmt.Errorf("train: clipping: %w", err)) // tensors this package made: a bug, not input
		}
		if f != nil {
			factor = s.T(f)
		}
		return s.T(n), factor
	}
	var norms []*ts.Tensor
	for _, g := range gs {
		norms = append(norms, s.T(g.MustNorm(false)))
	}
	norm = s.T(s.T(ts.MustStack(norms, 0)).MustNorm(false))
	if maxNorm > 0 {
		// factor = maxNorm / max(norm, maxNorm)
		max := ts.FloatScalar(maxNorm)
		defer max.MustDrop()
		factor = s.T(s.T(norm.MustClampMin(max, false)).MustReciprocal(false))
		factor = s.T(factor.MustMulScalar(max, false))
	}
	return norm, factor
}

// eval scores the held-out sets and records them as the "eval" curve.
func (st *state) eval(step int) map[string]float64 {
	ev := Evaluate(st.m, st.evalSets, st.job.Train.EvalBatches)
	for k, v := range ev {
		st.add(step, "eval", k, v)
	}
	return ev
}

// diverged names why a loss means the run has diverged, or "".
func diverged(loss, bound float64) string {
	switch {
	case math.IsNaN(loss):
		return "loss is NaN"
	case math.IsInf(loss, 0):
		return "loss is Inf"
	case loss > bound:
		return fmt.Sprintf("loss %.4g exceeds diverge_loss %.4g", loss, bound)
	}
	return ""
}

func stepSeed(seed int64, step int) int64 {
	return seed*1_000_003 + int64(step) + 1
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// Provenance records what produced a run.
func Provenance(dev gotch.Device) results.Provenance {
	p := results.Provenance{GotchVersion: backend.GotchVersion(), Threads: backend.Threads(), Extra: map[string]string{"device": backend.DeviceName(dev), "malloc": backend.Malloc(), "kernels": kernels.Status()}}
	p.GoVersion = goVersion()
	if bi, err := backend.WrapperInfo(); err == nil {
		p.LibtorchVersion = bi.LibtorchVersion
		if bi.CUDABuild {
			p.CUDAVersion = "cuda build"
		}
	}
	p.BLAS = backend.BLAS()
	p.Host, _ = os.Hostname()
	p.GitCommit, p.GitDirty = gitState(filepath.Dir("."))
	return p
}
