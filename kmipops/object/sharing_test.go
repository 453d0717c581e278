package object

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// mutateEverything changes o in every way the API allows, and changes
// everything the API hands out of it: the copies it returns, the body's
// clone, each value's bytes. None of it may reach another reader.
func mutateEverything(o *Object) error {
	km := o.Body().Path(kmip14.TagKeyBlock, kmip14.TagKeyValue, kmip14.TagKeyMaterial)
	b, ok := km.BytesValue()
	if !ok || !bytes.Equal(b, keyMaterial) {
		return fmt.Errorf("loaded key material %x", b)
	}
	clear(b)
	body := o.CloneBody()
	kb := body.Child(kmip14.TagKeyBlock)
	clear(kb.Path(kmip14.TagKeyValue, kmip14.TagKeyMaterial).Bytes)
	kb.Child(kmip14.TagKeyFormatType).Int = int64(kmip14.KeyFormatTypeTransparentSymmetricKey)
	kb.Add(tree.Int(kmip14.TagCryptographicLength, 1))
	v, _ := o.Get("x-bytes").BytesValue()
	if !bytes.Equal(v, []byte{1, 2, 3}) {
		return fmt.Errorf("x-bytes reads %x", v)
	}
	clear(v)
	for _, a := range o.Listing(4, true) {
		n := a.Attribute()
		clear(n.Child(kmip14.TagAttributeValue).Bytes)
		n.Child(kmip14.TagAttributeValue).Int = 99
		n.Child(kmip14.TagAttributeValue).Children = nil
	}
	for _, a := range o.All(AttrName) {
		a.Value().Clone().Child(kmip14.TagNameValue).Text = "changed"
	}
	o.Set(AttrFresh, tree.Bool(0, false))
	o.SetState(kmip14.StateActive)
	o.Modify(AttrName, 0, nameValue("modified"))
	o.Delete(AttrName, 1)
	o.Add("x-new", tree.Text(0, "new"))
	o.Touch(time.Now())
	o.ClearBody()
	return nil
}

// What Load returns may share its body and values with the cache and with
// every other reader. Changing it through the API, and changing whatever
// the API hands out, leaves the cached object and the next Load exactly as
// stored.
func TestLoadedObjectCannotChangeTheCache(t *testing.T) {
	f := newFixture(t, 0)
	uid := f.insert()
	first := f.load(uid) // opens the record and caches it
	want := encoded(t, first)
	if f.cached(uid) == nil {
		t.Fatal("the first Load cached nothing")
	}
	cachedWant := encoded(t, f.cached(uid))

	before := f.opens()
	o := f.load(uid)
	if f.opens() != before {
		t.Fatal("the second Load was not served from the cache")
	}
	for _, o := range []*Object{o, first} {
		if err := mutateEverything(o); err != nil {
			t.Fatal(err)
		}
	}

	if got := encoded(t, f.cached(uid)); !bytes.Equal(got, cachedWant) {
		t.Fatal("changing loaded objects changed the cached one")
	}
	again := f.load(uid)
	if f.opens() != before {
		t.Fatal("the third Load was not served from the cache")
	}
	if got := encoded(t, again); !bytes.Equal(got, want) {
		t.Fatalf("a Load after changing loaded objects differs:\n got %x\nwant %x", got, want)
	}
	if m, _ := again.Body().Path(kmip14.TagKeyBlock, kmip14.TagKeyValue, kmip14.TagKeyMaterial).BytesValue(); !bytes.Equal(m, keyMaterial) {
		t.Fatalf("key material after changes elsewhere: %x", m)
	}
}

// An Update whose function changes the object and then fails saves nothing
// and leaves the cache as it was.
func TestFailedUpdateLeavesTheCache(t *testing.T) {
	f := newFixture(t, 0)
	uid := f.insert()
	want := encoded(t, f.load(uid))
	boom := errors.New("boom")
	_, err := f.s.Update(ctx, uid, func(o *Object) (bool, error) {
		if err := mutateEverything(o); err != nil {
			t.Error(err)
		}
		return true, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update: %v", err)
	}
	before := f.opens()
	if got := encoded(t, f.load(uid)); !bytes.Equal(got, want) || f.opens() != before {
		t.Fatal("a failed Update changed the object or dropped its cache entry")
	}
}

// Readers change their own copies of one cached object while writers
// replace it: run with -race, which sees any write to shared memory (a
// lazily decoded value stored into the cached object would be one).
func TestConcurrentReadersShareNothingWritable(t *testing.T) {
	f := newFixture(t, 0)
	uid := f.insert()
	f.load(uid)
	const readers, writers, rounds = 4, 2, 25
	var wg sync.WaitGroup
	errs := make(chan error, (readers+writers)*rounds)
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				o, err := f.s.Load(ctx, uid)
				if err != nil {
					errs <- err
					return
				}
				o.AdvanceState(time.Now())
				if err := mutateEverything(o); err != nil {
					errs <- err
				}
			}
		}()
	}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				_, err := f.s.Update(ctx, uid, func(o *Object) (bool, error) {
					o.Add("x-writer", tree.Text(0, fmt.Sprint(w, "-", i)))
					return true, nil
				})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(f.load(uid).All("x-writer")); n != writers*rounds {
		t.Fatalf("%d x-writer instances, want %d", n, writers*rounds)
	}
}
