package tasks

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/reproml/albert/data/tokenizer"
)

// Vocab is the pretraining tokenizer with its special ids. Text is
// lowercased before encoding, as the pretraining pipeline does (data.Prepare:
// the released ALBERT models are uncased).
type Vocab struct {
	Model         *tokenizer.Model
	CLS, SEP, Pad int64
}

// NewVocab wraps a SentencePiece model; it must have [CLS], [SEP] and <pad>.
func NewVocab(m *tokenizer.Model) (*Vocab, error) {
	if m == nil {
		return nil, fmt.Errorf("tasks: no tokenizer model")
	}
	v := &Vocab{Model: m}
	for piece, dst := range map[string]*int64{tokenizer.CLSPiece: &v.CLS, tokenizer.SEPPiece: &v.SEP, tokenizer.PadPiece: &v.Pad} {
		id, ok := m.ID(piece)
		if !ok {
			return nil, fmt.Errorf("tasks: tokenizer model lacks %s", piece)
		}
		*dst = int64(id)
	}
	return v, nil
}

// Encode returns the token ids of text, lowercased first.
func (v *Vocab) Encode(text string) []int64 {
	ids := v.Model.Encode(strings.ToLower(text))
	out := make([]int64, len(ids))
	for i, id := range ids {
		out[i] = int64(id)
	}
	return out
}

// Options are the sequence limits of featurization.
type Options struct {
	// MaxSeqLen is the length of every sequence (the paper: 512; SQuAD 1.1
	// 384).
	MaxSeqLen int
	// MaxQueryLen keeps a SQuAD question's first tokens (squad_utils: 64).
	MaxQueryLen int
	// DocStride is the step between SQuAD context windows (128).
	DocStride int
	// MaxQALen keeps the last tokens of a RACE question+option (run_race.py
	// max_qa_length: 128).
	MaxQALen int
}

// DefaultOptions are the official limits for a sequence length.
func DefaultOptions(maxSeqLen int) Options {
	return Options{MaxSeqLen: maxSeqLen, MaxQueryLen: 64, DocStride: 128, MaxQALen: 128}
}

// Featurize turns examples into model inputs as the official code does:
// classification/regression pairs (classifier_utils.convert_single_example),
// SQuAD windows (squad_utils.convert_examples_to_features; several Features
// per long context) and RACE's four option sequences
// (race_utils.convert_single_example). Feature.ExampleIndex points into
// examples.
func Featurize(t Task, examples []Example, v *Vocab, o Options) ([]Feature, error) {
	if v == nil {
		return nil, fmt.Errorf("tasks: featurize %s: no vocabulary", t.Name)
	}
	if o.MaxSeqLen < 3 {
		return nil, fmt.Errorf("tasks: featurize %s: max sequence length %d, want at least 3", t.Name, o.MaxSeqLen)
	}
	var out []Feature
	for i, ex := range examples {
		var fs []Feature
		var err error
		switch t.Kind {
		case Classification, Regression:
			var f Feature
			f, err = pairFeature(t, ex, v, o)
			fs = []Feature{f}
		case MultipleChoice:
			var f Feature
			f, err = choiceFeature(t, ex, v, o)
			fs = []Feature{f}
		case Span:
			fs, err = spanFeatures(ex, v, o)
		default:
			err = fmt.Errorf("unknown kind %q", t.Kind)
		}
		if err != nil {
			return nil, fmt.Errorf("tasks: featurize %s example %d (%s): %w", t.Name, i, ex.ID, err)
		}
		for j := range fs {
			fs[j].ExampleIndex = i
		}
		out = append(out, fs...)
	}
	return out, nil
}

// sequence lays out [CLS] a [SEP] (b [SEP]) padded to n: ids, segments, mask.
func sequence(v *Vocab, a, b []int64, n int) (ids, seg, mask []int64) {
	ids, seg, mask = make([]int64, n), make([]int64, n), make([]int64, n)
	for i := range ids {
		ids[i] = v.Pad
	}
	p := 0
	put := func(id, s int64) {
		ids[p], seg[p], mask[p] = id, s, 1
		p++
	}
	put(v.CLS, 0)
	for _, id := range a {
		put(id, 0)
	}
	put(v.SEP, 0)
	if b != nil {
		for _, id := range b {
			put(id, 1)
		}
		put(v.SEP, 1)
	}
	return ids, seg, mask
}

// truncatePair pops the last token of the longer sequence (b on a tie) until
// the pair fits (_truncate_seq_pair).
func truncatePair(a, b []int64, n int) ([]int64, []int64) {
	for len(a)+len(b) > n {
		if len(a) > len(b) {
			a = a[:len(a)-1]
		} else {
			b = b[:len(b)-1]
		}
	}
	return a, b
}

