package train

// LearningRate is the official schedule (optimization.py): linear warm-up
// from 0 to the peak over WarmupSteps, then linear (polynomial power 1)
// decay from the peak to 0 at Steps. step counts from 0. A warm-up longer
// than the run never reaches the peak: like optimization.py, the rate rises
// until the last step (e.g. a 50-step test of a 100-step warm-up profile).
func (c Config) LearningRate(step int) float64 {
	if c.WarmupSteps > 0 && step < c.WarmupSteps {
		return c.LR * float64(step) / float64(c.WarmupSteps)
	}
	left := float64(c.Steps - step)
	if left < 0 {
		left = 0
	}
	return c.LR * left / float64(c.Steps)
}
