package model

import (
	"testing"

	"github.com/reproml/albert/backend"
)

// A hand count: V 10, E 4, H 8, L 2, 2 heads, I 16, all-shared, with a
// sentence head; batch 2, seq 6 (T = 12 tokens), 3 masked slots a sequence.
//
//	projection E→H   2·T·E·H        = 2·12·4·8         =    768
//	Q, K, V, O       L·4·2·T·H²     = 2·4·2·12·64      = 12,288
//	scores, ·V       L·2·2·T·S·H    = 2·2·2·12·6·8     =  4,608
//	FFN              L·2·2·T·H·I    = 2·2·2·12·8·16    = 12,288
//	MLM transform    2·B·P·H·E      = 2·2·3·8·4        =    384
//	MLM decoder      2·B·P·E·V      = 2·2·3·4·10       =    480
//	pooler           2·B·H²         = 2·2·64           =    256
//	sentence head    2·B·H·2        = 2·2·8·2          =     64
//	forward                                            = 31,136; a step 3× = 93,408
func TestFLOPsHandCount(t *testing.T) {
	c := Config{VocabSize: 10, EmbeddingSize: 4, HiddenSize: 8, NumLayers: 2, NumHeads: 2,
		IntermediateSize: 16, Sharing: ShareAll, SentenceHead: true}
	want := FLOPs{Projection: 768, AttentionQKV: 12288, Scores: 4608, FFN: 12288,
		MLMTransform: 384, MLMDecoder: 480, Pooler: 256, Sentence: 64}
	if got := c.ForwardFLOPs(2, 6, 3); got != want {
		t.Fatalf("ForwardFLOPs = %+v\nwant            %+v", got, want)
	}
	if got := c.TrainStepFLOPs(2, 6, 3); got != 93408 {
		t.Fatalf("TrainStepFLOPs = %g, want 93408", got)
	}
}

// What the count must follow and what it must not.
func TestFLOPsFollowTheComputation(t *testing.T) {
	base := Config{VocabSize: 1000, EmbeddingSize: 32, HiddenSize: 64, NumLayers: 4, Sharing: ShareAll, SentenceHead: true}
	f := base.ForwardFLOPs(4, 128, 20)

	// Sharing saves parameters, not arithmetic.
	for _, s := range Sharings {
		c := base
		c.Sharing = s
		if got := c.ForwardFLOPs(4, 128, 20); got != f {
			t.Errorf("sharing %s: %+v, want %+v", s, got, f)
		}
	}
	// The decoder is computed at the masked slots: doubling the sequence
	// doubles the encoder's dense work but leaves the MLM head alone.
	long := base.ForwardFLOPs(4, 256, 20)
	if long.MLMDecoder != f.MLMDecoder || long.MLMTransform != f.MLMTransform || long.FFN != 2*f.FFN {
		t.Errorf("seq 256 vs 128: decoder %g vs %g, FFN %g vs %g", long.MLMDecoder, f.MLMDecoder, long.FFN, f.FFN)
	}
	if more := base.ForwardFLOPs(4, 128, 40); more.MLMDecoder != 2*f.MLMDecoder {
		t.Errorf("40 masked slots: decoder %g, want %g", more.MLMDecoder, 2*f.MLMDecoder)
	}
	// Attention's products grow with S² (per token with S).
	if long.Scores != 4*f.Scores {
		t.Errorf("scores at seq 256 = %g, want 4 × %g", long.Scores, f.Scores)
	}
	// No projection when E = H; no pooler or sentence head without a head.
	eh := base
	eh.EmbeddingSize = 64
	if got := eh.ForwardFLOPs(4, 128, 20).Projection; got != 0 {
		t.Errorf("E = H: projection %g, want 0", got)
	}
	none := base
	none.SentenceHead = false
	if got := none.ForwardFLOPs(4, 128, 20); got.Pooler != 0 || got.Sentence != 0 {
		t.Errorf("no sentence head: pooler %g, sentence %g", got.Pooler, got.Sentence)
	}
	// The official grouping runs inner_group_num blocks a layer.
	inner := base
	inner.InnerGroupNum = 2
	if got := inner.ForwardFLOPs(4, 128, 20); got.FFN != 2*f.FFN || got.AttentionQKV != 2*f.AttentionQKV {
		t.Errorf("inner_group_num 2: FFN %g, want %g", got.FFN, 2*f.FFN)
	}
}

// The count's MLM and encoder terms are those of the tensors the model
// really produces: the decoder's logits have B·P rows (not B·S), the
// encoder's output T·H. Fails if the head is moved back to every token.
func TestFLOPsMatchTheForwardShapes(t *testing.T) {
	defer backend.LockThread()()
	c := tiny(ShareAll, 8)
	m := build(t, c, 1)
	defer m.VarStore.Destroy()
	var s backend.Scope
	defer s.Free()
	in := inputs(t)
	out := m.Forward(&s, in, false, false)
	logits := out.MLMLogits.MustSize()
	hidden := out.Hidden.MustSize()
	B, S := in.IDs.MustSize()[0], in.IDs.MustSize()[1]
	P := in.MaskedPositions.MustSize()[1]
	f := c.ForwardFLOPs(int(B), int(S), int(P))
	if want := 2 * float64(logits[0]) * float64(c.EmbeddingSize) * float64(logits[1]); f.MLMDecoder != want {
		t.Errorf("decoder: counted %g, the logits [%d,%d] took %g", f.MLMDecoder, logits[0], logits[1], want)
	}
	T, H := float64(hidden[0]*hidden[1]), float64(hidden[2])
	if want := float64(c.NumLayers) * 2 * 2 * T * H * float64(c.IntermediateSize); f.FFN != want {
		t.Errorf("FFN: counted %g, the hidden states %v take %g", f.FFN, hidden, want)
	}
}
