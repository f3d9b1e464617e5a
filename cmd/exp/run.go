package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/reproml/albert/distributed"
	"github.com/reproml/albert/experiments"
)

// newTrainer builds the trainer `exp run` hands runs to. The trainer's own
// file sets it in its init; a build without one can still --dry-run.
var newTrainer func() (experiments.Trainer, error)

// cudaDeviceCount reports the CUDA devices for --device auto; the backend's
// file sets it in its init.
var cudaDeviceCount func() int

func init() {
	var (
		profile, db, shard, device string
		runsDir, dataDir           string
		sets                       []string
		dryRun, retry              bool
		stale                      time.Duration
		jobs, nproc                int
		distTimeout                time.Duration
	)
	cmd := &cobra.Command{
		Use:   "run FILE...",
		Short: "Expand experiment files into runs and train the ones not done yet",
		Long: `Expands each experiment file under a profile into runs (grid × zip × seeds), validates
all of them, then claims and trains every run that is not done: pending runs, runs whose
owner died (resumed from their checkpoint) and, with --retry, failed or diverged runs
(trained again from step 0; the old attempt's checkpoints stay in the run's folder under
attempt-N, its curves in the database's retried_metrics).
A config already trained by any file is skipped. Ctrl-C stops after the current runs.

--nproc N trains each pretraining run data-parallel over N local processes
(ranks; Gloo on the CPU, NCCL on CUDA), each reading its shard of every
global batch; rank 0 alone writes the database and checkpoints
(docs/DISTRIBUTED.md). Under srun with several tasks, each task joins the
world from SLURM_PROCID, SLURM_NTASKS and SLURM_JOB_NODELIST by itself.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sh, err := experiments.ParseShard(shard)
			if err != nil {
				return err
			}
			if jobs < 1 {
				return fmt.Errorf("--jobs %d: want at least 1", jobs)
			}
			var devices []string
			if !dryRun {
				if devices, err = experiments.ParseDevices(device, cudaDeviceCount); err != nil {
					return err
				}
			}
			inWorld := os.Getenv(distributed.EnvWorld) != ""
			if cmd.Flags().Changed("nproc") && !dryRun && !inWorld {
				if jobs > 1 {
					return fmt.Errorf("--nproc and --jobs: a world trains one run at a time; use one of them")
				}
				if nproc < 1 {
					return fmt.Errorf("--nproc %d: want at least 1", nproc)
				}
				if len(devices) > 1 {
					return fmt.Errorf("--nproc: one device per rank; give --device cpu, cuda or auto")
				}
				return distributed.Launch(distributed.LaunchOptions{N: nproc, Args: os.Args[1:], Out: cmd.OutOrStdout(), Timeout: distTimeout})
			}
			if jobs > 1 && !dryRun && os.Getenv(workerEnv) == "" {
				if slices.ContainsFunc(devices, func(d string) bool { return d != "cpu" }) {
					return fmt.Errorf("--jobs is for CPU runs (--device cpu); CUDA runs take one device each")
				}
				return runWorkers(cmd.OutOrStdout(), jobs, os.Args[1:])
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			req := experiments.Request{
				Files: args, Profile: profile, Sets: sets, DryRun: dryRun, NewTrainer: newTrainer,
				DataDir: dataDir, BuildStandIns: buildStandIns,
				Options: experiments.Options{DB: db, RunsDir: runsDir, Devices: devices, Shard: sh, Retry: retry, StaleAfter: stale},
			}
			if !dryRun {
				dev, err := worldDevice(device)
				if err != nil {
					return err
				}
				g, dev, err := joinWorld(dev)
				if err != nil {
					return err
				}
				if g != nil {
					defer g.Close()
					if g.Rank() > 0 {
						return runWorldFollower(ctx, cmd.OutOrStdout(), g, dev)
					}
					return runWorldLead(ctx, cmd.OutOrStdout(), g, dev, req)
				}
			}
			return experiments.RunFiles(ctx, cmd.OutOrStdout(), req)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&profile, "profile", "", "profile to run (default: the file's default_profile, else cpu)")
	fl.StringArrayVar(&sets, "set", nil, "override `key=value` after the profile, typed and checked like the file (repeatable), e.g. train.steps=400")
	fl.StringVar(&db, "db", experiments.DefaultDB, "results database")
	fl.StringVar(&runsDir, "runs-dir", experiments.DefaultRunsDir, "checkpoints, one folder per run (config hash)")
	fl.StringVar(&dataDir, "data-dir", experiments.DefaultDataDir(), "downstream data root, official layouts (default $"+experiments.DataDirEnv+", else out/data)")
	fl.BoolVar(&dryRun, "dry-run", false, "list the runs (label, hash, parameters, estimated cost) without touching the database")
	fl.StringVar(&shard, "shard", "", "take the runs whose plan index mod N is i (`i/N`, for job arrays)")
	fl.StringVar(&device, "device", "auto", "cpu, auto, cuda, or cuda:0,cuda:1 (one run per CUDA device in parallel)")
	fl.BoolVar(&retry, "retry", false, "train failed and diverged runs again, from step 0")
	fl.IntVar(&jobs, "jobs", 1, "CPU runs to train at once, each in its own process with cores/N threads")
	fl.IntVar(&nproc, "nproc", 1, "train each pretraining run data-parallel over N local processes (Gloo on CPU, NCCL on CUDA: untested); the global batch stays the config's")
	fl.DurationVar(&distTimeout, "dist-timeout", distributed.DefaultTimeout, "with --nproc: how long a rank waits in a collective before it gives up (a dead rank ends the others sooner)")
	fl.DurationVar(&stale, "stale", experiments.DefaultStaleAfter, "take over a running run whose heartbeat is older than this")
	root.AddCommand(cmd)
}
