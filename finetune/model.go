// Package finetune fine-tunes a pretrained ALBERT/BERT encoder on a
// downstream task as the official code does (run_classifier.py,
// run_squad_v1.py / run_squad_v2.py, run_race.py): a task head on the
// encoder (heads.go), the official AdamW with warm-up and decay (the
// project's optimizer, train.Optimizer), dev evaluation every N steps with
// the best score kept (model.ckpt-best), checkpoints with exact resume, and
// every number in the results store. Data and scoring come from packages
// finetune/tasks and finetune/score. docs/FINETUNING.md is the user's guide.
package finetune

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/finetune/tasks"
	"github.com/reproml/albert/model"
	"github.com/reproml/albert/train"
)

// Model is an encoder with one task head. Params are the trained tensors:
// the embeddings, encoder and pooler of the pretrained model and the head's;
// the pretraining heads (MLM, sentence) are built by model.New but neither
// trained nor saved.
type Model struct {
	Enc    *model.Model
	Head   *Head
	Params []model.Param
	shell  *model.Model // Params and Device only: what train's checkpoints read
}

// NewModel builds enc's architecture (dropout inside the encoder set to
// c.EncoderDropout, no sentence head) and a head for task, initialised from
// libtorch's and Go's generators under seed (official: truncated normal
// σ = initializer_range for the head, zeros for its bias).
func NewModel(enc model.Config, task tasks.Task, c Config, seed int64, dev gotch.Device) (*Model, error) {
	enc.HiddenDropout, enc.AttentionDropout = c.EncoderDropout, c.EncoderDropout
	enc.SentenceHead = false
	if err := backend.Seed(seed); err != nil {
		return nil, err
	}
	m, err := model.New(enc, dev)
	if err != nil {
		return nil, err
	}
	h, err := newHead(task, m.Config, c.ClassifierDropout, seed, dev)
	if err != nil {
		m.VarStore.Destroy()
		return nil, err
	}
	h.Pooling = c.Pooling
	fm := &Model{Enc: m, Head: h}
	for _, p := range m.Params {
		if strings.HasPrefix(p.Name, "mlm/") || strings.HasPrefix(p.Name, "sentence") {
			continue
		}
		fm.Params = append(fm.Params, p)
	}
	fm.Params = append(fm.Params, h.params...)
	fm.shell = &model.Model{Config: m.Config, Device: dev, Params: fm.Params}
	return fm, nil
}

// Close frees the model's tensors.
func (m *Model) Close() {
	m.Head.close()
	m.Enc.VarStore.Destroy()
}

// truncNormal is a [rows, cols] tensor of N(0, σ²) draws re-drawn outside
// ±2σ (TensorFlow's truncated_normal_initializer), from a Go generator
// seeded by seed: the head's initial weights are a function of the seed.
func truncNormal(rows, cols int64, sigma float64, seed int64, dev gotch.Device) *ts.Tensor {
	return truncNormalFrom(rand.New(rand.NewPCG(uint64(seed), 0x6865616421)), rows, cols, sigma, dev)
}

// LoadPretrained copies the embeddings, encoder and pooler of the newest
// good checkpoint of a pretraining run (its folder, as train.Run wrote it)
// into m; the checkpoint's pretraining heads and optimizer moments are left
// out. Every parameter of m's encoder must be in the file.
func (m *Model) LoadPretrained(dir string) error {
	var ck train.Checkpoint
	raw, err := os.ReadFile(filepath.Join(dir, "checkpoint.json"))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("finetune: pretraining run %s has no checkpoint (is it done?)", dir)
	}
	if err != nil {
		return fmt.Errorf("finetune: %w", err)
	}
	if err := json.Unmarshal(raw, &ck); err != nil {
		return fmt.Errorf("finetune: %s: %w", filepath.Join(dir, "checkpoint.json"), err)
	}
	err = m.loadEncoder(filepath.Join(dir, ck.File))
	if err != nil && ck.Previous != nil {
		if perr := m.loadEncoder(filepath.Join(dir, ck.Previous.File)); perr == nil {
			return nil
		}
	}
	return err
}

func (m *Model) loadEncoder(path string) error {
	return m.loadParams(path, "pretrained checkpoint", func(name string) bool { return !strings.HasPrefix(name, "head/") })
}

// loadParams copies the tensors "param/NAME" of the file at path into m's
// parameters that want(NAME); every wanted parameter must be there with its
// shape. what names the file in errors.
func (m *Model) loadParams(path, what string, want func(name string) bool) error {
	named, err := ts.LoadMultiWithDevice(path, m.Enc.Device)
	if err != nil {
		return fmt.Errorf("finetune: %s %s: %w", what, path, err)
	}
	defer func() {
		for _, n := range named {
			n.Tensor.MustDrop()
		}
	}()
	byName := map[string]*ts.Tensor{}
	for _, n := range named {
		byName[n.Name] = n.Tensor
	}
	for _, p := range m.Params {
		if !want(p.Name) {
			continue
		}
		src, ok := byName["param/"+p.Name]
		if !ok {
			return fmt.Errorf("finetune: %s %s has no parameter %s (a different architecture or task?)", what, path, p.Name)
		}
		if a, b := src.MustSize(), p.Tensor.MustSize(); fmt.Sprint(a) != fmt.Sprint(b) {
			return fmt.Errorf("finetune: %s %s: %s has shape %v, the model %v", what, path, p.Name, a, b)
		}
		backend.NoGrad(func() { p.Tensor.Copy_(src) })
	}
	return nil
}
