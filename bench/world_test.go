package bench

import (
	"io"
	"strings"
	"testing"
)

// WorldWorker launches n ranks and keeps rank 0's result line; a world
// whose rank 0 prints none, or whose rank fails, is an error.
func TestWorldWorkerReadsRankZerosResult(t *testing.T) {
	script := `if [ "$ALBERT_RANK" = 0 ]; then echo noise; echo '{"config":"tiny-all","tokens_per_sec":1234}'; else echo '{"config":"wrong"}'; fi`
	r, err := WorldWorker([]string{"/bin/sh", "-c", script}, 2, io.Discard)
	if err != nil || r.Config != "tiny-all" || r.TokensPerSec != 1234 {
		t.Fatalf("got %+v, %v", r, err)
	}
	if _, err := WorldWorker([]string{"/bin/sh", "-c", "echo nothing"}, 2, io.Discard); err == nil || !strings.Contains(err.Error(), "no result") {
		t.Errorf("no result line: %v", err)
	}
	if _, err := WorldWorker([]string{"/bin/sh", "-c", `[ "$ALBERT_RANK" = 0 ] || exit 3`}, 2, io.Discard); err == nil || !strings.Contains(err.Error(), "rank 1: exit status 3") {
		t.Errorf("a failed rank: %v", err)
	}
}

func TestWriteScaling(t *testing.T) {
	var b strings.Builder
	WriteScaling(&b, []Scaling{{Spec: Spec{Name: "tiny-all"}, N: 2, One: Result{Threads: 2, TokensPerSec: 1000, MsMedian: 10},
		World: Result{Threads: 1, TokensPerSec: 1500, MsMedian: 7}, Ratio: 1.5}})
	if s := b.String(); !strings.Contains(s, "1.50×") || !strings.Contains(s, "1500") {
		t.Errorf("table:\n%s", s)
	}
}
