package kmipops

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/audit"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// auditEnv is an env whose processor audits to a file sink in a temp dir.
func auditEnv(t testing.TB) (*env, *audit.Sink, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	s, err := audit.Open(path, audit.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return newEnv(t, Options{Audit: s}), s, path
}

type auditLine struct {
	Seq          uint64   `json:"seq"`
	Time         string   `json:"time"`
	Identity     string   `json:"identity"`
	CN           string   `json:"cn"`
	Version      string   `json:"version"`
	Op           string   `json:"op"`
	BatchIndex   int      `json:"batch_index"`
	BatchItemID  string   `json:"batch_item_id"`
	RequestUIDs  []string `json:"request_uids"`
	ResponseUIDs []string `json:"response_uids"`
	Result       string   `json:"result"`
	Reason       string   `json:"reason"`
	DurationNS   *int64   `json:"duration_ns"`
	Audit        string   `json:"audit"`
}

// closeAudit closes the sink, checks the chain and returns the raw file and
// its event lines.
func closeAudit(t *testing.T, s *audit.Sink, path string) ([]byte, []auditLine) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(bytes.NewReader(raw)); err != nil {
		t.Fatalf("audit log does not verify: %v", err)
	}
	var out []auditLine
	for _, l := range bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n")) {
		var a auditLine
		if err := json.Unmarshal(l, &a); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if a.Audit != "" {
			continue
		}
		if _, err := time.Parse(time.RFC3339Nano, a.Time); err != nil || a.DurationNS == nil || *a.DurationNS < 0 {
			t.Fatalf("bad time or duration: %s", l)
		}
		out = append(out, a)
	}
	return raw, out
}

func symKeyBody(mat []byte) *tree.Node {
	return tree.Struct(kmip14.TagSymmetricKey, tree.Struct(kmip14.TagKeyBlock,
		tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw)),
		tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, mat)),
		tree.Enum(kmip14.TagCryptographicAlgorithm, uint32(kmip14.CryptographicAlgorithmAES)),
		tree.Int(kmip14.TagCryptographicLength, int32(8*len(mat)))))
}

func keyMaterialOf(t *testing.T, resp *tree.Node) []byte {
	t.Helper()
	m := okPayload(t, resp, 0).Path(kmip14.TagSymmetricKey, kmip14.TagKeyBlock, kmip14.TagKeyValue, kmip14.TagKeyMaterial)
	if m == nil || len(m.Bytes) != 32 {
		t.Fatalf("no 32-byte key material in %s", resp)
	}
	return m.Bytes
}

// TestAuditNeverHoldsKeyMaterial registers, creates, gets and uses keys and
// then looks for their bytes (and the plaintext) in the log in every
// encoding a line could carry them in.
func TestAuditNeverHoldsKeyMaterial(t *testing.T) {
	e, s, path := auditEnv(t)
	registered := make([]byte, 32)
	rand.Read(registered)
	resp := e.do(alice, item(kmip14.OperationRegister,
		tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSymmetricKey)),
		template(kmip14.TagTemplateAttribute,
			attrNode("Cryptographic Usage Mask", tree.Int(0, int32(kmip14.CryptographicUsageMaskEncrypt|kmip14.CryptographicUsageMaskDecrypt))),
			nameAttr("secret-name-attribute")),
		symKeyBody(registered)))
	regUID := text(t, okPayload(t, resp, 0), kmip14.TagUniqueIdentifier)
	if got := keyMaterialOf(t, e.do(alice, item(kmip14.OperationGet, uidF(regUID)))); !bytes.Equal(got, registered) {
		t.Fatal("Get returned other bytes than registered")
	}
	crUID := e.create(alice)
	created := keyMaterialOf(t, e.do(alice, item(kmip14.OperationGet, uidF(crUID))))
	plaintext := []byte("audit-plaintext-that-must-not-leak")
	okPayload(t, e.do(alice, item(kmip14.OperationActivate, uidF(crUID))), 0)
	okPayload(t, e.do(alice, item(kmip14.OperationEncrypt, uidF(crUID),
		crParams(crMode(kmip14.BlockCipherModeGCM)), crData(plaintext))), 0)
	okPayload(t, e.do(alice, item(kmip14.OperationGetAttributes, uidF(regUID))), 0)

	raw, lines := closeAudit(t, s, path)
	if len(lines) != 7 {
		t.Fatalf("%d event lines, want 7:\n%s", len(lines), raw)
	}
	// Not vacuous: the identifiers are there.
	for _, uid := range []string{regUID, crUID} {
		if !bytes.Contains(raw, []byte(uid)) {
			t.Fatalf("uid %s not in the log", uid)
		}
	}
	for name, secret := range map[string][]byte{"registered key": registered, "created key": created, "plaintext": plaintext} {
		forms := [][]byte{secret,
			[]byte(base64.StdEncoding.EncodeToString(secret)), []byte(base64.RawStdEncoding.EncodeToString(secret)),
			[]byte(base64.URLEncoding.EncodeToString(secret)), []byte(base64.RawURLEncoding.EncodeToString(secret))}
		for i := 0; i+8 <= len(secret); i++ { // any 8 bytes of it in hex
			h := hex.EncodeToString(secret[i : i+8])
			forms = append(forms, []byte(h), []byte(strings.ToUpper(h)))
		}
		for _, f := range forms {
			if bytes.Contains(raw, f) {
				t.Fatalf("%s found in the audit log as %q", name, f)
			}
		}
	}
	if bytes.Contains(raw, []byte("secret-name-attribute")) {
		t.Fatal("an attribute value is in the audit log")
	}
}

