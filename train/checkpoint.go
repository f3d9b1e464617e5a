package train

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/model"
)

// Checkpoint is the small JSON record of a checkpoint; the tensors (model
// parameters and optimizer moments) are in the file it names. Everything
// else a run needs to continue exactly is derived: the data loader's state
// is its cursor, and dropout is reseeded from (seed, step) every step.
type Checkpoint struct {
	Step    int     `json:"step"`    // optimizer steps done
	Cursor  int64   `json:"cursor"`  // examples the loader has consumed
	Seconds float64 `json:"seconds"` // training wall time so far
	File    string  `json:"file"`    // tensors, relative to the run folder
	SHA256  string  `json:"sha256"`  // of File
}

const checkpointJSON = "checkpoint.json"

// SaveCheckpoint writes the tensors to a new step-numbered file, then
// atomically replaces checkpoint.json (temp file + rename), then removes older
// tensor files. A crash at any moment leaves the previous checkpoint whole.
func SaveCheckpoint(dir string, c Checkpoint, m *model.Model, opt *Optimizer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	named := make([]ts.NamedTensor, 0, len(m.Params)*3)
	for _, p := range m.Params {
		named = append(named, ts.NamedTensor{Name: "param/" + p.Name, Tensor: p.Tensor})
	}
	named = append(named, opt.State()...)
	c.File = fmt.Sprintf("step-%08d.pt", c.Step)
	final := filepath.Join(dir, c.File)
	tmp := final + ".tmp"
	// Not ts.SaveMulti: it under-allocates its C name array (4-byte pointers).
	if err := ts.SaveMultiNew(named, tmp); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	sum, err := fileSHA256(tmp)
	if err != nil {
		return err
	}
	if err := syncFile(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	c.SHA256 = sum
	raw, _ := json.MarshalIndent(c, "", "  ")
	jtmp := filepath.Join(dir, checkpointJSON+".tmp")
	if err := os.WriteFile(jtmp, raw, 0o644); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	if err := syncFile(jtmp); err != nil {
		return err
	}
	if err := os.Rename(jtmp, filepath.Join(dir, checkpointJSON)); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "step-*.pt*"))
	for _, f := range old {
		if filepath.Base(f) != c.File {
			os.Remove(f)
		}
	}
	return nil
}

// ErrNoCheckpoint means the run folder holds no checkpoint yet.
var ErrNoCheckpoint = errors.New("no checkpoint")

// LoadCheckpoint verifies the latest checkpoint's checksum and copies its
// tensors into m and opt.
func LoadCheckpoint(dir string, m *model.Model, opt *Optimizer) (Checkpoint, error) {
	var c Checkpoint
	raw, err := os.ReadFile(filepath.Join(dir, checkpointJSON))
	if errors.Is(err, os.ErrNotExist) {
		return c, ErrNoCheckpoint
	}
	if err != nil {
		return c, fmt.Errorf("train: checkpoint: %w", err)
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("train: checkpoint %s: %w", filepath.Join(dir, checkpointJSON), err)
	}
	path := filepath.Join(dir, c.File)
	sum, err := fileSHA256(path)
	if err != nil {
		return c, err
	}
	if sum != c.SHA256 {
		return c, fmt.Errorf("train: checkpoint %s is corrupt: sha256 %s, recorded %s", path, sum, c.SHA256)
	}
	named, err := ts.LoadMultiWithDevice(path, m.Device)
	if err != nil {
		return c, fmt.Errorf("train: checkpoint %s: %w", path, err)
	}
	byName := map[string]*ts.Tensor{}
	for _, n := range named {
		byName[n.Name] = n.Tensor
	}
	defer func() {
		for _, n := range named {
			n.Tensor.MustDrop()
		}
	}()
	for _, p := range m.Params {
		src, ok := byName["param/"+p.Name]
		if !ok {
			return c, fmt.Errorf("train: checkpoint %s has no parameter %s", path, p.Name)
		}
		backend.NoGrad(func() { p.Tensor.Copy_(src) })
	}
	if err := opt.Load(byName); err != nil {
		return c, err
	}
	return c, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("train: checkpoint: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("train: checkpoint: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !strings.Contains(err.Error(), "invalid argument") {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	return nil
}
