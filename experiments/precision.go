package experiments

import (
	"fmt"
	"strings"
)

// checkPrecisions refuses, before the database is touched, a plan with a
// run whose train.precision the trainer cannot honour on a device it would
// be trained on (train.Config.CheckPrecision): a run is never trained in
// one precision while its config, and hash, name another.
func checkPrecisions(plan *Plan, devices []string) error {
	for _, r := range plan.Runs {
		for _, dev := range workers(devices) {
			if err := r.Train.CheckPrecision(strings.HasPrefix(dev, "cuda")); err != nil {
				return fmt.Errorf("%s: run %d (%s) on %s: %w", plan.File, r.Index, r.Label, dev, err)
			}
		}
	}
	return nil
}
