package storage

import (
	"fmt"
	"testing"
)

// BenchmarkBatchCheck is the check Memory and Badger run over every batch
// before writing it, for a batch as an object's Insert makes (its record's
// Create, a fence's Create and Delete, index entries): "before" is the
// check as it was before compare-and-set writes (existence only), "after"
// is batchState's, so the two compare within one run.
func BenchmarkBatchCheck(b *testing.B) {
	stored := map[string][]byte{"idx/o/old/1": {}, "idx/o/old/2": {}}
	writes := []Write{
		{Kind: WriteCreate, Key: "obj/o/uid", Value: make([]byte, 800)},
		{Kind: WriteCreate, Key: "pkek-retired/o/1"},
		{Kind: WriteDelete, Key: "pkek-retired/o/1"},
		{Kind: WriteDelete, Key: "idx/o/old/1"},
		{Kind: WriteDelete, Key: "idx/o/old/2"},
	}
	for i := range 4 {
		writes = append(writes, Write{Kind: WritePut, Key: fmt.Sprintf("idx/o/new/%d", i)})
	}
	b.Run("before", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			present := map[string]bool{}
			for _, w := range writes {
				switch w.Kind {
				case WriteCreate:
					exists, known := present[w.Key]
					if !known {
						_, exists = stored[w.Key]
					}
					if exists {
						b.Fatal("exists")
					}
					present[w.Key] = true
				case WritePut:
					present[w.Key] = true
				case WriteDelete:
					present[w.Key] = false
				}
			}
		}
	})
	b.Run("after", func(b *testing.B) {
		b.ReportAllocs()
		get := func(key string) ([]byte, bool, error) {
			v, ok := stored[key]
			return v, ok, nil
		}
		for range b.N {
			st := batchState{}
			for _, w := range writes {
				if err := st.check(w, get); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
