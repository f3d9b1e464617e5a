package main

import (
	"context"
	"os"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/experiments"
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
	res, err := train.Run(ctx, experiments.TrainJob(job, cacheRoot, os.Stderr))
	if err != nil {
		return experiments.Outcome{}, err
	}
	return experiments.OutcomeOf(res), nil
}
