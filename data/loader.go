package data

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
)

// Batch is a batch of masked sentence pairs (docs/ARCHITECTURE.md).
type Batch struct {
	Size, SeqLen, MaxPred int
	InputIDs              []int64   // Size*SeqLen
	SegmentIDs            []int64   // Size*SeqLen, 0 for [CLS] A [SEP], 1 for B [SEP]
	InputMask             []int64   // Size*SeqLen, 1 real token, 0 padding
	MaskedPositions       []int64   // Size*MaxPred, position inside the sequence; 0 where padded
	MaskedIDs             []int64   // Size*MaxPred, original token id
	MaskedWeights         []float32 // Size*MaxPred, 1 real prediction, 0 padding
	SentenceLabels        []int64   // Size; 0 = original order / true next, 1 = swapped (SOP) / random (NSP)
	// NegativeKinds says, for held-out NSP pairs, where a random B segment
	// came from: NegNone (a true next segment, or not an NSP eval batch),
	// NegSameSource or NegOtherSource (the corpus's sources file names each
	// document's source), NegUnknownSource (no sources file). Nil in training
	// batches.
	NegativeKinds []int8
}

// Kinds of NSP negatives (Batch.NegativeKinds).
const (
	NegNone          int8 = 0
	NegSameSource    int8 = 1
	NegOtherSource   int8 = 2
	NegUnknownSource int8 = 3
)

func newBatch(size, seqLen, maxPred int) Batch {
	return Batch{Size: size, SeqLen: seqLen, MaxPred: maxPred,
		InputIDs: make([]int64, size*seqLen), SegmentIDs: make([]int64, size*seqLen), InputMask: make([]int64, size*seqLen),
		MaskedPositions: make([]int64, size*maxPred), MaskedIDs: make([]int64, size*maxPred), MaskedWeights: make([]float32, size*maxPred),
		SentenceLabels: make([]int64, size)}
}

// example is one finished training example.
type example struct {
	tokens []int32 // [CLS] A [SEP] B [SEP], masked
	lenA   int     // len([CLS] A [SEP])
	label  int64
	m      masked
	short  bool
	doc    int32 // the chunk's document
	other  int32 // the document of a random B segment (NSP negative), else -1
}

// Random streams: independent generators per purpose.
const (
	streamExample uint64 = 1 + iota
	streamOrder
	streamEvalMLM
	streamEvalNSP
	streamEvalSOP
	streamTrainPairs
)

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// newRand returns the generator of (seed, stream, a, b).
func newRand(seed int64, stream uint64, a, b uint64) *rand.Rand {
	s1 := splitmix(splitmix(uint64(seed)^stream<<56) ^ a)
	s2 := splitmix(splitmix(b) ^ stream)
	return rand.New(rand.NewPCG(s1, s2))
}

// makeExample builds the example of chunk c from r: pair, layout, masking.
func (d *Dataset) makeExample(sp *split, c chunk, o pairOptions, r *rand.Rand) example {
	p := buildPair(sp, c, o, r)
	toks := make([]int32, 0, len(p.a)+len(p.b)+3)
	toks = append(toks, d.cls)
	toks = append(toks, p.a...)
	toks = append(toks, d.sep)
	lenA := len(toks)
	toks = append(toks, p.b...)
	toks = append(toks, d.sep)
	ex := example{tokens: toks, lenA: lenA, label: p.label, short: c.short, doc: c.doc, other: p.other}
	ex.m = d.maskTokens(toks, r)
	return ex
}

// put writes ex into row i of b.
func (b *Batch) put(i int, ex example) {
	row := b.InputIDs[i*b.SeqLen : (i+1)*b.SeqLen]
	seg := b.SegmentIDs[i*b.SeqLen : (i+1)*b.SeqLen]
	msk := b.InputMask[i*b.SeqLen : (i+1)*b.SeqLen]
	for j, t := range ex.tokens {
		row[j] = int64(t)
		msk[j] = 1
		if j >= ex.lenA {
			seg[j] = 1
		}
	}
	for j := range ex.m.positions {
		b.MaskedPositions[i*b.MaxPred+j] = int64(ex.m.positions[j])
		b.MaskedIDs[i*b.MaxPred+j] = int64(ex.m.labels[j])
		b.MaskedWeights[i*b.MaxPred+j] = 1
	}
	b.SentenceLabels[i] = ex.label
}

// trainOptions are the pair options of training examples.
func (d *Dataset) trainOptions() pairOptions {
	return pairOptions{obj: d.obj, quirk: d.cfg.SOPRandomNegatives, maxTokens: d.cfg.SeqLen - 3, forceSwap: -1}
}

