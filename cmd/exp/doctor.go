package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/distributed"
	"github.com/reproml/albert/kernels"
	"github.com/reproml/albert/train"
)

func init() {
	var (
		asJSON    bool
		trainStep bool
		device    string
	)
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Report Go, gotch and libtorch versions, BLAS, threads, CUDA and a measured matmul rate",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := backend.Doctor()
			if err != nil {
				return err
			}
			var smoke *train.SmokeResult
			if trainStep {
				r, err := train.Smoke(device, 5)
				if err != nil {
					return err
				}
				smoke = &r
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					backend.Facts
					Kernels     string             `json:"kernels"`
					Distributed string             `json:"distributed"`
					TrainStep   *train.SmokeResult `json:"train_step,omitempty"`
				}{f, kernels.Status(), distributed.Status(), smoke})
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
				{"threads", fmt.Sprintf("%d intra-op (of %d CPUs), OpenMP wait policy %s", f.Threads, f.CPUs, f.OMPWaitPolicy)},
				{"malloc", f.Malloc},
				{"kernels", kernels.Status()},
				{"distributed", distributed.Status()},
				{"cuda", cuda},
				{"matmul", fmt.Sprintf("%.1f GFLOP/s (fp32, 1024×1024)", f.MatmulGFLOPS)},
			}
			if smoke != nil {
				rows = append(rows, [2]string{"train step", fmt.Sprintf("tiny ALBERT on %s: loss %.4f → %.4f over %d LAMB steps, %.1f ms/step",
					smoke.Device, smoke.Losses[0], smoke.Losses[len(smoke.Losses)-1], len(smoke.Losses), smoke.MsPerStep)})
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
	cmd.Flags().BoolVar(&trainStep, "train-step", false, "also train a tiny model for a few steps on synthetic data (no corpus needed)")
	cmd.Flags().StringVar(&device, "device", "auto", "device for --train-step: auto, cpu, cuda or cuda:N")
	root.AddCommand(cmd)
}
