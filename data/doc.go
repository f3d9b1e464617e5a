// Package data turns a corpus into ALBERT pretraining batches, following the
// official create_pretraining_data.py (Lan et al., 2020), with plain Go
// slices only.
//
// Layout:
//   - corpus: the default corpus (State of the Union addresses + Moby-Dick,
//     pinned npm tarballs, one address or chapter per document, Punkt
//     sentence splitting) and the one-sentence-per-line reader;
//   - tokenizer: SentencePiece unigram, trained with spm_train using the
//     official flags and encoded in pure Go (ids equal spm_encode's); text is
//     lowercased first, as the released models are uncased;
//   - prepare.go: held-out split (a fixed, content-hashed choice of
//     documents), tokenizer and token caches under the cache root
//     (corpus/, spm/, prepared/);
//   - pairs.go: chunks of whole sentences and [CLS] A [SEP] B [SEP] pairs
//     for the none, NSP and SOP objectives;
//   - masking.go: whole-word n-gram masking, p(n) ∝ 1/n, 80/10/10;
//   - loader.go, eval.go, stats.go: training batches, the fixed held-out
//     MLM/NSP/SOP eval sets, and dataset statistics.
//
// The quirk switch: in the official code a chunk of a single sentence always
// gets a B from a random other document (label 1), even in SOP mode, so some
// SOP negatives are NSP-style. Config.SOPRandomNegatives reproduces that; by
// default it is off and such a chunk is split inside the sentence, so every
// SOP negative is an exact swap of a positive.
//
// Reproducibility: every training example (its pair, its masking, its place
// in the epoch's shuffle) is a pure function of (seed, epoch, example index),
// using our own PCG generators, never global state. A Loader's whole state is
// its cursor: NewLoader(b, seed, c) yields exactly what an uninterrupted
// loader yields after c examples.
//
// Deviations from the official code, all documented where they live: the
// short target length is drawn per chunk rather than per document; chunk
// boundaries are fixed per prepared dataset (no "put back" of unused
// sentences after a random B); SOP truncates before swapping; a word
// never continues across [CLS]/[SEP] and a masked n-gram never masks them;
// random replacements are drawn from ordinary pieces only.
package data
