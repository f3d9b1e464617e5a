package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/reproml/albert/backend"
)

func init() {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Report Go, gotch and libtorch versions, BLAS, threads, CUDA and a measured matmul rate",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := backend.Doctor()
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(f)
			}
			cuda := "no"
			if f.CUDA {
				cuda = strings.Join(f.CUDADevices, ", ")
			}
			rows := [][2]string{
				{"go", f.GoVersion},
				{"gotch", f.GotchVersion},
				{"libtorch", f.LibtorchVersion + " (" + f.LibtorchDir + ")"},
				{"wrapper", f.Wrapper},
				{"stubbed ops", fmt.Sprintf("%d (gotch wrappers that do not compile against this libtorch)", f.StubbedOps)},
				{"blas", f.BLAS},
				{"threads", fmt.Sprintf("%d intra-op (of %d CPUs)", f.Threads, f.CPUs)},
				{"cuda", cuda},
				{"matmul", fmt.Sprintf("%.1f GFLOP/s (fp32, 1024×1024)", f.MatmulGFLOPS)},
			}
			for _, r := range rows {
				fmt.Printf("%-12s %s\n", r[0], r[1])
			}
			if !strings.Contains(strings.ToLower(f.BLAS), "openblas") && !f.CUDA {
				fmt.Println("\nwarning: libtorch is not using OpenBLAS; matrix products will be ~40× slower (apt-get install libopenblas0-openmp)")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	root.AddCommand(cmd)
}