// variant is the construction epoch of epoch: itself under dynamic masking,
// epoch mod dupe_factor under static masking.
func (d *Dataset) variant(epoch int64) int64 {
	if d.cfg.DupeFactor > 0 {
		return epoch % int64(d.cfg.DupeFactor)
	}
	return epoch
}

// epochOrder is the shuffled chunk order of an epoch.
func (d *Dataset) epochOrder(seed, epoch int64) []int {
	return newRand(seed, streamOrder, uint64(epoch), 0).Perm(len(d.chunks))
}

// trainExample is example index i of epoch under seed, given the epoch order.
func (d *Dataset) trainExample(seed, epoch int64, order []int, i int) example {
	c := order[i]
	r := newRand(seed, streamExample, uint64(d.variant(epoch)), uint64(c))
	return d.makeExample(&d.train, d.chunks[c], d.trainOptions(), r)
}

// Loader yields training batches from a cursor. Example k of the stream (k
// counted from 0 over all epochs) is example k mod N of epoch k / N, where N
// is ExamplesPerEpoch; epochs are shuffled from (seed, epoch) and every
// example is a pure function of (seed, epoch, chunk), so the cursor is the
// loader's whole state. Batches are assembled ahead on a goroutine.
type Loader struct {
	d      *Dataset
	size   int   // rows of each batch this loader yields
	stride int64 // examples of each global batch (size, unless sharded)
	offset int64 // this shard's first row in the global batch
	seed   int64
	cursor int64
	ch     chan Batch
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("data: loader closed")

// NewLoader starts a loader of batchSize examples at cursor (examples
// consumed so far). NewLoader(b, seed, c) yields exactly the batches an
// uninterrupted loader yields after c examples. A batchSize below 1 is
// treated as 1, a negative cursor as 0.
func (d *Dataset) NewLoader(batchSize int, seed int64, cursor int64) *Loader {
	batchSize = max(1, batchSize)
	return d.newLoader(batchSize, int64(batchSize), 0, seed, cursor)
}

// NewShardLoader is rank's share of the loader of global batches of
// globalSize examples in a world of world ranks (data-parallel training):
// of each global batch it yields the rows [rank·globalSize/world,
// (rank+1)·globalSize/world), so the world's shards, concatenated in rank
// order, are NewLoader(globalSize, seed, cursor)'s batch — a pure function
// of (seed, step, rank). The cursor counts global examples, as NewLoader's:
// a checkpoint resumes under any world size that divides globalSize.
func (d *Dataset) NewShardLoader(globalSize int, seed int64, cursor int64, rank, world int) (*Loader, error) {
	switch {
	case globalSize < 1 || world < 1:
		return nil, fmt.Errorf("data: shard loader of batch %d over %d ranks", globalSize, world)
	case rank < 0 || rank >= world:
		return nil, fmt.Errorf("data: rank %d is not in a world of %d", rank, world)
	case globalSize%world != 0:
		return nil, fmt.Errorf("data: a batch of %d examples does not split over %d ranks", globalSize, world)
	}
	local := globalSize / world
	return d.newLoader(local, int64(globalSize), int64(rank*local), seed, cursor), nil
}

func (d *Dataset) newLoader(size int, stride, offset int64, seed, cursor int64) *Loader {
	cursor = max(0, cursor)
	l := &Loader{d: d, size: size, stride: stride, offset: offset, seed: seed, cursor: cursor, ch: make(chan Batch, 4), stop: make(chan struct{})}
	l.wg.Add(1)
	go l.run(cursor)
	return l
}

func (l *Loader) run(cursor int64) {
	defer l.wg.Done()
	defer close(l.ch)
	n := int64(len(l.d.chunks))
	epoch := int64(-1)
	var order []int
	for {
		b := newBatch(l.size, l.d.cfg.SeqLen, l.d.cfg.MaxPredictions)
		for i := 0; i < l.size; i++ {
			k := cursor + l.offset + int64(i)
			if e := k / n; e != epoch {
				epoch, order = e, l.d.epochOrder(l.seed, e)
			}
			b.put(i, l.d.trainExample(l.seed, epoch, order, int(k%n)))
		}
		cursor += l.stride
		select {
		case l.ch <- b:
		case <-l.stop:
			return
		}
	}
}

// Next returns the next batch.
func (l *Loader) Next() (Batch, error) {
	b, ok := <-l.ch
	if !ok {
		return Batch{}, ErrClosed
	}
	l.cursor += l.stride
	return b, nil
}

// Cursor is the number of examples consumed so far (by Next), counting from
// the stream's start, including the starting cursor.
func (l *Loader) Cursor() int64 { return l.cursor }

// Close stops the producer goroutine. Next then returns ErrClosed.
func (l *Loader) Close() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
	for range l.ch {
	}
}
