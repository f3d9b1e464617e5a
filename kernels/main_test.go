package kernels

import (
	"os"
	"testing"

	"github.com/reproml/albert/backend"
)

// TestMain uses every core, as exp does (libtorch's default here is 1).
func TestMain(m *testing.M) {
	if err := backend.Init(); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}
