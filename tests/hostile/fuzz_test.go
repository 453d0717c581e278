package hostile

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/kmipmsg"
	"github.com/kmipd/kmipd/kmipops"
	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/server"
)

// lockedRand is a deterministic, goroutine-safe io.Reader: with it the
// victim's uids are the same in every fuzz worker and every run, so corpus
// entries that name them keep meaning something.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.ChaCha8
}

func (l *lockedRand) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

// panicWatch discards the log but remembers whether anything panicked:
// Process recovers panics, so the log is the only place they show.
type panicWatch struct{ hit atomic.Bool }

func (w *panicWatch) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("panic")) {
		w.hit.Store(true)
	}
	return len(p), nil
}

// FuzzDispatch sends whatever the fuzzer makes, framed and decoded exactly
// as the server does, through the Processor of a real in-process kmipd
// (SoftHSM, Badger, Keyring) as Bob, while Alice owns objects in the same
// store. Besides "no panic, always an encodable Response Message with an
// honest Batch Count", it checks the property that matters most: nothing
// Bob sends reveals Alice's uids or key bytes, or changes her records.
func FuzzDispatch(f *testing.F) {
	watch := &panicWatch{}
	e := StartServer(f, Options{
		LogLevel:  hclog.Error,
		LogOutput: watch,
		Processor: kmipops.Options{Rand: &lockedRand{r: rand.NewChaCha8([32]byte{'k', 'm', 'i', 'p', 'd'})}},
	})
	p := e.Processor()
	ctx := context.Background()
	alice, bob := e.Caller(0), e.Caller(1)
	do := func(c kmipops.Caller, items ...*tree.Node) []Result {
		return Results(p.Process(ctx, c, Request(items...)))
	}
	secret := []byte("alice's fuzz-target secret data!")
	var victim []string
	for _, it := range []*tree.Node{CreateAES(256, Name("alice key")), CreateAES(128, Name("alice active")), RegisterSecret(secret, Name("alice secret"))} {
		r := do(alice, it)[0]
		if !r.OK() {
			f.Fatalf("setup: %s", r)
		}
		victim = append(victim, UIDOf(r.Payload))
	}
	do(alice, Item(kmip14.OperationActivate, UID(victim[1])))
	var material [][]byte
	for _, uid := range victim {
		material = append(material, FindBytes(do(alice, Item(kmip14.OperationGet, UID(uid)))[0].Payload, kmip14.TagKeyMaterial))
	}
	snap := func() map[string][]byte {
		out := map[string][]byte{}
		e.Store().List(ctx, "obj/"+alice.Identity+"/", func(k string, v []byte) error { out[k] = v; return nil })
		return out
	}
	before := snap()

	// Seeds: Bob going after Alice's objects every way the isolation suite
	// does, plus ordinary traffic. Captured PyKMIP requests are in
	// testdata/fuzz/FuzzDispatch.
	own := do(bob, CreateAES(128))[0].Payload
	for _, req := range []*tree.Node{
		Request(Item(kmip14.OperationGet, UID(victim[0]))),
		Request(Item(kmip14.OperationDestroy, UID(victim[0]))),
		ContinueOnError(Item(kmip14.OperationGet, UID(victim[2])), Item(kmip14.OperationGetAttributes), Revoke(""), Item(kmip14.OperationDestroy)),
		ContinueOnError(Item(kmip14.OperationLocate, Name("alice key")), Item(kmip14.OperationGet)),
		Request(Item(kmip14.OperationLocate, Attr("Unique Identifier", tree.Text(0, victim[1])))),
		Request(Item(kmip14.OperationEncrypt, UID(victim[1]), tree.Bytes(kmip14.TagData, make([]byte, 16)))),
		Request(Item(kmip14.OperationModifyAttribute, UID("../"+alice.Identity+"/"+victim[0]), Name("x"))),
		Request(Item(kmip14.OperationGet, UID(UIDOf(own)))),
		Request(CreateAES(256), Item(kmip14.OperationActivate), Revoke(""), Item(kmip14.OperationDestroy)),
		Request(RegisterSecret([]byte("bob's own secret"))),
		Request(Item(kmip14.OperationQuery, tree.Enum(kmip14.TagQueryFunction, 1), tree.Enum(kmip14.TagQueryFunction, 3))),
		RequestV(2, 0, Item(kmip14.OperationDiscoverVersions)),
	} {
		f.Add(enc(req))
	}
	f.Add(enc(Request(Item(kmip14.OperationGet, UID(victim[0]), nested(40)))))
	f.Add([]byte{0x42, 0x00, 0x78, 0x01, 0xff, 0xff, 0xff, 0xff})

	var execs atomic.Int64
	f.Fuzz(func(t *testing.T, b []byte) {
		// The server reads the length from the header and checks it against
		// the cap; make it agree with the input so no exec is wasted on a
		// framing the connection loop would never pass on.
		if len(b) < tree.HeaderLen || len(b) > server.DefaultMaxMessageSize {
			return
		}
		b = bytes.Clone(b)
		binary.BigEndian.PutUint32(b[4:8], uint32(len(b)-tree.HeaderLen))
		fr := kmipmsg.Reader{R: bytes.NewReader(b), Max: server.DefaultMaxMessageSize}
		if _, err := fr.Next(); err != nil {
			return
		}
		req, err := tree.Decode(b, tree.DefaultLimits)
		var resp *tree.Node
		if err != nil {
			if !errors.Is(err, tree.ErrMalformed) {
				t.Fatalf("Decode error not ErrMalformed: %v", err)
			}
			resp = kmipmsg.ErrorMessage(kmip14.ResultReasonInvalidMessage, err.Error())
		} else {
			resp = p.Process(ctx, bob, req)
		}
		if resp == nil || resp.Tag != kmip14.TagResponseMessage {
			t.Fatalf("no Response Message")
		}
		out, err := tree.Encode(resp)
		if err != nil {
			t.Fatalf("response does not encode: %v", err)
		}
		back, err := tree.Decode(out, tree.Limits{MaxDepth: 64, MaxItems: 1 << 24})
		if err != nil {
			t.Fatalf("response does not decode: %v", err)
		}
		CheckMessage(t, back)
		if maj, _ := ResponseVersion(back); maj != 1 {
			t.Fatalf("answered in protocol %d.x", maj)
		}
		for _, r := range Results(back) {
			if r.Reason == kmip14.ResultReasonGeneralFailure && strings.Contains(r.Message, "internal error") {
				t.Fatalf("internal error (a recovered panic or an unexpected failure): %s", r)
			}
		}
		if watch.hit.Load() {
			t.Fatalf("the server logged a panic")
		}
		for i, uid := range victim {
			if bytes.Contains(out, []byte(uid)) || bytes.Contains(out, material[i]) {
				t.Fatalf("Bob's request revealed Alice's object %s", uid)
			}
		}
		n := execs.Add(1)
		if n%16 == 0 {
			after := snap()
			if len(after) != len(before) {
				t.Fatalf("Alice has %d records, had %d", len(after), len(before))
			}
			for k, v := range before {
				if !bytes.Equal(after[k], v) {
					t.Fatalf("Bob's request changed Alice's record %s", k)
				}
			}
		}
		if n%512 == 0 {
			trimOwner(t, e, bob.Identity, 256)
		}
	})
}

// trimOwner deletes owner's objects beyond keep, straight from the store:
// Locate opens every object, and a fuzzer that has Created thousands would
// spend its time there.
func trimOwner(t *testing.T, e *Env, owner string, keep int) {
	var keys []string
	e.Store().List(context.Background(), "obj/"+owner+"/", func(k string, _ []byte) error {
		keys = append(keys, k)
		return nil
	})
	for _, k := range keys[min(keep, len(keys)):] {
		e.Store().Delete(context.Background(), k)
	}
}
