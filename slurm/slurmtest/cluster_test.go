package slurmtest

import (
	"strings"
	"testing"
)

// The cluster starts, runs a batch job and stops.
func TestClusterRunsAJob(t *testing.T) {
	c := Start(t)
	out, err := c.Command("sbatch", "--parsable", "--wait", "--output=/dev/null", "--wrap", "echo hello").CombinedOutput()
	if err != nil {
		t.Fatalf("sbatch: %v\n%s\n%s", err, out, c.Log("slurmctld"))
	}
	if strings.TrimSpace(string(out)) == "" {
		t.Fatal("sbatch printed no job id")
	}
}
