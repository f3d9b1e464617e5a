package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/reproml/albert/experiments"
	"github.com/reproml/albert/results"
	"github.com/reproml/albert/slurm"
)

func init() {
	var db, profile, slurmDir string
	status := &cobra.Command{
		Use:   "status [EXPERIMENT]",
		Short: "Show run progress: status, step/total, heartbeat age, owner; and Slurm tasks",
		Long: `Shows each run's status, step/total, heartbeat age and owner from the database. Runs
submitted with exp slurm get a second table: their array task, its state from squeue (or
sacct, when accounting is on), and the run as its task's own database last published it
(status, step, heartbeat, preemptions), beside the main database's status.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := experiments.OpenExisting(db)
			if err != nil {
				return err
			}
			defer st.Close()
			f := results.RunFilter{Profile: profile}
			if len(args) == 1 {
				f.Experiment = args[0]
			}
			if err := experiments.WriteStatus(cmd.OutOrStdout(), st, f); err != nil {
				return err
			}
			runs, err := st.Runs(f)
			if err != nil {
				return err
			}
			return writeSlurmStatus(cmd.OutOrStdout(), slurmDir, runs, time.Now())
		},
	}
	status.Flags().StringVar(&db, "db", experiments.DefaultDB, "results database")
	status.Flags().StringVar(&profile, "profile", "", "only runs of this profile")
	status.Flags().StringVar(&slurmDir, "slurm-dir", slurm.DefaultRoot, "where exp slurm keeps sweeps and the runs' databases")
	root.AddCommand(status)
}

// writeSlurmStatus prints, for the runs submitted to Slurm, their latest
// array task and its state beside the database's status and the task's own.
func writeSlurmStatus(w io.Writer, dir string, runs []results.Run, now time.Time) error {
	sweeps, err := slurm.Sweeps(dir)
	if err != nil || len(sweeps) == 0 {
		return err
	}
	type at struct {
		sw   *slurm.Sweep
		task int
	}
	latest := map[string]at{} // sweeps are newest first
	for _, s := range sweeps {
		for _, r := range s.Runs {
			if _, ok := latest[r.Hash]; !ok {
				latest[r.Hash] = at{s, r.Task}
			}
		}
	}
	states := map[string]map[int]slurm.Task{}
	queryErr := map[string]error{}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintf(w, "\nSlurm (%s):\n", dir)
	fmt.Fprintln(tw, "id\tlabel\tdb status\ttask\tslurm state\ttask db\tstep\theartbeat\tpreempted\tlog")
	shown := 0
	for _, r := range runs {
		a, ok := latest[r.ConfigHash]
		if !ok {
			continue
		}
		job := a.sw.JobID
		if _, done := states[job]; !done && queryErr[job] == nil {
			states[job], queryErr[job] = slurm.Query(context.Background(), job)
		}
		state := "?"
		if t, ok := states[job][a.task]; ok {
			state = t.State
			if t.Reason != "" && t.Reason != "None" {
				state += " (" + t.Reason + ")"
			}
		} else if queryErr[job] != nil {
			state = "unknown (no squeue/sacct answer)"
		} else {
			state = "gone from squeue"
		}
		snap, step, hb, pre := "-", "-", "-", "-"
		if s, ok := slurm.ReadSnapshot(slurm.SnapshotDB(a.sw.Root, r.ConfigHash)); ok {
			snap, step, pre = string(s.Status), fmt.Sprintf("%d/%d", s.Step, s.Total), fmt.Sprint(s.Preemptions)
			if !s.HeartbeatAt.IsZero() {
				hb = now.Sub(s.HeartbeatAt).Round(time.Second).String() + " ago"
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s_%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Name, r.Status, job, a.task, state,
			snap, step, hb, pre, a.sw.LogPath(a.task))
		shown++
	}
	if shown == 0 {
		fmt.Fprintln(w, "no run shown here was submitted to Slurm")
		return nil
	}
	return tw.Flush()
}
