package object

import (
	"testing"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// BenchmarkSharedWrites: what the fence costs an Insert, and the record
// check a Lookup, on PostgreSQL (fence.go), against the same repository
// with them turned off, in one run.
func BenchmarkSharedWrites(b *testing.B) {
	for _, fenced := range []bool{false, true} {
		name := map[bool]string{false: "unfenced", true: "fenced"}[fenced]
		b.Run("insert/"+name, func(b *testing.B) {
			p := benchReplica(b, fenced)
			b.ResetTimer()
			for range b.N {
				o := testObject()
				o.uid = ""
				if err := p.s.Insert(ctx, o); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("lookup/"+name, func(b *testing.B) {
			p := benchReplica(b, fenced)
			for range 16 {
				o := testObject()
				o.uid = ""
				if err := p.s.Insert(ctx, o); err != nil {
					b.Fatal(err)
				}
			}
			crit := []Attr{NewAttr(AttrName, nameValue("a"))}
			b.ResetTimer()
			for range b.N {
				if _, ok, err := p.s.Lookup(ctx, crit); err != nil || !ok {
					b.Fatal(ok, err)
				}
			}
		})
	}
}

// BenchmarkSharedUpdate: what the compare-and-set costs an Update on
// PostgreSQL (update.go), against the same repository writing plainly, in
// one run.
func BenchmarkSharedUpdate(b *testing.B) {
	for _, cas := range []bool{false, true} {
		b.Run(map[bool]string{false: "plain", true: "compare-and-set"}[cas], func(b *testing.B) {
			p := benchReplica(b, true)
			if !cas {
				p.r.shared = nil
			}
			o := testObject()
			o.uid = ""
			if err := p.s.Insert(ctx, o); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				if _, err := p.s.Update(ctx, o.UID(), func(o *Object) (bool, error) {
					o.Set("x-count", tree.Int(0, int32(i)))
					return true, nil
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchReplica is one replica on a fresh database; unless fenced, its
// repository neither fences writes nor refreshes lookups.
func benchReplica(b *testing.B, fenced bool) *replica {
	p := newSharedStore(b).replica()
	if !fenced {
		p.r.fence, p.r.refresher = nil, nil
	}
	return p
}
