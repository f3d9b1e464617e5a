package main

import (
	"github.com/spf13/cobra"

	"github.com/reproml/albert/experiments"
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
}
