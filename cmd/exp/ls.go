package main

import (
	"github.com/spf13/cobra"

	"github.com/reproml/albert/experiments"
	"github.com/reproml/albert/results"
)

func init() {
	var db string
	ls := &cobra.Command{
		Use:   "ls [EXPERIMENT]",
		Short: "List experiments and their runs' statuses (with a name: its runs)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := experiments.OpenExisting(db)
			if err != nil {
				return err
			}
			defer st.Close()
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			return experiments.WriteExperiments(cmd.OutOrStdout(), st, name)
		},
	}
	ls.Flags().StringVar(&db, "db", experiments.DefaultDB, "results database")
	root.AddCommand(ls)

	var sdb, profile string
	status := &cobra.Command{
		Use:   "status [EXPERIMENT]",
		Short: "Show run progress: status, step/total, heartbeat age, owner",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := experiments.OpenExisting(sdb)
			if err != nil {
				return err
			}
			defer st.Close()
			f := results.RunFilter{Profile: profile}
			if len(args) == 1 {
				f.Experiment = args[0]
			}
			return experiments.WriteStatus(cmd.OutOrStdout(), st, f)
		},
	}
	status.Flags().StringVar(&sdb, "db", experiments.DefaultDB, "results database")
	status.Flags().StringVar(&profile, "profile", "", "only runs of this profile")
	root.AddCommand(status)
}
