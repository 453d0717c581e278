package kmipops

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"
	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/hsm/hsmtest"
	"github.com/kmipd/kmipd/kek"
	"github.com/kmipd/kmipd/kek/kektest"
	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

// One SoftHSM token serves the whole test binary (newRealEnv): tokens are
// slow to make, and each env gets its own Badger directory and Keyring anyway.
var (
	hsmOnce sync.Once
	theHSM  *hsm.HSM
)

func TestMain(m *testing.M) {
	code := m.Run()
	if theHSM != nil {
		theHSM.Close()
	}
	os.Exit(code)
}

func sharedHSM(t testing.TB) *hsm.HSM {
	t.Helper()
	hsmOnce.Do(func() {
		cfg := hsmtest.SoftHSM(t)
		h, err := hsm.Open(context.Background(), cfg, hclog.NewNullLogger())
		if err != nil {
			t.Fatalf("hsm.Open: %v", err)
		}
		theHSM = h
	})
	if theHSM == nil {
		t.Skip("no SoftHSM")
	}
	return theHSM
}

var (
	alice = Caller{Identity: "a11ce0000000000000000000000000000000000000000000000000000000000a", CommonName: "alice"}
	bob   = Caller{Identity: "b0b0000000000000000000000000000000000000000000000000000000000000", CommonName: "bob"}
)

type env struct {
	t   testing.TB
	dir string // the Badger directory of a newRealEnv
	st  storage.Store
	kr  *kek.Keyring
	p   *Processor
	v   version
}

// newEnv is the fixture for KMIP semantics: an in-memory store and software
// master keys, each env its own.
func newEnv(t testing.TB, opts Options) *env {
	t.Helper()
	st := storage.NewMemory()
	t.Cleanup(func() { st.Close() })
	return envOver(t, "", st, kektest.NewMasterKeys(), opts)
}

// newRealEnv runs the same over the real parts, the shared SoftHSM token
// and Badger in a temporary directory, for tests of what those do: PKCS#11
// calls made, bytes on disk, and the benchmarks.
func newRealEnv(t testing.TB, opts Options) *env {
	t.Helper()
	h := sharedHSM(t)
	dir := t.TempDir()
	st, err := storage.OpenBadger(dir, storage.BadgerOptions{GCInterval: -1}, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("OpenBadger: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return envOver(t, dir, st, h, opts)
}

func envOver(t testing.TB, dir string, st storage.Store, mk kek.MasterKeys, opts Options) *env {
	kr := kek.New(mk, st, kek.Config{}, hclog.NewNullLogger())
	log := hclog.NewNullLogger()
	if testing.Verbose() {
		log = hclog.New(&hclog.LoggerOptions{Name: "kmipops", Level: hclog.Debug})
	}
	return &env{t: t, dir: dir, st: st, kr: kr, p: NewProcessor(st, kr, opts, log), v: version{1, 4}}
}

// do sends one request message of items as c and returns the response,
// after checking it survives a TTLV encode/decode round trip.
func (e *env) do(c Caller, items ...*tree.Node) *tree.Node {
	e.t.Helper()
	return e.send(c, reqMsg(e.v, items...))
}

func (e *env) send(c Caller, req *tree.Node) *tree.Node {
	e.t.Helper()
	resp := e.p.Process(context.Background(), c, req)
	b, err := tree.Encode(resp)
	if err != nil {
		e.t.Fatalf("response does not encode: %v", err)
	}
	out, err := tree.Decode(b, tree.DefaultLimits)
	if err != nil {
		e.t.Fatalf("response does not decode: %v", err)
	}
	return out
}

func reqMsg(v version, items ...*tree.Node) *tree.Node {
	m := tree.Struct(kmip14.TagRequestMessage,
		tree.Struct(kmip14.TagRequestHeader,
			tree.Struct(kmip14.TagProtocolVersion,
				tree.Int(kmip14.TagProtocolVersionMajor, v.major),
				tree.Int(kmip14.TagProtocolVersionMinor, v.minor)),
			tree.Int(kmip14.TagBatchCount, int32(len(items)))))
	return m.Add(items...)
}

func item(op kmip14.Operation, fields ...*tree.Node) *tree.Node {
	return tree.Struct(kmip14.TagBatchItem,
		tree.Enum(kmip14.TagOperation, uint32(op)),
		tree.Struct(kmip14.TagRequestPayload, fields...))
}

func attrNode(name string, v *tree.Node) *tree.Node {
	v.Tag = kmip14.TagAttributeValue
	return tree.Struct(kmip14.TagAttribute, tree.Text(kmip14.TagAttributeName, name), v)
}

func nameAttr(s string) *tree.Node {
	return attrNode("Name", tree.Struct(0,
		tree.Text(kmip14.TagNameValue, s),
		tree.Enum(kmip14.TagNameType, uint32(kmip14.NameTypeUninterpretedTextString))))
}

func template(tag ttlv.Tag, attrs ...*tree.Node) *tree.Node { return tree.Struct(tag, attrs...) }

func uidF(uid string) *tree.Node { return tree.Text(kmip14.TagUniqueIdentifier, uid) }

func createAES(length int32, extra ...*tree.Node) *tree.Node {
	attrs := append([]*tree.Node{
		attrNode("Cryptographic Algorithm", tree.Enum(0, uint32(kmip14.CryptographicAlgorithmAES))),
		attrNode("Cryptographic Length", tree.Int(0, length)),
		attrNode("Cryptographic Usage Mask", tree.Int(0, int32(kmip14.CryptographicUsageMaskEncrypt|kmip14.CryptographicUsageMaskDecrypt))),
	}, extra...)
	return item(kmip14.OperationCreate,
		tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSymmetricKey)),
		template(kmip14.TagTemplateAttribute, attrs...))
}

