package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/reproml/albert/data"
	"github.com/reproml/albert/distributed"
	"github.com/reproml/albert/experiments"
	"github.com/reproml/albert/model"
	"github.com/reproml/albert/slurm"
	"github.com/reproml/albert/train"
)

// worldJob is what rank 0 tells the other ranks to train next (through the
// world's TCPStore, key "job/K"): a pretraining run's configuration, or
// Done when rank 0 has nothing more to train.
type worldJob struct {
	Done      bool           `json:"done,omitempty"`
	Name      string         `json:"name"`
	Seed      int64          `json:"seed"`
	Objective data.Objective `json:"objective"`
	Model     model.Config   `json:"model"`
	Data      data.Config    `json:"data"`
	Train     train.Config   `json:"train"`
}

// jobWait bounds how long a rank waits for rank 0's next run: rank 0 may
// plan, prepare data or fine-tune (alone) for a long time; if it dies, the
// store's connection closes and the wait ends at once.
const jobWait = 24 * time.Hour

// joinWorld joins the world this process's environment describes (exp run
// --nproc's launcher, or a Slurm step of several tasks); nil when alone.
func joinWorld(device string) (*distributed.Group, string, error) {
	c, ok, err := distributed.FromEnv(os.Getenv, device)
	if err != nil || !ok {
		return nil, device, err
	}
	if c.Backend == "nccl" {
		device = "cuda:" + strconv.Itoa(c.CUDAIndex)
	} else {
		device = "cpu"
	}
	g, err := distributed.Init(c)
	if err != nil {
		return nil, device, err
	}
	return g, device, nil
}

// worldDevice is the one device a rank trains on: --device as given, with
// auto resolved (CUDA when present).
func worldDevice(device string) (string, error) {
	if device != "auto" {
		return device, nil
	}
	devs, err := experiments.ParseDevices(device, cudaDeviceCount)
	if err != nil {
		return "", err
	}
	return devs[0], nil
}

// worldLead is rank 0: exp run as usual, each pretraining run trained in
// the world (announced to the others first); fine-tuning runs train on
// rank 0 alone while the others wait. A broken world stops the sweep: the
// run it broke stays running, and the next exp run resumes it from its
// last checkpoint (its owner, this process, is gone by then).
type worldLead struct {
	g      *distributed.Group
	device string
	next   int
	mu     sync.Mutex
	broken error
	cancel context.CancelFunc
}

func (w *worldLead) trainer(ctx context.Context, job experiments.Job) (experiments.Outcome, error) {
	if job.Run.Finetune != nil {
		return finetuneRun(ctx, job)
	}
	r := job.Run
	if micro := r.Train.BatchSize / max(1, r.Train.GradAccum); micro%w.g.Size() != 0 {
		// Refused before the others hear of it: the run fails, the world goes on.
		return experiments.Outcome{}, fmt.Errorf("batch_size %d / grad_accum %d = %d examples a micro-batch do not split over %d ranks",
			r.Train.BatchSize, r.Train.GradAccum, micro, w.g.Size())
	}
	// The data cache first, on rank 0 alone: every rank would otherwise
	// build the same tokenizer and token cache at once on first use.
	if _, err := data.Prepare(r.Data, r.Objective, cacheRoot); err != nil {
		return experiments.Outcome{}, err
	}
	if err := w.announce(worldJob{Name: r.Label, Seed: r.Seed, Objective: r.Objective, Model: r.Model, Data: r.Data, Train: r.Train}); err != nil {
		return experiments.Outcome{}, w.fail(err)
	}
	tj := experiments.TrainJob(job, cacheRoot, os.Stderr)
	tj.World = w.g
	res, err := train.Run(ctx, tj)
	switch {
	case err != nil && (errors.Is(err, train.ErrPreempted) || ctx.Err() != nil):
		// Every rank stopped at the step the world agreed on (train's stop
		// vote): a preemption or an interruption, not a broken world.
		return experiments.Outcome{}, err
	case err != nil:
		// Otherwise the other ranks may be inside a collective of this run:
		// the sweep stops, and the run resumes on the next exp run.
		return experiments.Outcome{}, w.fail(err)
	}
	return experiments.OutcomeOf(res), nil
}

func (w *worldLead) announce(j worldJob) error {
	raw, err := json.Marshal(j)
	if err != nil {
		return err
	}
	key := fmt.Sprintf("job/%d", w.next)
	w.next++
	return w.g.Set(key, raw)
}

