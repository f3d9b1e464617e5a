package backend

import (
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

func TestInitSetsThreadsToCPUs(t *testing.T) {
	defer lockThread()()
	t.Setenv("ALBERT_THREADS", "")
	if err := SetThreads(0); err != nil {
		t.Fatal(err)
	}
	if got, want := Threads(), cpus(); got != want {
		t.Fatalf("threads = %d, want one per CPU (%d)", got, want)
	}
	if err := SetThreads(1); err != nil {
		t.Fatal(err)
	}
	if Threads() != 1 {
		t.Fatalf("SetThreads(1) left %d threads", Threads())
	}
	SetThreads(0)
}

func TestSeedMakesRandomTensorsEqual(t *testing.T) {
	defer lockThread()()
	draw := func(seed int64) []float64 {
		if err := Seed(seed); err != nil {
			t.Fatal(err)
		}
		x := ts.MustRandn([]int64{3, 5}, gotch.Float, gotch.CPU)
		defer x.MustDrop()
		return x.Float64Values()
	}
	a, b, c := draw(7), draw(7), draw(8)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, different values at %d: %v vs %v", i, a[i], b[i])
		}
	}
	same := true
	for i := range a {
		same = same && a[i] == c[i]
	}
	if same {
		t.Fatal("seeds 7 and 8 drew identical tensors")
	}
}

// A stubbed wrapper must come back as a Go error naming the op, not a crash.
func TestStubbedOpReturnsError(t *testing.T) {
	defer lockThread()()
	bi, err := WrapperInfo()
	if err != nil {
		t.Fatal(err)
	}
	stubbed := false
	for _, s := range bi.Stubbed {
		stubbed = stubbed || s == "atg_scaled_dot_product_attention"
	}
	if !stubbed {
		t.Skipf("libtorch %s has scaled_dot_product_attention; nothing stubbed to call", bi.LibtorchVersion)
	}
	q := ts.MustRandn([]int64{1, 2, 4, 8}, gotch.Float, gotch.CPU)
	defer q.MustDrop()
	mask := ts.MustOnes([]int64{1, 2, 4, 4}, gotch.Float, gotch.CPU)
	defer mask.MustDrop()
	_, err = ts.ScaledDotProductAttention(q, q, q, mask, 0, false, nil)
	if err == nil {
		t.Fatal("stubbed op returned no error")
	}
	for _, want := range []string{"atg_scaled_dot_product_attention", bi.LibtorchVersion} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not name %q", err, want)
		}
	}
}

// Forward, backward and an optimizer step through gotch decrease a loss.
func TestTrainingStepDecreasesLoss(t *testing.T) {
	defer lockThread()()
	if err := Seed(1); err != nil {
		t.Fatal(err)
	}
	vs := nn.NewVarStore(gotch.CPU)
	lin := nn.NewLinear(vs.Root(), 8, 1, nn.DefaultLinearConfig())
	opt, err := nn.DefaultAdamConfig().Build(vs, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	x := ts.MustRandn([]int64{32, 8}, gotch.Float, gotch.CPU)
	y := x.MustSumDimIntlist([]int64{1}, true, gotch.Float, false)
	var first, last float64
	for step := 0; step < 50; step++ {
		pred := lin.Forward(x)
		loss := pred.MustMseLoss(y, 1, true)
		if step == 0 {
			first = loss.Float64Values()[0]
		}
		last = loss.Float64Values()[0]
		opt.BackwardStep(loss)
		loss.MustDrop()
	}
	if !(last < first/4) {
		t.Fatalf("loss went from %g to %g; want a clear decrease", first, last)
	}
}

func TestDeviceNames(t *testing.T) {
	defer lockThread()()
	if d, err := Device("cpu"); err != nil || d != gotch.CPU {
		t.Fatalf("cpu: %v %v", d, err)
	}
	for _, bad := range []string{"tpu", "cuda:x", "cuda:-1"} {
		if _, err := Device(bad); err == nil {
			t.Errorf("Device(%q) accepted", bad)
		}
	}
	if CUDADevices() == 0 {
		if _, err := Device("cuda:0"); err == nil {
			t.Error("cuda:0 accepted without CUDA")
		}
	}
}

var lockThread = LockThread

func TestNoGradRestoresMode(t *testing.T) {
	defer lockThread()()
	w := ts.MustOnes([]int64{2}, gotch.Float, gotch.CPU).MustSetRequiresGrad(true, true)
	NoGrad(func() {
		NoGrad(func() {}) // nested: must restore "off", not "on"
		if y := w.MustMulScalar(ts.FloatScalar(2), false); y.MustRequiresGrad() {
			t.Error("inside NoGrad, an op on a leaf tracked gradients")
		}
	})
	if y := w.MustMulScalar(ts.FloatScalar(2), false); !y.MustRequiresGrad() {
		t.Error("after NoGrad, gradient tracking stayed off")
	}
}
