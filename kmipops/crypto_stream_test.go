package kmipops

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// streamed runs op over parts as one stream: first carries the fields of
// the first request (key, parameters, IV...), last those of the final one.
// It returns the Data of every part, concatenated, and the final payload.
func (e *env) streamed(c Caller, op kmip14.Operation, parts [][]byte, first, last []*tree.Node) ([]byte, *tree.Node) {
	e.t.Helper()
	var out []byte
	var cv *tree.Node
	for i, part := range parts {
		f := []*tree.Node{crData(part)}
		switch {
		case i == 0:
			f = append(f, first...)
			f = append(f, tree.Bool(kmip14.TagInitIndicator, true))
		default:
			f = append(f, cv)
		}
		if i == len(parts)-1 {
			f = append(f, last...)
			f = append(f, tree.Bool(kmip14.TagFinalIndicator, true))
		}
		r := okPayload(e.t, e.crOne(c, op, f...), 0)
		if d := r.Child(kmip14.TagData); d != nil && (op == kmip14.OperationEncrypt || op == kmip14.OperationDecrypt) {
			out = append(out, d.Bytes...)
		}
		if i == len(parts)-1 {
			if r.Child(kmip14.TagCorrelationValue) != nil {
				e.t.Fatalf("final answer carries a Correlation Value")
			}
			return out, r
		}
		cv = r.Child(kmip14.TagCorrelationValue)
		if cv == nil || len(cv.Bytes) != 16 {
			e.t.Fatalf("part %d: no Correlation Value in %s", i, r)
		}
	}
	return out, nil
}

func split(b []byte, sizes ...int) [][]byte {
	var out [][]byte
	for _, n := range sizes {
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, b)
}

