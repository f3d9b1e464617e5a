package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/reproml/albert/experiments"
)

func init() {
	root.AddCommand(&cobra.Command{
		Use:   "schema",
		Short: "Print a fully commented experiment file documenting every key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), experiments.SchemaExample)
			return err
		},
	})
}