func TestAuditOneLinePerItem(t *testing.T) {
	e, s, path := auditEnv(t)
	ctx := context.Background()
	withOption := func(req *tree.Node, o kmip14.BatchErrorContinuationOption) *tree.Node {
		req.Child(kmip14.TagRequestHeader).Add(tree.Enum(kmip14.TagBatchErrorContinuationOption, uint32(o)))
		return req
	}
	// 1. Continue: every item answered, failures with their reason.
	resp := e.send(alice, withOption(reqMsg(e.v,
		withID(createAES(256), "a"),
		withID(item(kmip14.OperationGet, uidF("nope")), "b"),
		withID(item(kmip14.OperationGet), "c"),
		withID(item(kmip14.Operation(0x7fff)), "d"),
		withID(item(kmip14.OperationQuery), "e"),
	), kmip14.BatchErrorContinuationOptionContinue))
	uid := text(t, okPayload(t, resp, 0), kmip14.TagUniqueIdentifier)
	// 2. Stop: the items after the failure are not run, nor audited.
	e.send(alice, reqMsg(e.v, item(kmip14.OperationQuery), item(kmip14.OperationGet, uidF("nope")), createAES(128)))
	// 3. Undo: the Create that was undone says so.
	e.send(alice, withOption(reqMsg(e.v, createAES(256), item(kmip14.OperationGet, uidF("nope"))), kmip14.BatchErrorContinuationOptionUndo))
	// 4. Another caller is audited as itself, and is refused.
	wantFail(t, e.do(bob, item(kmip14.OperationGet, uidF(uid))), 0, kmip14.ResultReasonItemNotFound)
	// 5. A message refused before its items run: one line.
	bad := reqMsg(e.v, item(kmip14.OperationQuery))
	bad.Child(kmip14.TagRequestHeader).Child(kmip14.TagBatchCount).Int = 3
	e.send(alice, bad)
	// 6. A Get too large for Maximum Response Size.
	big := reqMsg(e.v, item(kmip14.OperationGet, uidF(uid)))
	big.Child(kmip14.TagRequestHeader).Add(tree.Int(kmip14.TagMaximumResponseSize, 16))
	e.send(alice, big)
	// 7. A cancelled request: its items are answered General Failure.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	e.p.Process(cctx, alice, withOption(reqMsg(e.v, item(kmip14.OperationQuery), item(kmip14.OperationQuery)), kmip14.BatchErrorContinuationOptionContinue))
	// 8. Create Key Pair returns two identifiers.
	kp := okPayload(t, e.do(alice, item(kmip14.OperationCreateKeyPair, template(kmip14.TagCommonTemplateAttribute,
		attrNode("Cryptographic Algorithm", tree.Enum(0, uint32(kmip14.CryptographicAlgorithmEC))),
		attrNode("Cryptographic Length", tree.Int(0, 256))))), 0)

	_, lines := closeAudit(t, s, path)
	type want struct {
		caller        Caller
		op            string
		index         int
		id            string
		reqUIDs       []string
		result, reson string
	}
	wants := []want{
		{alice, "Create", 0, "a", nil, "Success", ""},
		{alice, "Get", 1, "b", []string{"nope"}, "OperationFailed", "ItemNotFound"},
		{alice, "Get", 2, "c", nil, "OperationFailed", "MissingData"},
		{alice, "Unknown", 3, "d", nil, "OperationFailed", "OperationNotSupported"},
		{alice, "Query", 4, "e", nil, "Success", ""},
		{alice, "Query", 0, "", nil, "Success", ""},
		{alice, "Get", 1, "", []string{"nope"}, "OperationFailed", "ItemNotFound"},
		{alice, "Create", 0, "", nil, "OperationUndone", ""},
		{alice, "Get", 1, "", []string{"nope"}, "OperationFailed", "ItemNotFound"},
		{bob, "Get", 0, "", []string{uid}, "OperationFailed", "ItemNotFound"},
		{alice, "", -1, "", nil, "OperationFailed", "InvalidMessage"},
		{alice, "Get", 0, "", []string{uid}, "OperationFailed", "ResponseTooLarge"},
		{alice, "Query", 0, "", nil, "OperationFailed", "GeneralFailure"},
		{alice, "Query", 1, "", nil, "OperationFailed", "GeneralFailure"},
		{alice, "CreateKeyPair", 0, "", nil, "Success", ""},
	}
	if len(lines) != len(wants) {
		t.Fatalf("%d lines, want %d: %+v", len(lines), len(wants), lines)
	}
	for i, w := range wants {
		l := lines[i]
		wantID := ""
		if w.id != "" {
			wantID = hex.EncodeToString([]byte(w.id))
		}
		if l.Identity != w.caller.Identity || l.CN != w.caller.CommonName || l.Op != w.op || l.BatchIndex != w.index ||
			l.BatchItemID != wantID || strings.Join(l.RequestUIDs, ",") != strings.Join(w.reqUIDs, ",") ||
			l.Result != w.result || l.Reason != w.reson || l.Version != "1.4" {
			t.Errorf("line %d: %+v\nwant %+v", i, l, w)
		}
	}
	if r := lines[0].ResponseUIDs; len(r) != 1 || r[0] != uid {
		t.Errorf("Create's response uids %v, want [%s]", r, uid)
	}
	if r := lines[7].ResponseUIDs; len(r) != 1 {
		t.Errorf("the undone Create should still name what it created: %v", r)
	}
	priv, pub := text(t, kp, kmip14.TagPrivateKeyUniqueIdentifier), text(t, kp, kmip14.TagPublicKeyUniqueIdentifier)
	if r := lines[14].ResponseUIDs; strings.Join(r, ",") != priv+","+pub {
		t.Errorf("Create Key Pair's response uids %v, want %s and %s", r, priv, pub)
	}
}