func TestStreamedOperations(t *testing.T) {
	e := newEnv(t, Options{})
	all := kmip14.CryptographicUsageMaskEncrypt | kmip14.CryptographicUsageMaskDecrypt | kmip14.CryptographicUsageMaskMACGenerate | kmip14.CryptographicUsageMaskMACVerify
	key := e.crSym(alice, kmip14.CryptographicAlgorithmAES, crHex(t, "feffe9928665731c6d6a8f9467308308"), crMask(all))
	msg := bytes.Repeat([]byte("streamed data, "), 7)
	parts := split(msg, 5, 16, 33, 0) // uneven, with an empty part

	t.Run("GCM", func(t *testing.T) {
		for _, iv := range [][]byte{make([]byte, 12), crHex(t, "cafebabefacedbad")} {
			params := crParams(crMode(kmip14.BlockCipherModeGCM), tree.Int(kmip14.TagTagLength, 16))
			aad := tree.Bytes(kmip14.TagAuthenticatedEncryptionAdditionalData, []byte("header"))
			ref := okPayload(t, e.crOne(alice, kmip14.OperationEncrypt, uidF(key), params, crData(msg), crIV(iv), aad), 0)
			ct, fin := e.streamed(alice, kmip14.OperationEncrypt, parts, []*tree.Node{uidF(key), params, crIV(iv), aad}, nil)
			tag := fin.Child(kmip14.TagAuthenticatedEncryptionTag)
			if !bytes.Equal(ct, crBytes(t, ref, kmip14.TagData)) || !bytes.Equal(tag.Bytes, crBytes(t, ref, kmip14.TagAuthenticatedEncryptionTag)) {
				t.Fatalf("streamed GCM differs from one shot (IV %x)", iv)
			}
			// Decryption releases nothing before the tag is checked.
			var cv *tree.Node
			r := okPayload(t, e.crOne(alice, kmip14.OperationDecrypt, uidF(key), params, crIV(iv), aad, crData(ct[:20]), tree.Bool(kmip14.TagInitIndicator, true)), 0)
			cv = r.Child(kmip14.TagCorrelationValue)
			if d := r.Child(kmip14.TagData); d != nil {
				t.Fatalf("plaintext released before the tag was checked: %s", d)
			}
			r = okPayload(t, e.crOne(alice, kmip14.OperationDecrypt, cv, crData(ct[20:]), tag, tree.Bool(kmip14.TagFinalIndicator, true)), 0)
			if !bytes.Equal(crBytes(t, r, kmip14.TagData), msg) {
				t.Fatal("streamed GCM decryption")
			}
			// A bad tag at the end fails, and ends the stream.
			r = okPayload(t, e.crOne(alice, kmip14.OperationDecrypt, uidF(key), params, crIV(iv), aad, crData(ct), tree.Bool(kmip14.TagInitIndicator, true)), 0)
			cv = r.Child(kmip14.TagCorrelationValue)
			wantFail(t, e.crOne(alice, kmip14.OperationDecrypt, cv, tree.Bytes(kmip14.TagAuthenticatedEncryptionTag, make([]byte, 16)),
				tree.Bool(kmip14.TagFinalIndicator, true)), 0, kmip14.ResultReasonCryptographicFailure)
			wantFail(t, e.crOne(alice, kmip14.OperationDecrypt, cv, tag, tree.Bool(kmip14.TagFinalIndicator, true)), 0, kmip14.ResultReasonItemNotFound)
		}
	})
	t.Run("CBC and CTR", func(t *testing.T) {
		iv := crIV(make([]byte, 16))
		for _, params := range []*tree.Node{
			crParams(crMode(kmip14.BlockCipherModeCBC), crPad(kmip14.PaddingMethodPKCS5)),
			crParams(crMode(kmip14.BlockCipherModeCTR)),
		} {
			ref := crBytes(t, okPayload(t, e.crOne(alice, kmip14.OperationEncrypt, uidF(key), params, crData(msg), iv), 0), kmip14.TagData)
			ct, _ := e.streamed(alice, kmip14.OperationEncrypt, parts, []*tree.Node{uidF(key), params, iv}, nil)
			if !bytes.Equal(ct, ref) {
				t.Fatalf("streamed %s differs", params)
			}
			for _, sizes := range [][]int{{16, 16}, {1, 31, 32}, {len(ct) - 16}} {
				pt, _ := e.streamed(alice, kmip14.OperationDecrypt, split(ct, sizes...), []*tree.Node{uidF(key), params, iv}, nil)
				if !bytes.Equal(pt, msg) {
					t.Fatalf("streamed decryption %v: %q", sizes, pt)
				}
			}
		}
	})
	t.Run("MAC, Sign, Hash", func(t *testing.T) {
		ref := crBytes(t, okPayload(t, e.crOne(alice, kmip14.OperationMAC, uidF(key), crData(msg)), 0), kmip14.TagMACData)
		_, fin := e.streamed(alice, kmip14.OperationMAC, parts, []*tree.Node{uidF(key)}, nil)
		if !bytes.Equal(crBytes(t, fin, kmip14.TagMACData), ref) {
			t.Fatal("streamed MAC")
		}
		_, fin = e.streamed(alice, kmip14.OperationMACVerify, parts, []*tree.Node{uidF(key)}, []*tree.Node{tree.Bytes(kmip14.TagMACData, ref)})
		if crValidity(t, fin) != kmip14.ValidityIndicatorValid {
			t.Fatal("streamed MAC Verify")
		}
		sum := sha256.Sum256(msg)
		_, fin = e.streamed(alice, kmip14.OperationHash, parts, []*tree.Node{crParams(crHash(kmip14.HashingAlgorithmSHA_256))}, nil)
		if !bytes.Equal(crBytes(t, fin, kmip14.TagData), sum[:]) || fin.Child(kmip14.TagUniqueIdentifier) != nil {
			t.Fatalf("streamed Hash %s", fin)
		}
		priv, pub := e.crECPair(alice, []*tree.Node{crMask(kmip14.CryptographicUsageMaskSign)}, []*tree.Node{crMask(kmip14.CryptographicUsageMaskVerify)})
		h := crParams(crHash(kmip14.HashingAlgorithmSHA_256))
		_, fin = e.streamed(alice, kmip14.OperationSign, parts, []*tree.Node{uidF(priv), h}, nil)
		sig := crBytes(t, fin, kmip14.TagSignatureData)
		_, fin = e.streamed(alice, kmip14.OperationSignatureVerify, parts, []*tree.Node{uidF(pub), h}, []*tree.Node{tree.Bytes(kmip14.TagSignatureData, sig)})
		if crValidity(t, fin) != kmip14.ValidityIndicatorValid {
			t.Fatal("streamed signature")
		}
	})
}