func pairFeature(t Task, ex Example, v *Vocab, o Options) (Feature, error) {
	a := v.Encode(ex.TextA)
	var b []int64
	if ex.TextB != "" {
		b = v.Encode(ex.TextB)
	}
	if b != nil && len(b) > 0 {
		a, b = truncatePair(a, b, o.MaxSeqLen-3)
	} else {
		b = nil
		if len(a) > o.MaxSeqLen-2 {
			a = a[:o.MaxSeqLen-2]
		}
	}
	ids, seg, mask := sequence(v, a, b, o.MaxSeqLen)
	f := Feature{IDs: [][]int64{ids}, Segments: [][]int64{seg}, Mask: [][]int64{mask}}
	if t.Kind == Regression {
		f.Target = float32(ex.Score)
		return f, nil
	}
	if ex.Label < 0 || ex.Label >= len(t.Labels) {
		return f, fmt.Errorf("label %d outside 0..%d", ex.Label, len(t.Labels)-1)
	}
	f.Label = ex.Label
	return f, nil
}

// QAText is a RACE question joined with one option: the option fills every
// "_" blank of the question, or is appended after a space when there is none
// (race_utils.read_examples).
func QAText(question, option string) string {
	if strings.Contains(question, "_") {
		return strings.ReplaceAll(question, "_", option)
	}
	return question + " " + option
}

func choiceFeature(t Task, ex Example, v *Vocab, o Options) (Feature, error) {
	if len(ex.Options) != t.Choices {
		return Feature{}, fmt.Errorf("%d options, want %d", len(ex.Options), t.Choices)
	}
	if ex.Label < 0 || ex.Label >= t.Choices {
		return Feature{}, fmt.Errorf("answer %d outside 0..%d", ex.Label, t.Choices-1)
	}
	if o.MaxQALen < 1 || o.MaxQALen > o.MaxSeqLen-3 {
		return Feature{}, fmt.Errorf("max question+option length %d must lie in 1..%d (max sequence length − 3)", o.MaxQALen, o.MaxSeqLen-3)
	}
	article := v.Encode(ex.Article)
	f := Feature{Label: ex.Label}
	for _, opt := range ex.Options {
		qa := v.Encode(QAText(ex.Question, opt))
		if len(qa) > o.MaxQALen {
			qa = qa[len(qa)-o.MaxQALen:] // the last tokens: the option is at the end
		}
		ctx := article
		if len(ctx)+len(qa) > o.MaxSeqLen-3 {
			ctx = ctx[:o.MaxSeqLen-3-len(qa)]
		}
		ids, seg, mask := sequence(v, ctx, qa, o.MaxSeqLen)
		f.IDs = append(f.IDs, ids)
		f.Segments = append(f.Segments, seg)
		f.Mask = append(f.Mask, mask)
	}
	return f, nil
}

// contextToken is one token of a SQuAD context and the bytes it covers.
type contextToken struct {
	id         int64
	start, end int // byte span in the context
}

// isSpace is whitespace that separates SQuAD context words (BERT's
// _is_whitespace plus Unicode spaces).
func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\r' || r == '\n' || r == 0x202F || unicode.IsSpace(r)
}

// tokenizeContext splits the context into whitespace-separated words and
// encodes each (lowercased) on its own: SentencePiece never joins pieces
// across whitespace, so this gives the ids of encoding the whole text while
// keeping each token's place in the original. When a word's pieces spell out
// its lowercased text exactly, each token gets its own byte span; otherwise
// (normalisation changed the characters, <unk>) every token of the word
// spans the whole word.
func tokenizeContext(v *Vocab, ctx string) []contextToken {
	var out []contextToken
	for i := 0; i < len(ctx); {
		r, n := utf8.DecodeRuneInString(ctx[i:])
		if isSpace(r) {
			i += n
			continue
		}
		j := i
		for j < len(ctx) {
			r, n := utf8.DecodeRuneInString(ctx[j:])
			if isSpace(r) {
				break
			}
			j += n
		}
		out = append(out, wordTokens(v, ctx[i:j], i)...)
		i = j
	}
	return out
}

