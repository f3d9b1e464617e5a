package main

import (
	"context"
	"os"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/experiments"
	"github.com/reproml/albert/results"
	"github.com/reproml/albert/train"
)

// cacheRoot holds the corpus, tokenizers and token caches (exp data fetch).
const cacheRoot = "out/cache"

func init() {
	cudaDeviceCount = backend.CUDADevices
	newTrainer = func() (experiments.Trainer, error) {
		return experiments.TrainerFunc(trainRun), nil
	}
}

// trainRun hands one planned run to the trainer.
func trainRun(ctx context.Context, job experiments.Job) (experiments.Outcome, error) {
	r := job.Run
	res, err := train.Run(ctx, train.Job{
		RunID: job.RunID, Name: r.Label, Seed: r.Seed, Objective: r.Objective,
		Model: r.Model, Data: r.Data, Train: r.Train,
		Dir: job.Dir, Device: job.Device, CacheRoot: cacheRoot, Store: job.Store, Progress: os.Stderr,
	})
	if err != nil {
		return experiments.Outcome{}, err
	}
	out := experiments.Outcome{Status: results.StatusDone, Seconds: res.Seconds}
	if res.Diverged {
		out.Status, out.Reason = results.StatusDiverged, res.Reason
	}
	return out, nil
}