func TestStreamRules(t *testing.T) {
	clock := &fixedClock{t: time.Now().UTC().Truncate(time.Second)}
	e := newEnv(t, Options{Now: clock.Now})
	key := e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 16))
	ctr := crParams(crMode(kmip14.BlockCipherModeCTR))
	open := func(c Caller) *tree.Node {
		r := okPayload(t, e.crOne(c, kmip14.OperationEncrypt, uidF(key), ctr, crIV(make([]byte, 16)), crData([]byte("a")),
			tree.Bool(kmip14.TagInitIndicator, true)), 0)
		return r.Child(kmip14.TagCorrelationValue)
	}
	next := func(c Caller, cv *tree.Node, fields ...*tree.Node) *tree.Node {
		return e.crOne(c, kmip14.OperationEncrypt, append([]*tree.Node{cv, crData([]byte("b"))}, fields...)...)
	}
	cv := open(alice)
	// Bob cannot continue alice's stream, and learns nothing from trying;
	// alice still can.
	wantFail(t, next(bob, cv), 0, kmip14.ResultReasonItemNotFound)
	wantFail(t, e.crOne(bob, kmip14.OperationEncrypt, uidF(key), ctr, crData([]byte("a"))), 0, kmip14.ResultReasonItemNotFound)
	okPayload(t, next(alice, cv), 0)
	// Contradictions end the stream.
	wantFail(t, e.crOne(alice, kmip14.OperationDecrypt, cv, crData([]byte("b"))), 0, kmip14.ResultReasonInvalidField)
	wantFail(t, next(alice, cv), 0, kmip14.ResultReasonItemNotFound)
	for name, f := range map[string][]*tree.Node{
		"Init with a Correlation Value": {tree.Bool(kmip14.TagInitIndicator, true)},
		"another key":                   {uidF("other")},
		"a new IV":                      {crIV(make([]byte, 16))},
	} {
		cv := open(alice)
		wantFail(t, next(alice, cv, f...), 0, kmip14.ResultReasonInvalidField)
		t.Log(name)
	}
	// The key is checked for every part: revoked mid-stream, Encrypt stops.
	k2 := e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 16))
	r := okPayload(t, e.crOne(alice, kmip14.OperationEncrypt, uidF(k2), ctr, crIV(make([]byte, 16)), crData([]byte("a")),
		tree.Bool(kmip14.TagInitIndicator, true)), 0)
	okPayload(t, e.do(alice, revoke(k2, kmip14.RevocationReasonCodeCessationOfOperation)), 0)
	wantFail(t, next(alice, r.Child(kmip14.TagCorrelationValue)), 0, kmip14.ResultReasonPermissionDenied)
	// Idle streams expire.
	cv = open(alice)
	clock.Add(streamTTL + time.Second)
	wantFail(t, next(alice, cv), 0, kmip14.ResultReasonItemNotFound)

	// Per-owner and buffered-bytes bounds.
	before := e.p.streams.count()
	var cvs []*tree.Node
	for range maxStreamsPerOwner - (before) {
		cvs = append(cvs, open(alice))
	}
	wantFail(t, e.crOne(alice, kmip14.OperationEncrypt, uidF(key), ctr, crIV(make([]byte, 16)), crData([]byte("a")),
		tree.Bool(kmip14.TagInitIndicator, true)), 0, kmip14.ResultReasonPermissionDenied)
	bobKey := e.crSym(bob, kmip14.CryptographicAlgorithmAES, make([]byte, 16))
	okPayload(t, e.crOne(bob, kmip14.OperationEncrypt, uidF(bobKey), ctr, crIV(make([]byte, 16)), crData([]byte("a")),
		tree.Bool(kmip14.TagInitIndicator, true)), 0)
	for _, cv := range cvs {
		okPayload(t, next(alice, cv, tree.Bool(kmip14.TagFinalIndicator, true)), 0)
	}
	gcm := crParams(crMode(kmip14.BlockCipherModeGCM))
	r = okPayload(t, e.crOne(alice, kmip14.OperationDecrypt, uidF(key), gcm, crIV(make([]byte, 12)), crData(make([]byte, maxStreamHeld-10)),
		tree.Bool(kmip14.TagInitIndicator, true)), 0)
	wantFail(t, e.crOne(alice, kmip14.OperationDecrypt, r.Child(kmip14.TagCorrelationValue), crData(make([]byte, 20))), 0, kmip14.ResultReasonPermissionDenied)
	if n := e.p.streams.count(); n != 1 {
		t.Fatalf("%d streams left open, want bob's one", n)
	}
}

