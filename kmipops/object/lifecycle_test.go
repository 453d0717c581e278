package object

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

// An archived object is refused to every Load but a WithArchived scope's,
// from the store and from the cache alike, until its Archive Date goes.
func TestArchivedObjectsAreOffLine(t *testing.T) {
	f := newFixture(t, 0)
	fc := newFixture(t, 1<<20) // with the cache of opened objects
	for _, f := range []*fixture{f, fc} {
		uid := f.insert()
		f.load(uid) // cached, where there is a cache
		if _, err := f.s.Update(ctx, uid, func(o *Object) (bool, error) {
			o.Set(AttrArchiveDate, tree.Time(0, time.Now()))
			return true, nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.Load(ctx, uid); err != ErrArchived {
			t.Fatalf("Load of an archived object: %v", err)
		}
		if _, err := f.s.Update(ctx, uid, func(*Object) (bool, error) { return true, nil }); err != ErrArchived {
			t.Fatalf("Update of an archived object: %v", err)
		}
		all := f.s.WithArchived()
		o, err := all.Load(ctx, uid)
		if err != nil || !o.Archived() {
			t.Fatalf("WithArchived: %v, archived %v", err, o != nil && o.Archived())
		}
		if _, err := all.Update(ctx, uid, func(o *Object) (bool, error) {
			o.Delete(AttrArchiveDate, 0)
			return true, nil
		}); err != nil {
			t.Fatal(err)
		}
		if o := f.load(uid); o.Archived() {
			t.Fatal("still archived")
		}
	}
}

// A Usage Limits value given without a Count gets one equal to its Total,
// however it enters an object; a Count given is kept.
func TestUsageLimitsCountSetByServer(t *testing.T) {
	limits := func(count ...int64) *tree.Node {
		v := tree.Struct(0, tree.Long(kmip14.TagUsageLimitsTotal, 1000))
		for _, c := range count {
			v.Add(tree.Long(kmip14.TagUsageLimitsCount, c))
		}
		return v.Add(tree.Enum(kmip14.TagUsageLimitsUnit, uint32(kmip14.UsageLimitsUnitByte)))
	}
	want := func(o *Object, count int64) {
		t.Helper()
		v := o.UsageLimits()
		var tags []string
		for c := range v.Children() {
			tags = append(tags, c.Tag().String())
		}
		if n, _ := v.Child(kmip14.TagUsageLimitsCount).LongValue(); n != count || len(tags) != 3 ||
			tags[1] != kmip14.TagUsageLimitsCount.String() {
			t.Fatalf("Usage Limits %s, want Count %d second of three", v, count)
		}
	}
	o, err := New(Spec{Type: kmip14.ObjectTypeSymmetricKey, Body: testObject().body, Now: time.Now(),
		Attrs: []Attr{NewAttr(AttrUsageLimits, limits())}})
	if err != nil {
		t.Fatal(err)
	}
	want(o, 1000)
	o.Modify(AttrUsageLimits, 0, limits(10))
	want(o, 10)
	o.Delete(AttrUsageLimits, 0)
	o.Add(AttrUsageLimits, limits())
	want(o, 1000)
	if !o.ConsumeUsage(600) || o.ConsumeUsage(401) {
		t.Fatal("ConsumeUsage allowed the wrong amounts")
	}
	want(o, 400)
	for _, bad := range []*tree.Node{limits(1001), limits(-1),
		tree.Struct(0, tree.Long(kmip14.TagUsageLimitsTotal, 5), tree.Enum(kmip14.TagUsageLimitsUnit, 9))} {
		bad.Tag = kmip14.TagAttributeValue
		a := tree.Struct(kmip14.TagAttribute, tree.Text(kmip14.TagAttributeName, AttrUsageLimits), bad)
		var oe *Error
		if _, err := ParseAttribute(a); !errors.As(err, &oe) || oe.Reason != kmip14.ResultReasonInvalidField {
			t.Errorf("Usage Limits %s accepted: %v", bad, err)
		}
	}
}

// failingStore fails Put for one key, as a full or failing disk would.
type failingStore struct {
	storage.Store
	mu   sync.Mutex
	fail string
}

func (s *failingStore) Put(ctx context.Context, key string, value []byte) error {
	s.mu.Lock()
	fail := s.fail == key
	s.mu.Unlock()
	if fail {
		return errors.New("injected write failure")
	}
	return s.Store.Put(ctx, key, value)
}

// UpdatePair saves both objects, or neither: when the second write fails,
// the first record is put back byte for byte.
func TestUpdatePairIsWhole(t *testing.T) {
	f := newFixture(t, 1<<20)
	fs := &failingStore{Store: f.st}
	r := NewRepo(fs, f.kr, rand.Reader, 1<<20)
	s := r.Scope(alice, nil)
	a, b := f.insert(), f.insert()
	mark := func(oa, ob *Object) (bool, bool, error) {
		oa.Add("x-pair", tree.Text(0, "a"))
		ob.Add("x-pair", tree.Text(0, "b"))
		return true, true, nil
	}
	if _, _, err := s.UpdatePair(ctx, a, b, mark); err != nil {
		t.Fatal(err)
	}
	if !f.load(a).Has("x-pair") || !f.load(b).Has("x-pair") {
		t.Fatal("the pair was not saved")
	}
	beforeA, _ := f.st.Get(ctx, objectKey(alice, a))
	beforeB, _ := f.st.Get(ctx, objectKey(alice, b))
	s.Load(ctx, a) // cached: the put-back must not leave the new version there
	fs.fail = objectKey(alice, b)
	if _, _, err := s.UpdatePair(ctx, a, b, mark); err == nil {
		t.Fatal("a failed write went unreported")
	}
	afterA, _ := f.st.Get(ctx, objectKey(alice, a))
	afterB, _ := f.st.Get(ctx, objectKey(alice, b))
	if !bytes.Equal(beforeA, afterA) || !bytes.Equal(beforeB, afterB) {
		t.Fatal("a failed pair update left a change behind")
	}
	if o, _ := s.Load(ctx, a); len(o.All("x-pair")) != 1 {
		t.Fatal("the cache kept the version that was put back")
	}
	// Refusals change nothing and name no object twice.
	fs.fail = ""
	if _, _, err := s.UpdatePair(ctx, a, a, mark); err == nil {
		t.Fatal("an object was paired with itself")
	}
	if _, _, err := s.UpdatePair(ctx, a, "no-such", mark); err != ErrNotFound {
		t.Fatalf("missing second object: %v", err)
	}
}

// Pair updates lock in stripe order, so two of them over the same objects
// in opposite orders, and ones whose objects share a stripe, finish.
func TestUpdatePairDoesNotDeadlock(t *testing.T) {
	f := newFixture(t, 0)
	a, b := f.insert(), f.insert()
	// Two objects in one stripe: the stripe is locked once.
	c, d := f.insert(), ""
	for i := 0; d == ""; i++ {
		if u := fmt.Sprintf("same-stripe-%d", i); f.r.locks.stripe(alice, u) == f.r.locks.stripe(alice, c) {
			d = u
		}
	}
	o := testObject()
	o.uid = d
	if err := f.s.Insert(ctx, o); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x, y := a, b
			if i%2 == 1 {
				x, y = b, a
			}
			if i%4 >= 2 {
				x, y = c, d
			}
			_, _, err := f.s.UpdatePair(ctx, x, y, func(ox, oy *Object) (bool, bool, error) {
				ox.Add("x-n", tree.Text(0, fmt.Sprint(i)))
				return true, false, nil
			})
			errs <- err
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("pair updates deadlocked")
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
