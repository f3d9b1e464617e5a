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
//
// checkpoint.json holds the newest record and, in Previous, the one before
// it, whose tensor file is kept too: a damaged newest file falls back to it.
type Checkpoint struct {
	Step     int         `json:"step"`               // optimizer steps done
	Cursor   int64       `json:"cursor"`             // examples the loader has consumed
	Seconds  float64     `json:"seconds"`            // training wall time so far
	File     string      `json:"file"`               // tensors, relative to the run folder
	SHA256   string      `json:"sha256"`             // of File
	Previous *Checkpoint `json:"previous,omitempty"` // the good checkpoint before this one, kept as a fallback

	// Fallback, set by LoadCheckpoint, says why the newest checkpoint was
	// passed over for this one ("" when this is the newest).
	Fallback string `json:"-"`
}

// prior is c as the Previous of the next checkpoint: without its own
// Previous (two are kept, not a chain), nil for no checkpoint.
func (c Checkpoint) prior() *Checkpoint {
	if c.File == "" {
		return nil
	}
	c.Previous, c.Fallback = nil, ""
	return &c
}

const checkpointJSON = "checkpoint.json"

// SaveCheckpoint writes the tensors to a new step-numbered file, then
// atomically replaces checkpoint.json (temp file + rename), then removes the
// tensor files of older checkpoints except c.Previous's. A crash at any
// moment leaves the previous checkpoints whole. The caller sets c.Previous
// to the last checkpoint it knows to be good (the one it saved or resumed
// from), never to one that failed to load.
func SaveCheckpoint(dir string, c Checkpoint, m *model.Model, opt *Optimizer) error {
	_, err := saveCheckpoint(dir, c, m, opt)
	return err
}

// saveCheckpoint is SaveCheckpoint; it returns the record as written (File
// and SHA256 set).
func saveCheckpoint(dir string, c Checkpoint, m *model.Model, opt *Optimizer) (Checkpoint, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return c, fmt.Errorf("train: checkpoint: %w", err)
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
		return c, fmt.Errorf("train: checkpoint: %w", err)
	}
	sum, err := FileSHA256(tmp)
	if err != nil {
		return c, err
	}
	if err := syncFile(tmp); err != nil {
		return c, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return c, fmt.Errorf("train: checkpoint: %w", err)
	}
	c.SHA256 = sum
	if c.Previous != nil && c.Previous.File == c.File {
		c.Previous = nil
	}
	raw, _ := json.MarshalIndent(c, "", "  ")
	jtmp := filepath.Join(dir, checkpointJSON+".tmp")
	if err := os.WriteFile(jtmp, raw, 0o644); err != nil {
		return c, fmt.Errorf("train: checkpoint: %w", err)
	}
	if err := syncFile(jtmp); err != nil {
		return c, err
	}
	if err := os.Rename(jtmp, filepath.Join(dir, checkpointJSON)); err != nil {
		return c, fmt.Errorf("train: checkpoint: %w", err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "step-*.pt*"))
	for _, f := range old {
		if b := filepath.Base(f); b != c.File && (c.Previous == nil || b != c.Previous.File) {
			os.Remove(f)
		}
	}
	return c, nil
}

// ErrNoCheckpoint means the run folder holds no checkpoint yet.
var ErrNoCheckpoint = errors.New("no checkpoint")

// LoadCheckpoint verifies the latest checkpoint's checksum and copies its
// tensors into m and opt. When the latest is damaged (checksum, missing or
// unreadable file) and the previous one is kept, it loads that one instead
// and returns it with Fallback saying what was wrong with the latest; when
// both are bad, the error names both.
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
	err = loadTensors(dir, c, m, opt)
	if err == nil || c.Previous == nil {
		return c, err
	}
	prev := *c.Previous
	if perr := loadTensors(dir, prev, m, opt); perr != nil {
		return c, fmt.Errorf("%w; the previous checkpoint (step %d) is no good either: %v", err, prev.Step, perr)
	}
	prev.Fallback = fmt.Sprintf("checkpoint at step %d is damaged (%v)", c.Step, err)
	return prev, nil
}

// loadTensors verifies c's file against its checksum and copies its tensors
// into m and opt.
func loadTensors(dir string, c Checkpoint, m *model.Model, opt *Optimizer) error {
	path := filepath.Join(dir, c.File)
	sum, err := FileSHA256(path)
	if err != nil {
		return err
	}
	if sum != c.SHA256 {
		return fmt.Errorf("train: checkpoint %s is corrupt: sha256 %s, recorded %s", path, sum, c.SHA256)
	}
	named, err := ts.LoadMultiWithDevice(path, m.Device)
	if err != nil {
		return fmt.Errorf("train: checkpoint %s: %w", path, err)
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
			return fmt.Errorf("train: checkpoint %s has no parameter %s", path, p.Name)
		}
		backend.NoGrad(func() { p.Tensor.Copy_(src) })
	}
	if err := opt.Load(byName); err != nil {
		return err
	}
	return nil
}

// FileSHA256 is the hex SHA-256 of a file: the checksum a checkpoint record
// keeps of its tensors (and finetune's best record of its weights).
func FileSHA256(path string) (string, error) {
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
