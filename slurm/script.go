package slurm

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// ScriptOptions are the resources and behaviour of a sweep's job array.
type ScriptOptions struct {
	JobName     string
	Partition   string
	GPUsPerRun  int    // 0 or 1: the trainer trains a run on one device
	CPUsPerRun  int    // 0: Slurm's default; also the task's libtorch threads
	Mem         string // e.g. 16G
	Time        string // e.g. 2:00:00
	MaxParallel int    // array tasks at once (0: no limit)
	Signal      int    // seconds of warning (USR2) before a preemption or the time limit
	SbatchArgs  []string
	Exp         string // absolute path of the exp binary the tasks run
	WorkDir     string // absolute; out/cache and the runs folder are relative to it
	// Nodes and RanksPerNode make each run a data-parallel world of
	// Nodes×RanksPerNode ranks (docs/DISTRIBUTED.md): srun starts one
	// `exp slurm task` per rank, which join the world from Slurm's
	// variables; with GPUsPerNode each rank has one GPU. 0 or 1 and 0 or 1:
	// one process per run, as before.
	Nodes        int
	RanksPerNode int
	GPUsPerNode  int
}

// World is the ranks each run trains on: Nodes×RanksPerNode, at least 1.
func (o ScriptOptions) World() int { return max(1, o.Nodes) * max(1, o.RanksPerNode) }

// DefaultSignal is how many seconds before the kill Slurm sends USR2, as
// submitit does: time to finish a step and write a checkpoint.
const DefaultSignal = 90

var (
	timeRE  = regexp.MustCompile(`^(\d+-)?\d+(:\d+){0,2}$|^\d+-\d+$`)
	memRE   = regexp.MustCompile(`^\d+[KMGT]?$`)
	plainRE = regexp.MustCompile(`^[A-Za-z0-9_.,:=+@%/-]+$`)
)

