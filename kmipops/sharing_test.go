package kmipops

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// getKey returns the Key Material bytes a Get of uid serves.
func (e *env) getKey(c Caller, uid string) []byte {
	e.t.Helper()
	g := okPayload(e.t, e.do(c, item(kmip14.OperationGet, uidF(uid))), 0)
	km := g.Path(kmip14.TagSymmetricKey, kmip14.TagKeyBlock, kmip14.TagKeyValue, kmip14.TagKeyMaterial)
	b, ok := km.BytesValue()
	if !ok {
		e.t.Fatalf("Get of %s served no raw key material", uid)
	}
	return b
}

// opens counts the records the keyring has opened (or sealed) so far.
func (e *env) opens() uint64 {
	s := e.kr.Stats()
	return s.Hits + s.Misses
}

func TestObjectCacheServesRepeatedGets(t *testing.T) {
	e := newEnv(t, Options{})
	key := crHex(t, aesOASIS)
	uid := e.crSym(alice, kmip14.CryptographicAlgorithmAES, key)
	e.getKey(alice, uid) // the first Get turns Fresh false: a write
	e.getKey(alice, uid) // opens the rewritten record and caches it

	before, unwraps := e.opens(), e.kr.Stats().Unwraps
	for i := 0; i < 5; i++ {
		if got := e.getKey(alice, uid); !bytes.Equal(got, key) {
			t.Fatalf("Get %d served %x, want %x", i, got, key)
		}
	}
	if n := e.opens() - before; n != 0 {
		t.Errorf("five repeated Gets opened %d records; want 0 (served from the cache)", n)
	}
	if e.kr.Stats().Unwraps != unwraps {
		t.Error("repeated Gets unwrapped the pKEK")
	}
}

// After the pKEK leaves the keyring's cache, a cached object must not be
// used: the next read opens the record again, unwrapping the pKEK through
// the HSM, as it would without the object cache.
func TestObjectCacheFollowsPKEKEviction(t *testing.T) {
	e := newEnv(t, Options{})
	key := crHex(t, aesOASIS)
	uid := e.crSym(alice, kmip14.CryptographicAlgorithmAES, key)
	e.getKey(alice, uid)
	e.getKey(alice, uid)

	e.kr.Evict(alice.Identity)
	before, unwraps := e.opens(), e.kr.Stats().Unwraps
	if got := e.getKey(alice, uid); !bytes.Equal(got, key) {
		t.Fatalf("Get served %x, want %x", got, key)
	}
	if e.opens() == before {
		t.Error("Get after the pKEK was evicted did not open the record")
	}
	if e.kr.Stats().Unwraps != unwraps+1 {
		t.Errorf("unwraps %d, want %d: the pKEK was not unwrapped again", e.kr.Stats().Unwraps, unwraps+1)
	}
	// A pKEK unwrapped again by some other use (here a Register) is a new
	// generation: entries made under the old one are not used.
	e.getKey(alice, uid)
	e.getKey(alice, uid) // cached again
	e.kr.Evict(alice.Identity)
	e.crSym(alice, kmip14.CryptographicAlgorithmAES, key)
	before = e.opens()
	e.getKey(alice, uid)
	if e.opens() == before {
		t.Error("an entry made under an evicted pKEK was used after the pKEK was unwrapped again")
	}

	// That Get began with no pKEK cached, so it cannot tell which
	// unwrapping its open used and caches nothing; the next one does, and
	// the one after is served from the cache.
	e.getKey(alice, uid)
	before = e.opens()
	e.getKey(alice, uid)
	if e.opens() != before {
		t.Error("the cache serves nothing after a pKEK reload")
	}
}

// A changed record is never served from an entry made before the change,
// whoever wrote it.
func TestObjectCacheSeesEveryWrite(t *testing.T) {
	e := newEnv(t, Options{})
	uid := e.crSym(alice, kmip14.CryptographicAlgorithmAES, crHex(t, aesOASIS))
	e.getKey(alice, uid)
	e.getKey(alice, uid)

	okPayload(t, e.do(alice, item(kmip14.OperationAddAttribute, uidF(uid), nameAttr("after"))), 0)
	if got := e.getAttrs(alice, uid, "Name")["Name"]; len(got) != 1 {
		t.Fatalf("Name after Add Attribute: %d instances, want 1", len(got))
	}

	// A write straight to the store (as the undo of a failed batch does)
	// is seen too: the entry is keyed by the record's bytes.
	sk := objectKey(alice.Identity, uid)
	prior, err := e.st.Get(context.Background(), sk)
	if err != nil {
		t.Fatal(err)
	}
	okPayload(t, e.do(alice, item(kmip14.OperationModifyAttribute, uidF(uid), nameAttr("modified"))), 0)
	e.getAttrs(alice, uid, "Name") // caches the modified record
	if err := e.st.Put(context.Background(), sk, prior); err != nil {
		t.Fatal(err)
	}
	got := e.getAttrs(alice, uid, "Name")["Name"]
	if len(got) != 1 || text(t, got[0], kmip14.TagNameValue) != "after" {
		t.Fatalf("Name after the record was put back: %v, want \"after\"", got)
	}
}

