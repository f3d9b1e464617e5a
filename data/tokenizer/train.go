package tokenizer

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
)

// Special pieces of ALBERT's vocabulary (R:README.md spm_train command).
const (
	PadPiece  = "<pad>"
	UnkPiece  = "<unk>"
	CLSPiece  = "[CLS]"
	SEPPiece  = "[SEP]"
	MaskPiece = "[MASK]"
)

// UserDefinedSymbols are ALBERT's --user_defined_symbols.
var UserDefinedSymbols = []string{"(", ")", "\"", "-", ".", "–", "£", "€"}

// TrainArgs are the spm_train flags of the official ALBERT vocabulary
// (unigram, pad 0, unk 1, no bos/eos, [CLS] [SEP] [MASK] control symbols,
// character coverage 0.99995), for input text and an output prefix.
// hard_vocab_limit is off so small corpora get the largest vocabulary they
// support instead of an error; seed and thread count are fixed for
// reproducibility.
func TrainArgs(input, prefix string, vocabSize int) []string {
	udf := ""
	for i, s := range UserDefinedSymbols {
		if i > 0 {
			udf += ","
		}
		udf += s
	}
	return []string{
		"--input=" + input,
		"--model_prefix=" + prefix,
		"--vocab_size=" + strconv.Itoa(vocabSize),
		"--model_type=unigram",
		"--character_coverage=0.99995",
		"--pad_id=0", "--unk_id=1", "--eos_id=-1", "--bos_id=-1",
		"--control_symbols=[CLS],[SEP],[MASK]",
		"--user_defined_symbols=" + udf,
		"--shuffle_input_sentence=true",
		"--input_sentence_size=10000000",
		"--hard_vocab_limit=false",
		"--random_seed=12345",
		"--num_threads=" + strconv.Itoa(max(1, runtime.NumCPU())),
		"--minloglevel=2",
	}
}

// ErrNoSPMTrain means spm_train is not on PATH.
var ErrNoSPMTrain = errors.New("spm_train not found on PATH (install the Debian package sentencepiece, or copy a trained model into the cache)")

// Train runs spm_train on input (one sentence per line) and writes
// prefix.model and prefix.vocab. It returns the loaded model.
func Train(input, prefix string, vocabSize int) (*Model, error) {
	bin, err := exec.LookPath("spm_train")
	if err != nil {
		return nil, ErrNoSPMTrain
	}
	if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	cmd := exec.Command(bin, TrainArgs(input, prefix, vocabSize)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	if err := cmd.Run(); err != nil {
		tail := stderr.Bytes()
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return nil, fmt.Errorf("tokenizer: spm_train (vocab %d) failed: %v: %s", vocabSize, err, tail)
	}
	return Load(prefix + ".model")
}
