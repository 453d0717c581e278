package object

import (
	"bytes"
	"testing"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Rollback puts back every record a scope wrote, newest first: a created
// object is removed, a changed one restored, a removed one brought back.
func TestRollbackRestoresRecords(t *testing.T) {
	f := newFixture(t, 0)
	changed, removed := f.insert(), f.insert()
	wantChanged := encoded(t, f.load(changed))
	wantRemoved := encoded(t, f.load(removed))

	s := f.r.Scope(alice, NewUndoLog())
	if !s.Undoing() || f.s.Undoing() {
		t.Fatal("Undoing does not say which scope logs")
	}
	o := testObject()
	o.uid = ""
	if err := s.Insert(ctx, o); err != nil {
		t.Fatal(err)
	}
	for range 2 { // two writes of one record: the first one's before-image counts
		if _, err := s.Update(ctx, changed, func(o *Object) (bool, error) {
			o.Add("x-batch", tree.Text(0, "v"))
			return true, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Remove(ctx, removed); err != nil {
		t.Fatal(err)
	}
	f.load(changed) // cache the batch's version

	s.Rollback(ctx, func(uid string, err error) { t.Errorf("%s not restored: %v", uid, err) })
	if _, err := f.s.Load(ctx, o.UID()); err != ErrNotFound {
		t.Errorf("the created object survived the rollback: %v", err)
	}
	if got := encoded(t, f.load(changed)); !bytes.Equal(got, wantChanged) {
		t.Error("the changed object was not restored")
	}
	if got := encoded(t, f.load(removed)); !bytes.Equal(got, wantRemoved) {
		t.Error("the removed object was not restored")
	}
}

// Undo never overwrites a record another request changed after the batch.
func TestUndoSparesLaterWrites(t *testing.T) {
	f := newFixture(t, 0)
	uid := f.insert()
	key := objectKey(alice, uid)
	orig, err := f.st.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Update(ctx, uid, func(o *Object) (bool, error) {
		o.Add("x-later", tree.Text(0, "v"))
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	later, _ := f.st.Get(ctx, key)
	// The batch's own write (not what is stored now) and the record before it.
	ent := &undoEntry{uid: uid, prior: orig, written: []byte("what the batch wrote")}
	if err := f.r.restore(ctx, alice, ent); err == nil {
		t.Fatal("restore over a later write succeeded")
	}
	if now, _ := f.st.Get(ctx, key); !bytes.Equal(now, later) {
		t.Fatal("later write clobbered")
	}
	ent.written = later
	if err := f.r.restore(ctx, alice, ent); err != nil {
		t.Fatal(err)
	}
	if f.load(uid).Has("x-later") {
		t.Fatal("not restored")
	}
}
