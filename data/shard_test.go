package data

import (
	"reflect"
	"strings"
	"testing"
)

// The shards of a world, concatenated in rank order, are the unsharded
// loader's batches, from any cursor; the cursor counts global examples.
func TestShardLoadersConcatenateToTheGlobalBatch(t *testing.T) {
	d := prepareSynth(t, smallConfig(), ObjectiveSOP, 15, 20, 5)
	const global, world = 6, 3
	for _, cursor := range []int64{0, 17} {
		whole := d.NewLoader(global, 7, cursor)
		shards := make([]*Loader, world)
		for r := range world {
			l, err := d.NewShardLoader(global, 7, cursor, r, world)
			if err != nil {
				t.Fatal(err)
			}
			shards[r] = l
		}
		for step := range 4 {
			want, _ := whole.Next()
			var got Batch
			for r, l := range shards {
				b, err := l.Next()
				if err != nil {
					t.Fatal(err)
				}
				if b.Size != global/world {
					t.Fatalf("rank %d: batch of %d, want %d", r, b.Size, global/world)
				}
				got = appendRows(got, b)
				if l.Cursor() != whole.Cursor() {
					t.Fatalf("rank %d cursor %d, unsharded %d", r, l.Cursor(), whole.Cursor())
				}
			}
			if !reflect.DeepEqual(got.InputIDs, want.InputIDs) || !reflect.DeepEqual(got.MaskedIDs, want.MaskedIDs) ||
				!reflect.DeepEqual(got.MaskedWeights, want.MaskedWeights) || !reflect.DeepEqual(got.SentenceLabels, want.SentenceLabels) {
				t.Fatalf("cursor %d step %d: the shards are not the global batch", cursor, step)
			}
		}
		whole.Close()
		for _, l := range shards {
			l.Close()
		}
	}
	if _, err := d.NewShardLoader(6, 7, 0, 0, 4); err == nil || !strings.Contains(err.Error(), "does not split over 4 ranks") {
		t.Errorf("6 over 4 ranks: %v", err)
	}
	if _, err := d.NewShardLoader(6, 7, 0, 3, 3); err == nil {
		t.Error("rank 3 of 3 accepted")
	}
}

func appendRows(a, b Batch) Batch {
	a.Size += b.Size
	a.InputIDs = append(a.InputIDs, b.InputIDs...)
	a.MaskedIDs = append(a.MaskedIDs, b.MaskedIDs...)
	a.MaskedWeights = append(a.MaskedWeights, b.MaskedWeights...)
	a.SentenceLabels = append(a.SentenceLabels, b.SentenceLabels...)
	return a
}
