package distributed

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// The tests run rank 0 in the test process and rank 1 as a copy of the test
// binary (TestMain's helper), so that each rank has its own libtorch.
const helperEnv = "ALBERT_DIST_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		runtime.LockOSThread()
		if err := helper(mode); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func requireBinding(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		t.Fatalf("the c10d binding is not built (make setup): %v", err)
	}
}

// startPeer runs rank 1 of a world of 2 in mode and returns it.
func startPeer(t *testing.T, mode string, port int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, EnvPort+"="+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func join(rank, port int, timeout time.Duration) (*Group, error) {
	return Init(Config{Backend: "gloo", Host: "127.0.0.1", Port: port, Rank: rank, World: 2, Timeout: timeout})
}

// startWorld is a Gloo world of 2 on a free port: this process as rank 0,
// a peer process (rank 1) running mode.
func startWorld(t *testing.T, mode string, timeout time.Duration) (*Group, *exec.Cmd) {
	t.Helper()
	requireBinding(t)
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	peer := startPeer(t, mode, port)
	g, err := join(0, port, timeout)
	if err != nil {
		peer.Process.Kill()
		t.Fatal(err)
	}
	return g, peer
}

// helper is rank 1.
func helper(mode string) error {
	port, _ := strconv.Atoi(os.Getenv(EnvPort))
	g, err := join(1, port, 20*time.Second)
	if err != nil {
		return err
	}
	switch mode {
	case "collectives":
		defer g.Close()
		return collectives(g)
	case "die":
		// Take part in one collective, then vanish without leaving the world.
		if err := g.Barrier(); err != nil {
			return err
		}
		os.Exit(9)
	}
	return fmt.Errorf("unknown mode %q", mode)
}

// collectives is what both ranks run; rank 0 checks the results.
func collectives(g *Group) error {
	r := float64(g.Rank())
	// Mean over ranks of (rank+1)·[1 2 3] is 1.5·[1 2 3]; an int64 tensor and
	// a float64 one ride along in buckets of their own dtype.
	a := ts.MustOfSlice([]float32{1, 2, 3}).MustMulScalar(ts.FloatScalar(r+1), true)
	b := ts.MustOfSlice([]int64{int64(g.Rank()) + 10})
	c := ts.MustOfSlice([]float64{r})
	defer a.MustDrop()
	defer b.MustDrop()
	defer c.MustDrop()
	if err := g.AllReduceMean([]*ts.Tensor{a, c}); err != nil {
		return err
	}
	if err := g.AllReduceSum([]*ts.Tensor{b}); err != nil {
		return err
	}
	// Broadcast rank 0's [7 8] over rank 1's [0 0].
	p := ts.MustOfSlice([]float32{0, 0})
	if g.Rank() == 0 {
		p = ts.MustOfSlice([]float32{7, 8})
	}
	defer p.MustDrop()
	if err := g.Broadcast([]*ts.Tensor{p}, 0); err != nil {
		return err
	}
	if g.Rank() == 0 {
		if err := g.Set("greeting", []byte("hello rank 1")); err != nil {
			return err
		}
	} else {
		v, err := g.Get("greeting", 10*time.Second)
		if err != nil {
			return err
		}
		if string(v) != "hello rank 1" {
			return fmt.Errorf("store: got %q", v)
		}
	}
	if err := g.Barrier(); err != nil {
		return err
	}
	got := fmt.Sprint(a.Float64Values(), b.Int64Values(), c.Float64Values(), p.Float64Values())
	if want := "[1.5 3 4.5] [21] [0.5] [7 8]"; got != want {
		return fmt.Errorf("rank %d: got %s, want %s", g.Rank(), got, want)
	}
	return nil
}

func TestTwoGlooRanksReduceBroadcastAndShareTheStore(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	g, peer := startWorld(t, "collectives", 20*time.Second)
	defer g.Close()
	if err := collectives(g); err != nil {
		t.Error(err)
	}
	if err := peer.Wait(); err != nil {
		t.Errorf("rank 1: %v", err)
	}
}

// A rank that dies makes the other's next collective fail with ErrWorld,
// well before the timeout, instead of hanging.
func TestDeadRankEndsTheOtherWithAnError(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const timeout = 15 * time.Second
	g, peer := startWorld(t, "die", timeout)
	defer g.Close()
	if err := g.Barrier(); err != nil {
		t.Fatal(err)
	}
	peer.Wait()
	x := ts.MustOnes([]int64{1000}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	start := time.Now()
	err := g.AllReduceMean([]*ts.Tensor{x})
	took := time.Since(start)
	if err == nil {
		t.Fatal("all-reduce with a dead rank succeeded")
	}
	if !errors.Is(err, ErrWorld) || !strings.Contains(err.Error(), "rank 0 of 2") {
		t.Errorf("error %q: want ErrWorld naming the rank", err)
	}
	if took > timeout+5*time.Second {
		t.Errorf("the error took %v, more than the %v timeout", took, timeout)
	}
	t.Logf("dead peer: %v after %v", err, took.Round(time.Millisecond))
}

func TestFromEnv(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	if _, ok, err := FromEnv(env(), "cpu"); ok || err != nil {
		t.Fatalf("no variables: ok %v, err %v", ok, err)
	}
	if _, ok, err := FromEnv(env("SLURM_PROCID", "0", "SLURM_NTASKS", "1", "SLURM_JOB_NODELIST", "n1"), "cpu"); ok || err != nil {
		t.Fatalf("a Slurm task alone (array task) joined a world: ok %v, err %v", ok, err)
	}
	c, ok, err := FromEnv(env(EnvRank, "1", EnvWorld, "2", EnvPort, "29511", EnvTimeout, "30s"), "cpu")
	if !ok || err != nil || c.Rank != 1 || c.World != 2 || c.Host != "127.0.0.1" || c.Port != 29511 || c.Backend != "gloo" || c.Timeout != 30*time.Second {
		t.Fatalf("launch variables: %+v ok %v err %v", c, ok, err)
	}
	c, ok, err = FromEnv(env("SLURM_PROCID", "5", "SLURM_NTASKS", "8", "SLURM_LOCALID", "1", "SLURM_JOB_NODELIST", "gpu[03-06]", "SLURM_JOB_ID", "4242"), "cuda")
	if !ok || err != nil || c.Rank != 5 || c.World != 8 || c.Host != "gpu03" || c.Backend != "nccl" || c.CUDAIndex != 1 || c.Port < 20000 || c.Port >= 40000 {
		t.Fatalf("slurm: %+v ok %v err %v", c, ok, err)
	}
	if c, ok, err := FromEnv(env(EnvRank, "0", EnvWorld, "1", EnvPort, "29512"), "cuda"); !ok || err != nil || c.World != 1 || c.Backend != "nccl" {
		t.Errorf("exp run --nproc 1 --device cuda is an explicit world of one: %+v ok %v err %v", c, ok, err)
	}
	if _, _, err := FromEnv(env(EnvRank, "2", EnvWorld, "2", EnvPort, "1"), "cpu"); err == nil {
		t.Error("rank 2 of 2 accepted")
	}
	if _, _, err := FromEnv(env(EnvRank, "x", EnvWorld, "2", EnvPort, "1"), "cpu"); err == nil || !strings.Contains(err.Error(), EnvRank) {
		t.Errorf("bad rank: %v", err)
	}
	for list, want := range map[string]string{"node7": "node7", "a,b": "a", "gpu[03-05,9],cpu1": "gpu03", "x[12,14]": "x12", "r[1-2]-ib": "r1-ib", "c1,d[1-2]": "c1"} {
		if got, err := FirstNode(list); err != nil || got != want {
			t.Errorf("FirstNode(%q) = %q, %v; want %q", list, got, err, want)
		}
	}
	if _, err := FirstNode("bad[1-2"); err == nil {
		t.Error("unclosed [ accepted")
	}
}