// batchItems returns the response's batch items, checking Batch Count.
func batchItems(t testing.TB, resp *tree.Node) []*tree.Node {
	t.Helper()
	items := resp.All(kmip14.TagBatchItem)
	if n, _ := resp.Path(kmip14.TagResponseHeader, kmip14.TagBatchCount).IntValue(); int(n) != len(items) {
		t.Fatalf("Batch Count %d, %d items", n, len(items))
	}
	return items
}

// okPayload asserts item i succeeded and returns its payload.
func okPayload(t testing.TB, resp *tree.Node, i int) *tree.Node {
	t.Helper()
	items := batchItems(t, resp)
	if i >= len(items) {
		t.Fatalf("no batch item %d in %s", i, resp)
	}
	it := items[i]
	if s, _ := it.Child(kmip14.TagResultStatus).EnumValue(); s != uint32(kmip14.ResultStatusSuccess) {
		r, _ := it.Child(kmip14.TagResultReason).EnumValue()
		m, _ := it.Child(kmip14.TagResultMessage).TextValue()
		t.Fatalf("item %d failed: %s: %s", i, kmip14.ResultReason(r), m)
	}
	p := it.Child(kmip14.TagResponsePayload)
	if p == nil {
		t.Fatalf("item %d has no payload", i)
	}
	return p
}

// wantFail asserts item i failed with reason.
func wantFail(t testing.TB, resp *tree.Node, i int, reason kmip14.ResultReason) string {
	t.Helper()
	items := batchItems(t, resp)
	if i >= len(items) {
		t.Fatalf("no batch item %d", i)
	}
	it := items[i]
	s, _ := it.Child(kmip14.TagResultStatus).EnumValue()
	r, _ := it.Child(kmip14.TagResultReason).EnumValue()
	m, _ := it.Child(kmip14.TagResultMessage).TextValue()
	if s != uint32(kmip14.ResultStatusOperationFailed) || kmip14.ResultReason(r) != reason {
		t.Fatalf("item %d: status %d reason %s (%q), want failure %s", i, s, kmip14.ResultReason(r), m, reason)
	}
	if it.Child(kmip14.TagResponsePayload) != nil {
		t.Fatalf("failed item %d carries a payload", i)
	}
	return m
}

func text(t testing.TB, n *tree.Node, tag ttlv.Tag) string {
	t.Helper()
	s, ok := n.Child(tag).TextValue()
	if !ok {
		t.Fatalf("no text %s in %s", tag, n)
	}
	return s
}

// create makes an AES-256 key for c and returns its uid.
func (e *env) create(c Caller, extra ...*tree.Node) string {
	e.t.Helper()
	return text(e.t, okPayload(e.t, e.do(c, createAES(256, extra...)), 0), kmip14.TagUniqueIdentifier)
}

// getAttrs returns the attributes of uid by name → values.
func (e *env) getAttrs(c Caller, uid string, names ...string) map[string][]*tree.Node {
	e.t.Helper()
	f := []*tree.Node{uidF(uid)}
	for _, n := range names {
		f = append(f, tree.Text(kmip14.TagAttributeName, n))
	}
	p := okPayload(e.t, e.do(c, item(kmip14.OperationGetAttributes, f...)), 0)
	out := map[string][]*tree.Node{}
	for _, a := range p.All(kmip14.TagAttribute) {
		n, _ := a.Child(kmip14.TagAttributeName).TextValue()
		out[n] = append(out[n], a.Child(kmip14.TagAttributeValue))
	}
	return out
}

func (e *env) state(c Caller, uid string) kmip14.State {
	e.t.Helper()
	v, ok := e.getAttrs(c, uid, "State")["State"]
	if !ok {
		e.t.Fatalf("no State")
	}
	return kmip14.State(v[0].Int)
}

// fixedClock is a settable Options.Now.
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fixedClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fixedClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
