package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/data"
	"github.com/reproml/albert/experiments"
	"github.com/reproml/albert/finetune"
	"github.com/reproml/albert/finetune/tasks"
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
	if job.Run.Finetune != nil {
		return finetuneRun(ctx, job)
	}
	res, err := train.Run(ctx, experiments.TrainJob(job, cacheRoot, os.Stderr))
	if err != nil {
		return experiments.Outcome{}, err
	}
	return experiments.OutcomeOf(res), nil
}

// finetuneRun hands one planned fine-tuning run to the fine-tuning trainer:
// the pretraining run's tokenizer (its data configuration), the task's
// splits under the data root, and the pretraining run's folder beside this
// run's.
func finetuneRun(ctx context.Context, job experiments.Job) (experiments.Outcome, error) {
	r, f := job.Run, job.Run.Finetune
	ds, err := data.Prepare(r.Data, data.ObjectiveNone, cacheRoot)
	if err != nil {
		return experiments.Outcome{}, err
	}
	vocab, err := tasks.NewVocab(ds.Tokenizer())
	if err != nil {
		return experiments.Outcome{}, err
	}
	d, err := finetune.Load(f.DataDir, f.Task, vocab, f.Config)
	if err != nil {
		return experiments.Outcome{}, err
	}
	fj := finetune.Job{RunID: job.RunID, Name: r.Label, Seed: r.Seed, Encoder: r.Model, Config: f.Config, Data: d,
		Dir: job.Dir, Device: job.Device, Store: job.Store, Progress: os.Stderr}
	if f.Pretrain != "" {
		fj.Pretrained = filepath.Join(filepath.Dir(job.Dir), f.Pretrain)
	}
	res, err := finetune.Run(ctx, fj)
	if err != nil {
		return experiments.Outcome{}, err
	}
	out := experiments.Outcome{Status: results.StatusDone, Seconds: res.Seconds}
	if res.Diverged {
		out.Status, out.Reason = results.StatusDiverged, res.Reason
	}
	return out, nil
}

// buildStandIns writes the stand-in tasks under root from the offline
// sources (exp run, when a plan needs them).
func buildStandIns(root string) error {
	o := tasks.DefaultStandInOptions()
	o.Logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	return tasks.BuildStandIns(root, cacheRoot, o)
}