// Concurrent parts of one stream: one proceeds, the other is told the
// stream is busy or (once it is done) unknown; never a race.
func TestStreamConcurrentParts(t *testing.T) {
	e := newEnv(t, Options{})
	key := e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 16))
	ctr := crParams(crMode(kmip14.BlockCipherModeCTR))
	r := okPayload(t, e.crOne(alice, kmip14.OperationEncrypt, uidF(key), ctr, crIV(make([]byte, 16)), crData([]byte("a")),
		tree.Bool(kmip14.TagInitIndicator, true)), 0)
	cv := r.Child(kmip14.TagCorrelationValue)
	errs := make(chan string, 8)
	for i := range 8 {
		go func() {
			resp := e.p.Process(t.Context(), alice, reqMsg(e.v, item(kmip14.OperationEncrypt, cv, crData([]byte{byte(i)}))))
			it := resp.Child(kmip14.TagBatchItem)
			reason, _ := it.Child(kmip14.TagResultReason).EnumValue()
			errs <- fmt.Sprint(kmip14.ResultReason(reason))
		}()
	}
	for range 8 {
		switch s := <-errs; s {
		case "0x00000000", kmip14.ResultReasonIllegalOperation.String():
		default:
			t.Fatalf("concurrent part: %s", s)
		}
	}
}

// TestStreamWithoutOutputYet: Data is optional in a streaming Encrypt, both
// ways (KMIP 1.4 §4.29). The first part may carry none; a part that
// produces nothing yet (ECB holding half a block, a final part with nothing
// left) answers without Data; a single-part Encrypt still needs its Data.
// The ciphertext is FIPS-197 C.1's AES-128 known answer.
func TestStreamWithoutOutputYet(t *testing.T) {
	e := newEnv(t, Options{})
	key := e.crSym(alice, kmip14.CryptographicAlgorithmAES, crHex(t, "000102030405060708090a0b0c0d0e0f"))
	pt := crHex(t, "00112233445566778899aabbccddeeff")
	want := crHex(t, "69c4e0d86a7b0430d8cdb78070b4c55a")
	ecb := crParams(crMode(kmip14.BlockCipherModeECB), crPad(kmip14.PaddingMethodNone))
	noData := func(r *tree.Node) {
		t.Helper()
		if d := r.Child(kmip14.TagData); d != nil {
			t.Fatalf("Data %x where nothing was produced", d.Bytes)
		}
	}
	for name, parts := range map[string][][]byte{
		"no data first":  {nil, pt[:8], pt[8:], nil},
		"half block":     {pt[:8], pt[8:], nil},
		"block by parts": {pt[:4], pt[4:12], pt[12:]},
	} {
		t.Run(name, func(t *testing.T) {
			var got []byte
			var cv *tree.Node
			for i, part := range parts {
				var f []*tree.Node
				if part != nil {
					f = append(f, crData(part))
				}
				if i == 0 {
					f = append(f, uidF(key), ecb, tree.Bool(kmip14.TagInitIndicator, true))
				} else {
					f = append(f, cv)
				}
				final := i == len(parts)-1
				if final {
					f = append(f, tree.Bool(kmip14.TagFinalIndicator, true))
				}
				r := okPayload(t, e.crOne(alice, kmip14.OperationEncrypt, f...), 0)
				if d := r.Child(kmip14.TagData); d != nil {
					if len(d.Bytes) == 0 {
						t.Fatalf("part %d: empty Data", i)
					}
					got = append(got, d.Bytes...)
				}
				if len(got) < 16 || (final && part == nil) {
					noData(r)
				}
				if !final {
					cv = r.Child(kmip14.TagCorrelationValue)
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("ciphertext %x, want %x", got, want)
			}
		})
	}
	// One shot: the Data is required, and answered even when empty.
	wantFail(t, e.crOne(alice, kmip14.OperationEncrypt, uidF(key), ecb), 0, kmip14.ResultReasonInvalidMessage)
	r := okPayload(t, e.crOne(alice, kmip14.OperationEncrypt, uidF(key), ecb, crData([]byte{})), 0)
	if d := r.Child(kmip14.TagData); d == nil || len(d.Bytes) != 0 {
		t.Fatalf("single-part Encrypt of nothing: %s", r)
	}
}