// Script renders the sbatch script of sw (which must be saved in sw.Dir):
// one array task per run, each running `exp slurm task` on the run its
// index names by hash. Logs go to <sweep>/logs/%A_%a.out, appended across
// requeues.
func Script(sw *Sweep, o ScriptOptions) (string, error) {
	if err := sw.check(); err != nil {
		return "", fmt.Errorf("slurm: script: %w", err)
	}
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if o.GPUsPerRun < 0 || o.GPUsPerRun > 1 {
		bad("--gpus-per-run %d: the trainer trains a run on one device (0 or 1); --nodes and --gpus-per-node train it over several", o.GPUsPerRun)
	}
	if o.Nodes < 0 || o.RanksPerNode < 0 || o.GPUsPerNode < 0 {
		bad("--nodes, --ranks-per-node and --gpus-per-node must be >= 0")
	}
	if o.GPUsPerNode > 0 && o.RanksPerNode != o.GPUsPerNode {
		bad("--gpus-per-node %d with %d ranks per node: each rank trains on one GPU", o.GPUsPerNode, o.RanksPerNode)
	}
	if o.GPUsPerNode > 0 && o.GPUsPerRun > 0 {
		bad("--gpus-per-run and --gpus-per-node: give one")
	}
	if o.CPUsPerRun < 0 {
		bad("--cpus-per-run %d: want 0 (Slurm's default) or more", o.CPUsPerRun)
	}
	if o.MaxParallel < 0 {
		bad("--max-parallel %d: want 0 (no limit) or more", o.MaxParallel)
	}
	if o.Signal < 1 {
		bad("--signal %d: want the seconds of warning before the kill, at least 1", o.Signal)
	}
	if o.Time != "" && !timeRE.MatchString(o.Time) {
		bad("--time %q: want minutes, [D-]HH:MM[:SS] or MM:SS", o.Time)
	}
	if o.Mem != "" && !memRE.MatchString(o.Mem) {
		bad("--mem %q: want a size such as 16G", o.Mem)
	}
	if o.Partition != "" && !plainRE.MatchString(o.Partition) {
		bad("--partition %q: unexpected characters", o.Partition)
	}
	for _, a := range o.SbatchArgs {
		if !strings.HasPrefix(a, "-") || strings.ContainsAny(a, "\n\r") {
			bad("--sbatch-arg %q: want one sbatch option such as --account=abc", a)
		}
	}
	if !filepath.IsAbs(o.Exp) || !filepath.IsAbs(o.WorkDir) || !filepath.IsAbs(sw.Dir) {
		bad("the exp binary, the working folder and the sweep folder must be absolute paths")
	}
	if len(errs) > 0 {
		return "", fmt.Errorf("slurm: %s", strings.Join(errs, "; "))
	}
	name := o.JobName
	if name == "" || !plainRE.MatchString(name) {
		name = "exp"
	}
	n := len(sw.Runs)
	array := fmt.Sprintf("0-%d", n-1)
	if o.MaxParallel > 0 {
		array += fmt.Sprintf("%%%d", o.MaxParallel)
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("#!/bin/bash")
	p("# exp slurm: %d runs of %s, one array task each (docs/SLURM.md).", n, experimentNames(sw))
	p("#SBATCH --job-name=%s", name)
	p("#SBATCH --array=%s", array)
	p("#SBATCH --output=%s", filepath.Join(sw.Dir, logDir, "%A_%a.out"))
	p("#SBATCH --open-mode=append")
	world := o.World() > 1
	if world {
		// Without B: the warning goes to every rank srun started; they agree
		// to stop at one step boundary, rank 0 checkpoints and requeues.
		p("#SBATCH --signal=USR2@%d", o.Signal)
	} else {
		// B: the batch shell, which exec makes the exp process itself.
		p("#SBATCH --signal=B:USR2@%d", o.Signal)
	}
	p("#SBATCH --requeue")
	if world {
		p("#SBATCH --nodes=%d", max(1, o.Nodes))
		p("#SBATCH --ntasks-per-node=%d", max(1, o.RanksPerNode))
		if o.GPUsPerNode > 0 {
			p("#SBATCH --gpus-per-node=%d", o.GPUsPerNode)
		}
	} else {
		p("#SBATCH --ntasks=1")
	}
	if o.CPUsPerRun > 0 {
		p("#SBATCH --cpus-per-task=%d", o.CPUsPerRun)
	}
	if o.GPUsPerRun > 0 {
		p("#SBATCH --gpus-per-task=%d", o.GPUsPerRun)
	}
	if o.Mem != "" {
		p("#SBATCH --mem=%s", o.Mem)
	}
	if o.Time != "" {
		p("#SBATCH --time=%s", o.Time)
	}
	if o.Partition != "" {
		p("#SBATCH --partition=%s", o.Partition)
	}
	for _, a := range o.SbatchArgs {
		p("#SBATCH %s", a)
	}
	p("set -euo pipefail")
	p("cd %s", shellQuote(o.WorkDir))
	p("# Task i trains the run with hash HASHES[i]: fixed at submission, so a")
	p("# replanned sweep cannot shift a task onto another run.")
	p("HASHES=(")
	for _, r := range sw.Runs {
		p("  %s # %s", r.Hash, strings.ReplaceAll(r.Label, "\n", " "))
	}
	p(")")
	p(`HASH=${HASHES[$SLURM_ARRAY_TASK_ID]}`)
	if o.CPUsPerRun > 0 {
		p(`export ALBERT_THREADS=${ALBERT_THREADS:-$SLURM_CPUS_PER_TASK}`)
	}
	p(`echo "exp slurm task ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} (restart ${SLURM_RESTART_COUNT:-0}) on $(hostname): run $HASH"`)
	if world {
		p("# One rank per task: each joins the world from SLURM_PROCID, SLURM_STEP_NUM_TASKS and")
		p("# the first node of SLURM_STEP_NODELIST (docs/DISTRIBUTED.md).")
		p(`exec srun %s slurm task %s "$HASH"`, shellQuote(o.Exp), shellQuote(sw.Dir))
	} else {
		p(`exec %s slurm task %s "$HASH"`, shellQuote(o.Exp), shellQuote(sw.Dir))
	}
	return b.String(), nil
}

func experimentNames(sw *Sweep) string {
	var names []string
	for _, e := range sw.Experiments {
		names = append(names, e.Name)
	}
	return strings.Join(names, ", ")
}

// shellQuote quotes s for bash.
func shellQuote(s string) string {
	if plainRE.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
