package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Task is one array task as Slurm reports it.
type Task struct {
	JobID  string // "<array job>_<task>"
	Index  int
	State  string // PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, PREEMPTED, REQUEUED, …
	Reason string // squeue's reason (pending), or sacct's exit code
	Source string // squeue or sacct
}

// Active reports whether the task is queued or running (it may still train).
func (t Task) Active() bool {
	switch strings.Fields(t.State + " ")[0] {
	case "PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING":
		return true
	}
	return false
}

// ParseSqueue reads `squeue -h -r -o '%i|%T|%r'` output of one array job:
// one line per task ("123_4|RUNNING|None"). Lines of other jobs are skipped.
func ParseSqueue(out []byte, job string) (map[int]Task, error) {
	tasks := map[int]Task{}
	for n, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) != 3 {
			return nil, fmt.Errorf("squeue line %d: %q: want id|state|reason", n+1, line)
		}
		i, ok := taskIndex(f[0], job)
		if !ok {
			continue
		}
		tasks[i] = Task{JobID: f[0], Index: i, State: f[1], Reason: f[2], Source: "squeue"}
	}
	return tasks, nil
}

// ParseSacct reads `sacct -n -P -X -o JobID,State,ExitCode` output of one
// array job ("123_4|COMPLETED|0:0"; "CANCELLED by 0" keeps its first word).
func ParseSacct(out []byte, job string) (map[int]Task, error) {
	tasks := map[int]Task{}
	for n, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) != 3 {
			return nil, fmt.Errorf("sacct line %d: %q: want JobID|State|ExitCode", n+1, line)
		}
		i, ok := taskIndex(f[0], job)
		if !ok {
			continue
		}
		state := strings.Fields(f[1] + " ")[0]
		tasks[i] = Task{JobID: f[0], Index: i, State: state, Reason: "exit " + f[2], Source: "sacct"}
	}
	return tasks, nil
}

// taskIndex reads "<job>_<i>" (an array task of job); a pending range such
// as "123_[4-9]" is not one task (squeue -r expands those).
func taskIndex(id, job string) (int, bool) {
	rest, ok := strings.CutPrefix(id, job+"_")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	return i, err == nil && i >= 0
}

// Query asks Slurm for the tasks of array job: squeue for the ones it still
// knows, sacct (when accounting is on) for the rest. The error is set only
// when neither command answered.
func Query(ctx context.Context, job string) (map[int]Task, error) {
	tasks := map[int]Task{}
	var errs []error
	out, err := run(ctx, "squeue", "-h", "-r", "--states=all", "-j", job, "-o", "%i|%T|%r")
	if err == nil {
		sq, perr := ParseSqueue(out, job)
		if perr != nil {
			return nil, perr
		}
		tasks = sq
	} else {
		errs = append(errs, err)
	}
	out, err = run(ctx, "sacct", "-n", "-P", "-X", "-j", job, "-o", "JobID,State,ExitCode")
	if err == nil {
		sa, perr := ParseSacct(out, job)
		if perr != nil {
			return nil, perr
		}
		for i, t := range sa {
			if _, ok := tasks[i]; !ok {
				tasks[i] = t
			}
		}
	} else {
		errs = append(errs, err)
	}
	if len(errs) == 2 {
		return nil, fmt.Errorf("slurm: job %s: %w", job, errors.Join(errs...))
	}
	return tasks, nil
}

// Requeue puts array task job (e.g. "123_4") back in the queue:
// `scontrol requeue`, as submitit does after a checkpoint.
func Requeue(ctx context.Context, job string) error {
	_, err := run(ctx, "scontrol", "requeue", job)
	return err
}

// Submit runs `sbatch --parsable script` and returns the job id.
func Submit(ctx context.Context, script string) (string, error) {
	out, err := run(ctx, "sbatch", "--parsable", script)
	if err != nil {
		return "", err
	}
	id, _, _ := strings.Cut(strings.TrimSpace(string(out)), ";") // "id;cluster" on federations
	if _, err := strconv.Atoi(id); err != nil {
		return "", fmt.Errorf("slurm: sbatch printed %q, want a job id", out)
	}
	return id, nil
}

// run runs a Slurm command with a timeout; the error names the command and
// carries its stderr.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return nil, fmt.Errorf("slurm: %s %s: %w", name, strings.Join(args, " "), err)
		}
		return nil, fmt.Errorf("slurm: %s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return out, nil
}
