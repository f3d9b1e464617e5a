package model

import (
	"fmt"
	"sort"
	"strings"
)

// Sharing is the paper's cross-layer parameter-sharing strategy (Table 4).
type Sharing string

const (
	ShareAll       Sharing = "all"       // ALBERT: one attention and one FFN for every layer
	ShareAttention Sharing = "attention" // one attention for every layer, an FFN per layer
	ShareFFN       Sharing = "ffn"       // an attention per layer, one FFN for every layer
	ShareNone      Sharing = "none"      // BERT: every layer its own parameters
)

// Sharings lists the four strategies in the paper's order.
var Sharings = []Sharing{ShareAll, ShareAttention, ShareFFN, ShareNone}

// Config describes every model of the paper: BERT is E = H with no sharing.
// Zero NumHeads and IntermediateSize mean the paper's defaults, H/64 and 4H;
// Resolve fills them in.
type Config struct {
	VocabSize        int     `toml:"vocab_size" json:"vocab_size"`               // V
	EmbeddingSize    int     `toml:"embedding_size" json:"embedding_size"`       // E (factorized embedding)
	HiddenSize       int     `toml:"hidden_size" json:"hidden_size"`             // H
	NumLayers        int     `toml:"num_layers" json:"num_layers"`               // L
	NumHeads         int     `toml:"num_heads" json:"num_heads"`                 // 0 = H/64
	IntermediateSize int     `toml:"intermediate_size" json:"intermediate_size"` // 0 = 4H
	MaxPositions     int     `toml:"max_positions" json:"max_positions"`         // P
	TypeVocabSize    int     `toml:"type_vocab_size" json:"type_vocab_size"`     // T
	Sharing          Sharing `toml:"sharing" json:"sharing"`                     // all | attention | ffn | none
	NumHiddenGroups  int     `toml:"num_hidden_groups" json:"num_hidden_groups"` // official grouping, with sharing = "all"
	InnerGroupNum    int     `toml:"inner_group_num" json:"inner_group_num"`     // blocks per group, with sharing = "all"
	HiddenDropout    float64 `toml:"hidden_dropout" json:"hidden_dropout"`       // embeddings, attention output, FFN output
	AttentionDropout float64 `toml:"attention_dropout" json:"attention_dropout"` // attention probabilities
	InitializerRange float64 `toml:"initializer_range" json:"initializer_range"` // σ of the truncated normal
	SentenceHead     bool    `toml:"sentence_head" json:"sentence_head"`         // NSP/SOP head; false for objective "none"
	LayerNormEps     float64 `toml:"layer_norm_eps" json:"layer_norm_eps"`       // 1e-12 as BERT/ALBERT
}

// Resolve returns c with the paper's defaults filled in.
func (c Config) Resolve() Config {
	if c.NumHeads == 0 && c.HiddenSize > 0 {
		c.NumHeads = max(1, c.HiddenSize/64)
	}
	if c.IntermediateSize == 0 {
		c.IntermediateSize = 4 * c.HiddenSize
	}
	if c.MaxPositions == 0 {
		c.MaxPositions = 512
	}
	if c.TypeVocabSize == 0 {
		c.TypeVocabSize = 2
	}
	if c.Sharing == "" {
		c.Sharing = ShareAll
	}
	if c.NumHiddenGroups == 0 {
		c.NumHiddenGroups = 1
	}
	if c.InnerGroupNum == 0 {
		c.InnerGroupNum = 1
	}
	if c.InitializerRange == 0 {
		c.InitializerRange = 0.02
	}
	if c.LayerNormEps == 0 {
		c.LayerNormEps = 1e-12
	}
	return c
}

// Validate reports the first impossible value, naming its key.
func (c Config) Validate() error {
	c = c.Resolve()
	switch {
	case c.VocabSize <= 0:
		return fmt.Errorf("vocab_size must be > 0, got %d", c.VocabSize)
	case c.EmbeddingSize <= 0:
		return fmt.Errorf("embedding_size must be > 0, got %d", c.EmbeddingSize)
	case c.HiddenSize <= 0:
		return fmt.Errorf("hidden_size must be > 0, got %d", c.HiddenSize)
	case c.NumLayers <= 0:
		return fmt.Errorf("num_layers must be > 0, got %d", c.NumLayers)
	case c.NumHeads <= 0:
		return fmt.Errorf("num_heads must be > 0, got %d", c.NumHeads)
	case c.HiddenSize%c.NumHeads != 0:
		return fmt.Errorf("num_heads = %d does not divide hidden_size = %d", c.NumHeads, c.HiddenSize)
	case c.IntermediateSize <= 0:
		return fmt.Errorf("intermediate_size must be > 0, got %d", c.IntermediateSize)
	case c.MaxPositions <= 0:
		return fmt.Errorf("max_positions must be > 0, got %d", c.MaxPositions)
	case c.TypeVocabSize <= 0:
		return fmt.Errorf("type_vocab_size must be > 0, got %d", c.TypeVocabSize)
	case c.HiddenDropout < 0 || c.HiddenDropout >= 1:
		return fmt.Errorf("hidden_dropout must be in [0, 1), got %g", c.HiddenDropout)
	case c.AttentionDropout < 0 || c.AttentionDropout >= 1:
		return fmt.Errorf("attention_dropout must be in [0, 1), got %g", c.AttentionDropout)
	case c.InitializerRange <= 0:
		return fmt.Errorf("initializer_range must be > 0, got %g", c.InitializerRange)
	}
	if !c.Sharing.Valid() {
		return fmt.Errorf("sharing must be one of %s, got %q", sharingList(), string(c.Sharing))
	}
	if c.Sharing == ShareAll {
		if c.NumHiddenGroups < 1 || c.NumHiddenGroups > c.NumLayers {
			return fmt.Errorf("num_hidden_groups must be in [1, num_layers = %d], got %d", c.NumLayers, c.NumHiddenGroups)
		}
		if c.InnerGroupNum < 1 {
			return fmt.Errorf("inner_group_num must be >= 1, got %d", c.InnerGroupNum)
		}
	} else if c.NumHiddenGroups != 1 || c.InnerGroupNum != 1 {
		return fmt.Errorf("num_hidden_groups and inner_group_num apply to sharing = \"all\" only (sharing = %q)", c.Sharing)
	}
	return nil
}