// BenchmarkProcessGetAudit is BenchmarkProcessGet (cached) with auditing
// off and on (to a file), in one run so the two can be compared. cpu-ns/op
// is the process's CPU time (user+system, every goroutine: the audit writer
// too) per Get, steadier than ns/op on a shared machine.
// Run: go test -run '^$' -bench BenchmarkProcessGetAudit ./kmipops/
func BenchmarkProcessGetAudit(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "file"
		}
		b.Run(name, func(b *testing.B) {
			var e *env
			var s *audit.Sink
			if on {
				e, s, _ = auditEnv(b)
			} else {
				e = newEnv(b, Options{})
			}
			uid := e.create(alice)
			req := reqMsg(e.v, item(kmip14.OperationGet, uidF(uid)))
			ctx := context.Background()
			get := func() {
				resp := e.p.Process(ctx, alice, req)
				if st, _ := resp.Path(kmip14.TagBatchItem, kmip14.TagResultStatus).EnumValue(); st != uint32(kmip14.ResultStatusSuccess) {
					b.Fatalf("failed: %s", resp)
				}
			}
			get() // warm the owner's pKEK
			measureSerialParallel(b, get, s, 0)
		})
	}
}

// BenchmarkProcessCreateAudit is Create over the real store (Badger,
// synced group commits) and SoftHSM with auditing off and on, the log on
// the store's file system (a temporary folder), in one run so the two can
// be compared: with ext4's data=ordered a store's fsync might also have to
// write the log's appended blocks. AUDIT_BENCH_DIR puts the log elsewhere
// (AUDIT_BENCH_DIR=/dev/shm: a tmpfs, to tell the file system's part from
// the line's). cpu-ns/op is the process's CPU time per Create, the audit
// writer's included; parallel runs 16 goroutines per core, as a loaded
// server's connections would.
// Run: go test -run '^$' -bench BenchmarkProcessCreateAudit ./kmipops/
func BenchmarkProcessCreateAudit(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "file"
		}
		b.Run(name, func(b *testing.B) {
			var s *audit.Sink
			opts := Options{}
			if on {
				dir := os.Getenv("AUDIT_BENCH_DIR")
				if dir == "" {
					dir = b.TempDir()
				}
				var err error
				s, err = audit.Open(filepath.Join(dir, fmt.Sprintf("audit-%d.log", time.Now().UnixNano())), audit.Options{}, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { s.Close() })
				opts.Audit = s
			}
			e := newRealEnv(b, opts)
			req := reqMsg(e.v, createAES(256))
			ctx := context.Background()
			create := func() {
				resp := e.p.Process(ctx, alice, req)
				if st, _ := resp.Path(kmip14.TagBatchItem, kmip14.TagResultStatus).EnumValue(); st != uint32(kmip14.ResultStatusSuccess) {
					b.Fatalf("failed: %s", resp)
				}
			}
			create() // the owner's pKEK
			measureSerialParallel(b, create, s, 16)
		})
	}
}

// measureSerialParallel runs op serially, then with parallelism goroutines
// per core (0: GOMAXPROCS), flushing the audit sink s (if any) inside each
// run so the lines it queued are written within it, and reports cpu-ns/op
// (the process's CPU time, the audit writer's included) and ops/s.
func measureSerialParallel(b *testing.B, op func(), s *audit.Sink, parallelism int) {
	for _, parallel := range []bool{false, true} {
		name := "serial"
		if parallel {
			name = "parallel"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			b.ResetTimer()
			if parallel {
				if parallelism > 0 {
					b.SetParallelism(parallelism)
				}
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						op()
					}
				})
			} else {
				for range b.N {
					op()
				}
			}
			if s != nil {
				_ = s.Flush()
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