// Encrypt wipes the key bytes it used; with the body shared by the cache,
// that must be a copy, or every later use of the key would see zeros.
func TestObjectCacheKeyOutlivesEncrypt(t *testing.T) {
	e := newEnv(t, Options{})
	key := crHex(t, aesOASIS)
	uid := e.crSym(alice, kmip14.CryptographicAlgorithmAES, key)
	e.getKey(alice, uid)
	params := crParams(crMode(kmip14.BlockCipherModeECB))
	pt := crHex(t, "01020304050607080910111213141516")
	var first []byte
	for i := 0; i < 3; i++ {
		ct, _ := e.encDec(uid, params, pt)
		if i == 0 {
			first = ct
		} else if !bytes.Equal(ct, first) {
			t.Fatalf("Encrypt %d gave %x, the first %x", i, ct, first)
		}
		if got := e.getKey(alice, uid); !bytes.Equal(got, key) {
			t.Fatalf("after Encrypt %d, Get served %x, want %x", i, got, key)
		}
	}
}

// Destroy drops the entry holding the key material rather than leaving it
// for eviction.
func TestObjectCacheDropsDestroyedKey(t *testing.T) {
	e := newEnv(t, Options{})
	uid := e.crSym(alice, kmip14.CryptographicAlgorithmAES, crHex(t, aesOASIS))
	e.getKey(alice, uid)
	e.getKey(alice, uid)
	sk := objectKey(alice.Identity, uid)
	if cachedBody(e.p.objects, sk) == nil {
		t.Fatal("the key is not cached after two Gets")
	}
	okPayload(t, e.do(alice, item(kmip14.OperationRevoke, uidF(uid),
		tree.Struct(kmip14.TagRevocationReason, tree.Enum(kmip14.TagRevocationReasonCode, uint32(kmip14.RevocationReasonCodeCessationOfOperation))))), 0)
	okPayload(t, e.do(alice, item(kmip14.OperationDestroy, uidF(uid))), 0)
	if cachedBody(e.p.objects, sk) != nil {
		t.Fatal("the destroyed key's material is still cached")
	}
	wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF(uid))), 0, kmip14.ResultReasonItemNotFound)
}

func cachedBody(c *objectCache, key string) *tree.Node {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if ent := c.m[key]; ent != nil {
		return ent.o.body
	}
	return nil
}

func TestObjectCacheOff(t *testing.T) {
	e := newEnv(t, Options{ObjectCacheBytes: -1})
	if e.p.objects != nil {
		t.Fatal("ObjectCacheBytes -1 left the cache on")
	}
	key := crHex(t, aesOASIS)
	uid := e.crSym(alice, kmip14.CryptographicAlgorithmAES, key)
	e.getKey(alice, uid)
	before := e.opens()
	if got := e.getKey(alice, uid); !bytes.Equal(got, key) {
		t.Fatalf("Get served %x", got)
	}
	if e.opens() == before {
		t.Error("with the cache off, a Get did not open the record")
	}
}

func TestObjectCacheBound(t *testing.T) {
	const max = 64 << 10
	e := newEnv(t, Options{ObjectCacheBytes: max})
	for i := 0; i < 100; i++ {
		uid := e.crSym(alice, kmip14.CryptographicAlgorithmAES, crHex(t, aesOASIS), nameAttr(fmt.Sprint("k", i)),
			crMask(kmip14.CryptographicUsageMaskEncrypt, kmip14.CryptographicUsageMaskDecrypt))
		e.getKey(alice, uid)
		e.getKey(alice, uid)
	}
	c := e.p.objects
	c.mu.RLock()
	defer c.mu.RUnlock()
	sum := 0
	for _, ent := range c.m {
		sum += ent.size
	}
	if c.size != sum || c.size > max || len(c.m) == 0 {
		t.Fatalf("cache holds %d entries, size %d (sum %d), bound %d", len(c.m), c.size, sum, max)
	}
}

// Readers and writers of one object at once: run with -race. Every Get
// must serve the key, and the attribute the writers add must all be there.
func TestObjectCacheConcurrentReadersAndWriters(t *testing.T) {
	e := newEnv(t, Options{})
	key := crHex(t, aesOASIS)
	uid := e.crSym(alice, kmip14.CryptographicAlgorithmAES, key)
	const writers, readers, rounds = 2, 4, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds+readers*rounds)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				r := e.p.Process(context.Background(), alice, reqMsg(e.v,
					item(kmip14.OperationAddAttribute, uidF(uid), nameAttr(fmt.Sprintf("w%d-%d", w, i)))))
				if s, _ := r.Path(kmip14.TagBatchItem, kmip14.TagResultStatus).EnumValue(); s != uint32(kmip14.ResultStatusSuccess) {
					errs <- fmt.Errorf("Add Attribute failed: status %d", s)
				}
			}
		}()
	}
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				resp := e.p.Process(context.Background(), alice, reqMsg(e.v, item(kmip14.OperationGet, uidF(uid))))
				km := resp.Path(kmip14.TagBatchItem, kmip14.TagResponsePayload, kmip14.TagSymmetricKey,
					kmip14.TagKeyBlock, kmip14.TagKeyValue, kmip14.TagKeyMaterial)
				if b, _ := km.BytesValue(); !bytes.Equal(b, key) {
					errs <- fmt.Errorf("Get served %x", b)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(e.getAttrs(alice, uid, "Name")["Name"]); n != writers*rounds {
		t.Errorf("%d Names after the writers, want %d", n, writers*rounds)
	}
}