func wordTokens(v *Vocab, word string, at int) []contextToken {
	// lower[k] came from word[orig[k]:]; a rune whose lowercase has another
	// byte length maps all its bytes to the rune's first byte.
	var lower strings.Builder
	var orig []int
	for k, r := range word {
		l := string(unicode.ToLower(r))
		lower.WriteString(l)
		for range len(l) {
			orig = append(orig, k)
		}
	}
	low := lower.String()
	orig = append(orig, len(word))
	ids := v.Model.Encode(low)
	toks := make([]contextToken, len(ids))
	pos, exact := 0, true
	for k, id := range ids {
		p := v.Model.Pieces[id]
		text := strings.TrimPrefix(p.Text, "\u2581")
		if p.Type == tokenizer.Unknown || !strings.HasPrefix(low[pos:], text) {
			exact = false
			break
		}
		toks[k] = contextToken{id: int64(id), start: at + orig[pos], end: at + orig[pos+len(text)]}
		pos += len(text)
	}
	if !exact || pos != len(low) {
		for k, id := range ids {
			toks[k] = contextToken{id: int64(id), start: at, end: at + len(word)}
		}
	}
	return toks
}

// byteOffset converts a character (code point) offset into a byte offset.
func byteOffset(s string, chars int) int {
	for i := range s {
		if chars == 0 {
			return i
		}
		chars--
	}
	return len(s)
}

// spanFeatures is squad_utils.convert_examples_to_features for one example:
// [CLS] question [SEP] window [SEP], windows of at most
// MaxSeqLen − |question| − 3 context tokens every DocStride tokens, the gold
// answer (the first) as token positions, or 0/0 when it is not wholly inside
// the window or there is none.
func spanFeatures(ex Example, v *Vocab, o Options) ([]Feature, error) {
	if o.MaxQueryLen < 1 || o.DocStride < 1 {
		return nil, fmt.Errorf("max query length %d and doc stride %d must be positive", o.MaxQueryLen, o.DocStride)
	}
	query := v.Encode(ex.Question)
	if len(query) > o.MaxQueryLen {
		query = query[:o.MaxQueryLen]
	}
	if o.MaxSeqLen-len(query)-3 < 1 {
		return nil, fmt.Errorf("max sequence length %d leaves no room for the context after a %d-token question", o.MaxSeqLen, len(query))
	}
	ctx := tokenizeContext(v, ex.Context)
	// The gold answer as context token indexes.
	tokStart, tokEnd := -1, -1
	if !ex.IsImpossible && len(ex.Answers) > 0 {
		a := ex.Answers[0]
		bs := byteOffset(ex.Context, a.Start)
		be := byteOffset(ex.Context, a.Start+utf8.RuneCountInString(a.Text))
		for k, tk := range ctx {
			if tk.end > bs && tk.start < be {
				if tokStart < 0 {
					tokStart = k
				}
				tokEnd = k
			}
		}
	}
	maxDoc := o.MaxSeqLen - len(query) - 3
	type span struct{ start, length int }
	var spans []span
	for start := 0; start < len(ctx); {
		length := min(len(ctx)-start, maxDoc)
		spans = append(spans, span{start, length})
		if start+length == len(ctx) {
			break
		}
		start += min(length, o.DocStride)
	}
	isMax := func(cur, pos int) bool {
		best, bestScore := -1, 0.0
		for k, s := range spans {
			end := s.start + s.length - 1
			if pos < s.start || pos > end {
				continue
			}
			score := float64(min(pos-s.start, end-pos)) + 0.01*float64(s.length)
			if best < 0 || score > bestScore {
				best, bestScore = k, score
			}
		}
		return best == cur
	}
	offset := len(query) + 2
	var out []Feature
	for w, s := range spans {
		doc := make([]int64, s.length)
		for k := range doc {
			doc[k] = ctx[s.start+k].id
		}
		ids, seg, mask := sequence(v, query, doc, o.MaxSeqLen)
		f := Feature{IDs: [][]int64{ids}, Segments: [][]int64{seg}, Mask: [][]int64{mask}, Label: -1,
			Window: w, WindowStart: s.start, ContextStart: offset, ContextLen: s.length,
			CharStart: make([]int, o.MaxSeqLen), CharEnd: make([]int, o.MaxSeqLen), MaxContext: make([]bool, o.MaxSeqLen)}
		for k := range f.CharStart {
			f.CharStart[k], f.CharEnd[k] = -1, -1
		}
		for k := 0; k < s.length; k++ {
			tk := ctx[s.start+k]
			f.CharStart[offset+k], f.CharEnd[offset+k] = tk.start, tk.end
			f.MaxContext[offset+k] = isMax(w, s.start+k)
		}
		if tokStart >= 0 && tokStart >= s.start && tokEnd <= s.start+s.length-1 {
			f.Start, f.End = tokStart-s.start+offset, tokEnd-s.start+offset
		} else {
			f.Impossible = true
		}
		out = append(out, f)
	}
	return out, nil
}