// fail records the world's error and stops the sweep (Execute then leaves
// the run as interrupted, for the next exp run to resume).
func (w *worldLead) fail(err error) error {
	w.mu.Lock()
	if w.broken == nil {
		w.broken = err
	}
	w.mu.Unlock()
	w.cancel()
	return err
}

// runWorldLead runs exp run's request as rank 0 of g.
func runWorldLead(ctx context.Context, out io.Writer, g *distributed.Group, device string, req experiments.Request) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &worldLead{g: g, device: device, cancel: cancel}
	req.NewTrainer = func() (experiments.Trainer, error) { return experiments.TrainerFunc(w.trainer), nil }
	req.Options.Devices = []string{device}
	fmt.Fprintf(out, "world: rank 0 of %d (%s, %s)\n", g.Size(), g.Backend(), device)
	err := experiments.RunFiles(ctx, out, req)
	if w.broken != nil {
		return fmt.Errorf("the world of %d ranks broke; the interrupted run resumes from its last checkpoint on the next exp run: %w", g.Size(), w.broken)
	}
	if derr := w.announce(worldJob{Done: true}); derr != nil && err == nil {
		err = derr
	}
	return err
}

// runWorldFollower is rank K > 0: it trains what rank 0 announces, with no
// database and no checkpoint folder (rank 0 writes both), until rank 0 says
// it is done.
func runWorldFollower(ctx context.Context, out io.Writer, g *distributed.Group, device string) error {
	fmt.Fprintf(out, "world: rank %d of %d (%s, %s), following rank 0\n", g.Rank(), g.Size(), g.Backend(), device)
	for k := 0; ; k++ {
		raw, err := g.Get(fmt.Sprintf("job/%d", k), jobWait)
		if err != nil {
			return fmt.Errorf("waiting for rank 0's next run: %w", err)
		}
		var j worldJob
		if err := json.Unmarshal(raw, &j); err != nil {
			return fmt.Errorf("rank 0's run %d: %w", k, err)
		}
		if j.Done {
			return nil
		}
		res, err := train.Run(ctx, train.Job{Name: j.Name, Seed: j.Seed, Objective: j.Objective, Model: j.Model, Data: j.Data,
			Train: j.Train, Device: device, CacheRoot: cacheRoot, World: g})
		if errors.Is(err, train.ErrPreempted) {
			// Rank 0 checkpointed (the barrier in train says so) and requeues.
			fmt.Fprintf(out, "%s: preempted; rank 0 checkpointed the run\n", j.Name)
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", j.Name, err)
		}
		fmt.Fprintf(out, "%s: trained steps %d-%d as rank %d\n", j.Name, res.Resumed, res.Step, g.Rank())
	}
}

// runSlurmWorldTask is `exp slurm task` as one rank of a run's world (a
// sweep submitted with --nodes/--ranks-per-node): rank 0 is the array
// task as usual (its run's database, snapshots, preemption and requeue)
// with its trainer in the world; the others follow it. Each rank stops on
// Slurm's USR2 (sent to every rank) at the step the world agrees on.
func runSlurmWorldTask(out io.Writer, g *distributed.Group, device string, opt slurm.TaskOptions) error {
	if g.Rank() > 0 {
		ctx, cancel := context.WithCancelCause(context.Background())
		defer cancel(nil)
		sigs := make(chan os.Signal, 2)
		signal.Notify(sigs, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT)
		defer signal.Stop(sigs)
		go func() {
			if s, ok := <-sigs; ok {
				cancel(fmt.Errorf("%v: %w", s, train.ErrPreempted))
			}
		}()
		return runWorldFollower(ctx, out, g, device)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &worldLead{g: g, device: device, cancel: cancel}
	opt.Trainer, opt.Devices = experiments.TrainerFunc(w.trainer), []string{device}
	fmt.Fprintf(out, "world: rank 0 of %d (%s, %s)\n", g.Size(), g.Backend(), device)
	err := slurm.RunTask(ctx, opt)
	if w.broken != nil {
		return fmt.Errorf("the world of %d ranks broke; the run resumes from its last checkpoint when the sweep is submitted again: %w", g.Size(), w.broken)
	}
	if derr := w.announce(worldJob{Done: true}); derr != nil && err == nil {
		err = derr
	}
	return err
}
