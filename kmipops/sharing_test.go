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

// processGet runs a Get as c in process, without the encode/decode round
// trip of e.do, and returns the served key block: the response's own tree.
func (e *env) processGet(c Caller, uid string, fields ...*tree.Node) *tree.Node {
	e.t.Helper()
	resp := e.p.Process(context.Background(), c, reqMsg(e.v, item(kmip14.OperationGet, append([]*tree.Node{uidF(uid)}, fields...)...)))
	return okPayload(e.t, resp, 0).Path(kmip14.TagSymmetricKey, kmip14.TagKeyBlock)
}

// A served key is the response's own copy: a caller changing the response
// tree in place (the server only encodes it, but nothing stops code that
// holds it) cannot reach the cached object. Plain, converted and wrapped
// Gets all serve copies, and the next Get still comes from the cache.
func TestGetServesCopies(t *testing.T) {
	e := newEnv(t, Options{})
	key := crHex(t, aesOASIS)
	kekMat := bytes.Repeat([]byte{0x42}, 32)
	kek := e.crSym(alice, kmip14.CryptographicAlgorithmAES, kekMat, crMask(kmip14.CryptographicUsageMaskWrapKey))
	uid := e.crSym(alice, kmip14.CryptographicAlgorithmAES, key)
	e.getKey(alice, uid) // turns Fresh false: a write
	e.getKey(alice, uid) // caches the rewritten record

	before := e.opens()
	kb := e.processGet(alice, uid)
	clear(kb.Path(kmip14.TagKeyValue, kmip14.TagKeyMaterial).Bytes)
	kb.Child(kmip14.TagKeyFormatType).Int = int64(kmip14.KeyFormatTypeOpaque)
	kb.Child(kmip14.TagKeyValue).Children = nil

	kb = e.processGet(alice, uid, tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeTransparentSymmetricKey)))
	tk := kb.Path(kmip14.TagKeyValue, kmip14.TagKeyMaterial, kmip14.TagKey)
	if !bytes.Equal(tk.Bytes, key) {
		t.Fatalf("Transparent Symmetric Key served %x", tk.Bytes)
	}
	clear(tk.Bytes)

	kb = e.processGet(alice, uid, wrapSpecNode(kek))
	if got := kwUnwrap(t, kekMat, kb.Child(kmip14.TagKeyValue).Bytes); !bytes.Contains(got, key) {
		t.Fatalf("the wrapped Key Value does not hold the key: %x", got)
	}
	clear(kb.Child(kmip14.TagKeyValue).Bytes)
	kb.Remove(kmip14.TagKeyWrappingData)

	if got := e.getKey(alice, uid); !bytes.Equal(got, key) {
		t.Fatalf("after changing served copies, Get served %x, want %x", got, key)
	}
	// The wrapping key was loaded too (and cached by its first use); the
	// key served was not opened again.
	if n := e.opens() - before; n > 1 {
		t.Errorf("the Gets opened %d records; want at most the wrapping key's first open", n)
	}
}

// Encrypt wipes the key bytes it used; with the body shared by the cache,
// those must be a copy, or every later use of the key would see zeros.
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