// Valid reports whether s is one of the four strategies.
func (s Sharing) Valid() bool {
	for _, v := range Sharings {
		if s == v {
			return true
		}
	}
	return false
}

func sharingList() string {
	var names []string
	for _, s := range Sharings {
		names = append(names, fmt.Sprintf("%q", string(s)))
	}
	return strings.Join(names, ", ")
}

// Preset is a named configuration of the paper.
type Preset struct {
	Name   string
	Source string // the paper's table, e.g. "v6 Table 1"
	Config Config
}

func bert(v, h, l int) Config {
	return Config{VocabSize: v, EmbeddingSize: h, HiddenSize: h, NumLayers: l, Sharing: ShareNone,
		HiddenDropout: 0.1, AttentionDropout: 0.1, SentenceHead: true}.Resolve()
}

func albert(v, e, h, l int) Config {
	return Config{VocabSize: v, EmbeddingSize: e, HiddenSize: h, NumLayers: l, Sharing: ShareAll,
		HiddenDropout: 0.1, AttentionDropout: 0.1, SentenceHead: true}.Resolve()
}

// PaperVocab is V of every model in the paper (footnote 1).
const PaperVocab = 30000

var presets = func() map[string]Preset {
	m := map[string]Preset{}
	add := func(name, src string, c Config) { m[name] = Preset{Name: name, Source: src, Config: c} }
	add("bert-base", "v6 Table 1", bert(PaperVocab, 768, 12))
	add("bert-large", "v6 Table 1", bert(PaperVocab, 1024, 24))
	add("bert-xlarge", "v1 Table 1/2", bert(PaperVocab, 2048, 24))
	add("albert-base", "v6 Table 1", albert(PaperVocab, 128, 768, 12))
	add("albert-large", "v6 Table 1", albert(PaperVocab, 128, 1024, 24))
	xl := albert(PaperVocab, 128, 2048, 24)
	xl.NumHeads = 16 // the released config: 16 heads of 128, not H/64
	add("albert-xlarge", "v6 Table 1", xl)
	xxl := albert(PaperVocab, 128, 4096, 12)
	xxl.HiddenDropout, xxl.AttentionDropout = 0, 0 // released xxlarge: no dropout
	add("albert-xxlarge", "v6 Table 1", xxl)
	// v6 Table 3: E × {not-shared, all-shared} on ALBERT-base (H 768, L 12).
	for _, e := range []int{64, 128, 256, 768} {
		for _, s := range []Sharing{ShareNone, ShareAll} {
			c := albert(PaperVocab, e, 768, 12)
			c.Sharing = s
			add(fmt.Sprintf("table3-e%d-%s", e, s), "v6 Table 3", c)
		}
	}
	// v6 Table 4: the four strategies × E ∈ {768, 128} on ALBERT-base.
	for _, e := range []int{768, 128} {
		for _, s := range Sharings {
			c := albert(PaperVocab, e, 768, 12)
			c.Sharing = s
			add(fmt.Sprintf("table4-e%d-%s", e, s), "v6 Table 4", c)
		}
	}
	// Appendix Table 11 (depth, ALBERT-large) and Table 12 (width, 3 layers).
	for _, l := range []int{1, 3, 6, 12, 24, 48} {
		add(fmt.Sprintf("table11-l%d", l), "v6 Table 11", albert(PaperVocab, 128, 1024, l))
	}
	for _, h := range []int{1024, 2048, 4096, 6144} {
		add(fmt.Sprintf("table12-h%d", h), "v6 Table 12", albert(PaperVocab, 128, h, 3))
	}
	return m
}()

// LookupPreset returns the named preset, or an error listing the names.
func LookupPreset(name string) (Preset, error) {
	p, ok := presets[name]
	if !ok {
		return Preset{}, fmt.Errorf("unknown model preset %q (known: %s)", name, strings.Join(PresetNames(), ", "))
	}
	return p, nil
}

// PresetNames lists every preset, sorted.
func PresetNames() []string {
	var names []string
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
