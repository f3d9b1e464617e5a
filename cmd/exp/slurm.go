package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/reproml/albert/experiments"
	"github.com/reproml/albert/results"
	"github.com/reproml/albert/slurm"
)

func init() {
	var (
		profile, db, runsDir, slurmDir      string
		partition, mem, timeLimit           string
		sets, sbatchArgs                    []string
		gpus, cpus, maxPar, signal, requeue int
		nodes, ranksPerNode, gpusPerNode    int
		dryRun, retry, pretrainOnly         bool
		dataDir                             string
	)
	cmd := &cobra.Command{
		Use:   "slurm FILE...",
		Short: "Submit the runs not done yet to Slurm as one job array (one task per run)",
		Long: `Plans the files like exp run (each config once, done runs skipped), writes one sbatch script
for a job array with one task per remaining run, addressed by config hash, submits it and prints
the job id and the log paths. --dry-run prints the script instead.

Each task trains its run in the run's own database (<slurm-dir>/db/<hash>.db), published as a
snapshot that exp merge folds into --db. On Slurm's warning signal (USR2, --signal seconds before a
preemption or the time limit) a task checkpoints at the next step, records the run as preempted and
requeues itself, up to --max-requeues times. See docs/SLURM.md.

Sweeps hold pretraining runs only. A file with [downstream] fine-tuning is refused, unless
--pretrain-only submits its pretraining runs; after exp merge, exp run FILE fine-tunes from their
checkpoints.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := context.Background()
			out := cmd.OutOrStdout()
			plans, notes, err := slurm.PlanFiles(args, profile, sets, dataDir, pretrainOnly)
			if err != nil {
				return err
			}
			for _, n := range notes {
				fmt.Fprintln(out, n)
			}
			var main *results.Store
			if !dryRun {
				st, err := results.Open(db)
				if err != nil {
					return err
				}
				defer st.Close()
				main = st
			} else if _, err := os.Stat(db); err == nil {
				// A dry run writes nothing: an older schema is read through an
				// upgraded private copy, not upgraded in place.
				st, done, err := results.OpenUnchanged(db)
				if err != nil {
					return err
				}
				defer done()
				main = st
			}
			device := "cpu"
			if gpus > 0 || gpusPerNode > 0 {
				device = "cuda"
			}
			if gpusPerNode > 0 && !cmd.Flags().Changed("ranks-per-node") {
				ranksPerNode = gpusPerNode // a rank per GPU
			}
			sw, skips, err := slurm.NewSweep(ctx, plans, slurm.PlanOptions{Root: slurmDir, RunsDir: runsDir, Main: main,
				Retry: retry, MaxRequeues: requeue, Device: device})
			if err != nil {
				return err
			}
			for _, s := range skips {
				fmt.Fprintf(out, "skip  %s  %s  (%s)\n", s.Hash[:12], s.Label, s.Why)
			}
			if len(sw.Runs) == 0 {
				fmt.Fprintf(out, "nothing to submit: %d runs planned, none left to train\n", len(skips))
				return nil
			}
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("exp slurm: %w", err)
			}
			wd, err := os.Getwd()
			if err != nil {
				return fmt.Errorf("exp slurm: %w", err)
			}
			var names []string
			for _, e := range sw.Experiments {
				names = append(names, e.Name)
			}
			script, err := slurm.Script(sw, slurm.ScriptOptions{JobName: "exp-" + strings.Join(names, "+"), Partition: partition,
				GPUsPerRun: gpus, CPUsPerRun: cpus, Mem: mem, Time: timeLimit, MaxParallel: maxPar, Signal: signal,
				SbatchArgs: sbatchArgs, Exp: self, WorkDir: wd, Nodes: nodes, RanksPerNode: ranksPerNode, GPUsPerNode: gpusPerNode})
			if err != nil {
				return err
			}
			if dryRun {
				fmt.Fprint(out, script)
				return nil
			}
			// The main database lists every planned run (pending until merged),
			// so exp status and exp ls show the sweep at once.
			for _, p := range plans {
				id, err := main.EnsureExperiment(p.Experiment, p.File, p.ContentHash)
				if err != nil {
					return err
				}
				for _, r := range p.Runs {
					if _, _, err := main.AddRun(id, experiments.RunSpec(r)); err != nil {
						return err
					}
				}
			}
			if err := sw.Save(); err != nil {
				return err
			}
			path := filepath.Join(sw.Dir, "job.sbatch")
			if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
				return fmt.Errorf("exp slurm: %w", err)
			}
			if err := os.MkdirAll(filepath.Join(sw.Dir, "logs"), 0o755); err != nil {
				return fmt.Errorf("exp slurm: %w", err)
			}
			job, err := slurm.Submit(ctx, path)
			if err != nil {
				return err
			}
			sw.JobID = job
			if err := sw.Save(); err != nil {
				return fmt.Errorf("job %s submitted, but: %w", job, err)
			}
			fmt.Fprintf(out, "submitted job %s: %d tasks (%s)\n", job, len(sw.Runs), path)
			for _, r := range sw.Runs {
				fmt.Fprintf(out, "  task %d  %s  %s  log %s\n", r.Task, r.Hash[:12], r.Label, sw.LogPath(r.Task))
			}
			fmt.Fprintf(out, "follow with `exp status`; fold the results into %s with `exp merge`\n", db)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&profile, "profile", "", "profile to run (default: the file's default_profile, else cpu)")
	fl.StringArrayVar(&sets, "set", nil, "override `key=value` after the profile (repeatable), as exp run")
	fl.StringVar(&db, "db", experiments.DefaultDB, "main results database: done runs are skipped, the plan is recorded")
	fl.StringVar(&runsDir, "runs-dir", experiments.DefaultRunsDir, "checkpoints, one folder per run (on a filesystem every node sees)")
	fl.StringVar(&slurmDir, "slurm-dir", slurm.DefaultRoot, "sweep records, logs and the runs' own databases (on a filesystem every node sees)")
	fl.StringVar(&partition, "partition", "", "Slurm partition")
	fl.IntVar(&gpus, "gpus-per-run", 0, "GPUs per task (0: train on the CPU; the trainer uses one device)")
	fl.IntVar(&cpus, "cpus-per-run", 0, "CPUs per task, also its libtorch threads (0: Slurm's default)")
	fl.StringVar(&mem, "mem", "", "memory per task, e.g. 16G")
	fl.StringVar(&timeLimit, "time", "", "time limit per task, e.g. 4:00:00 (a task that reaches it is checkpointed and requeued)")
	fl.IntVar(&nodes, "nodes", 1, "nodes per run: with --gpus-per-node or --ranks-per-node, each run trains data-parallel over nodes × ranks (docs/DISTRIBUTED.md; not yet run on a real multi-node cluster)")
	fl.IntVar(&gpusPerNode, "gpus-per-node", 0, "GPUs per node for each run's world, one rank each (NCCL: untested)")
	fl.IntVar(&ranksPerNode, "ranks-per-node", 1, "ranks per node for each run's world (CPU: Gloo); default --gpus-per-node")
	fl.IntVar(&maxPar, "max-parallel", 0, "array tasks running at once (0: no limit)")
	fl.IntVar(&signal, "signal", slurm.DefaultSignal, "seconds of warning (USR2) before a preemption or the time limit")
	fl.IntVar(&requeue, "max-requeues", slurm.DefaultMaxRequeues, "preemptions a run may take before it is marked failed")
	fl.StringArrayVar(&sbatchArgs, "sbatch-arg", nil, "extra sbatch option, e.g. --account=abc (repeatable)")
	fl.BoolVar(&dryRun, "dry-run", false, "print the sbatch script; submit nothing, write nothing")
	fl.BoolVar(&retry, "retry", false, "also submit failed and diverged runs, trained again from step 0")
	fl.BoolVar(&pretrainOnly, "pretrain-only", false, "submit only the pretraining runs of files with [downstream] fine-tuning (fine-tune them with exp run after exp merge)")
	fl.StringVar(&dataDir, "data-dir", experiments.DefaultDataDir(), "downstream data root (only counts the fine-tuning runs --pretrain-only leaves out)")

	task := &cobra.Command{
		Use:    "task SWEEP-DIR HASH",
		Short:  "Train one run of a submitted sweep (what each array task runs)",
		Hidden: true,
		Args:   cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			sw, err := slurm.LoadSweep(args[0])
			if err != nil {
				return err
			}
			devices, err := experiments.ParseDevices(sw.Device, cudaDeviceCount)
			if err != nil {
				return err
			}
			if newTrainer == nil {
				return errors.New("this build has no trainer")
			}
			tr, err := newTrainer()
			if err != nil {
				return err
			}
			opt := slurm.TaskOptions{SweepDir: args[0], Hash: args[1], Trainer: tr, Devices: devices[:1], Log: cmd.OutOrStdout()}
			g, dev, err := joinWorld(devices[0]) // srun's tasks of a --nodes/--ranks-per-node sweep
			if err != nil {
				return err
			}
			if g != nil {
				defer g.Close()
				return runSlurmWorldTask(cmd.OutOrStdout(), g, dev, opt)
			}
			return slurm.RunTask(context.Background(), opt)
		},
	}
	cmd.AddCommand(task)
	root.AddCommand(cmd)
}
