package kmipops

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"
	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/audit"
	"github.com/kmipd/kmipd/kmipmsg"
	"github.com/kmipd/kmipd/kmipops/credential"
	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

// Observer receives one call per batch item (metrics). Optional.
type Observer interface {
	ObserveOperation(op, result string, d time.Duration)
}

// Options tune a Processor. The zero value is usable.
type Options struct {
	// CheckCredentials makes a KMIP Username/Password Credential mandatory
	// and checks it against Credentials (user → password).
	CheckCredentials bool
	Credentials      map[string]string
	// IgnoreCredentials makes a Credential name no identity: every object
	// of a TLS client is reachable by all its requests, whatever
	// Credential they carry (see package credential). Otherwise a
	// Credential's password is bound on first use, unless CheckCredentials.
	IgnoreCredentials bool
	// CredentialIterations is the PBKDF2 iteration count of new password
	// bindings; zero means credential.DefaultIterations.
	CredentialIterations int
	// DefaultObjectGroup names the server's default object group, whose
	// Fresh members kmipd makes on demand (groups.go); "" for none.
	// kmipd.hcl's default is DefaultObjectGroup.
	DefaultObjectGroup string
	// AssignDefaultGroup puts every new object whose client names no
	// Object Group into DefaultObjectGroup (KMIP 1.4 §3.33 allows it).
	AssignDefaultGroup bool
	Observer           Observer
	// Audit, when set, gets one event per batch item answered, or one for
	// a message refused as a whole (audit.go).
	Audit audit.Logger
	// LeaseTime is the longest lease kmipd grants on a cryptographic object
	// (KMIP 1.4 §3.15): every such object reports it in its Lease Time
	// attribute and Obtain Lease grants it. Zero means DefaultLeaseTime. It
	// is at most MaxLeaseTime (a KMIP Interval is 32 bits of seconds).
	LeaseTime time.Duration
	// ObjectCacheBytes bounds the cache of opened objects (see package
	// object), used when the Sealer implements object.KeyGenerations. Zero
	// means DefaultObjectCacheBytes; negative turns the cache off, so that
	// every read opens its record.
	ObjectCacheBytes int
	// MaxDeriveIterations bounds the work of one PBKDF2 Derive Key: its
	// Iteration Count times the hash-length blocks it produces (KMIP 1.4
	// §4.6 leaves derivation limits to the server). Zero means
	// DefaultMaxDeriveIterations.
	MaxDeriveIterations int
	// MaxDeriveBytes bounds the length of a derived key or Secret Data
	// object, in bytes (its Cryptographic Length / 8). Zero means
	// DefaultMaxDeriveBytes.
	MaxDeriveBytes int
	// Issuer is the certification authority that signs the certificates of
	// Certify and ReCertify (certify.go); nil: they are not offered.
	Issuer Issuer
	// AsyncOperations are answered asynchronously (Operation Pending, then
	// Poll) when the client's request accepts it; nil means
	// DefaultAsyncOperations, an empty list none (op_async.go).
	AsyncOperations []kmip14.Operation
	// Now and Rand are for tests; they default to time.Now and crypto/rand.
	Now  func() time.Time
	Rand io.Reader
}

// DefaultObjectCacheBytes is Options.ObjectCacheBytes' default.
const DefaultObjectCacheBytes = object.DefaultCacheBytes

// DefaultLeaseTime is the lease kmipd grants when Options.LeaseTime is zero:
// an hour, the value the OASIS reference server reports.
const DefaultLeaseTime = time.Hour

// MaxLeaseTime is the longest lease a KMIP Interval can express.
const MaxLeaseTime = time.Duration(1<<32-1) * time.Second

// Processor executes KMIP request messages for one server. It is safe for
// concurrent use: each object is one sealed record, and read-modify-write
// operations hold a per-object lock (object.Repo).
type Processor struct {
	opts    Options
	log     hclog.Logger
	objects *object.Repo
	streams *streamTable // open Encrypt/Decrypt/Sign/MAC streams, by Correlation Value
	// asyncOps are the operations answered asynchronously when a client
	// accepts it; pending holds those not yet polled (op_async.go).
	asyncOps map[kmip14.Operation]bool
	pending  *asyncTable
	binder   *credential.Binder // passwords bound on first use
	groups   *rotations         // Group Member Default's rotations (groups.go)
	// fullLocate makes Locate search in full even with Maximum Items,
	// as it did before the ordering index (benchmarks compare the two).
	fullLocate bool
}

// NewProcessor returns a Processor over st, sealing every record with s
// (*kek.Keyring). log should be a named sub-logger (logger.Named("kmipops")).
func NewProcessor(st storage.Store, s object.Sealer, opts Options, log hclog.Logger) *Processor {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.LeaseTime <= 0 {
		opts.LeaseTime = DefaultLeaseTime
	}
	opts.LeaseTime = min(opts.LeaseTime.Truncate(time.Second), MaxLeaseTime)
	if opts.MaxDeriveIterations <= 0 {
		opts.MaxDeriveIterations = DefaultMaxDeriveIterations
	}
	if opts.MaxDeriveBytes <= 0 {
		opts.MaxDeriveBytes = DefaultMaxDeriveBytes
	}
	if opts.AsyncOperations == nil {
		opts.AsyncOperations = DefaultAsyncOperations
	}
	async := map[kmip14.Operation]bool{}
	for _, op := range opts.AsyncOperations {
		// A Poll's answer "SHALL NOT be asynchronous" (§4.27), nor a Cancel's.
		async[op] = op != kmip14.OperationPoll && op != kmip14.OperationCancel
	}
	objects := object.NewRepo(st, s, opts.Rand, opts.ObjectCacheBytes)
	objects.SetLogger(log.Named("index"))
	return &Processor{opts: opts, log: log, streams: newStreamTable(),
		objects:  objects,
		asyncOps: async, pending: newAsyncTable(),
		binder: credential.NewBinder(st, opts.CredentialIterations),
		groups: newRotations()}
}

// RebuildIndex rebuilds owner's blind index from its records (kmipd admin
// reindex; see object.Repo.RebuildIndex).
func (p *Processor) RebuildIndex(ctx context.Context, owner string, progress func(done, total int)) (object.RebuildStats, error) {
	return p.objects.RebuildIndex(ctx, owner, progress)
}

// IndexStatus reports the blind index's rebuilds (kmipd admin status and
// metrics; see object.Repo.IndexStatus).
func (p *Processor) IndexStatus() object.IndexStatus { return p.objects.IndexStatus() }

// Close stops the Processor's background work (index rebuilds a Locate
// started) and waits for it; call it before closing the store.
func (p *Processor) Close() { p.objects.Close() }

// version is a KMIP protocol version.
type version struct{ major, minor int32 }

func (v version) String() string { return fmt.Sprintf("%d.%d", v.major, v.minor) }

// supportedVersions is in the server's order of preference, newest first.
var supportedVersions = []version{{1, 4}, {1, 3}, {1, 2}, {1, 1}, {1, 0}}

func (v version) supported() bool { return v.major == 1 && v.minor >= 0 && v.minor <= 4 }

// answerVersion is the version a refusal is written in: the request's when
// supported, else the highest supported version not above it (1.0 at worst).
func (v version) answerVersion() version {
	if v.supported() {
		return v
	}
	for _, s := range supportedVersions {
		if s.major < v.major || (s.major == v.major && s.minor <= v.minor) {
			return s
		}
	}
	return version{1, 0}
}

// Process executes one RequestMessage and returns its ResponseMessage. It
// never panics and never returns nil.
func (p *Processor) Process(ctx context.Context, c Caller, req *tree.Node) (resp *tree.Node) {
	v := version{1, 0}
	ab := p.newAuditBatch()
	if ab != nil {
		// Deferred first, so it runs last: after a recovered panic, with
		// the answer the client gets.
		defer func() { p.emitAudit(ctx, ab, c, v, resp) }()
	}
	defer func() {
		if r := recover(); r != nil {
			// The stack shows where; the panic value could quote request
			// data, so only its type is logged.
			p.log.Error("panic while processing request", "panic_type", fmt.Sprintf("%T", r), "caller", c.CommonName, "stack", string(debug.Stack()))
			resp = p.failMessage(v, kmip14.ResultReasonGeneralFailure, "internal error")
		}
	}()
	if req == nil || req.Tag != kmip14.TagRequestMessage || req.Type != ttlv.TypeStructure {
		return p.failMessage(v, kmip14.ResultReasonInvalidMessage, "not a RequestMessage")
	}
	hdr := req.Child(kmip14.TagRequestHeader)
	if hdr == nil {
		return p.failMessage(v, kmip14.ResultReasonInvalidMessage, "missing Request Header")
	}
	rv, ok := parseVersion(hdr.Child(kmip14.TagProtocolVersion))
	if !ok {
		return p.failMessage(v, kmip14.ResultReasonInvalidMessage, "missing or malformed Protocol Version")
	}
	v = rv.answerVersion()
	if !rv.supported() {
		return p.failMessage(v, kmip14.ResultReasonInvalidMessage, fmt.Sprintf("protocol version %s not supported", rv))
	}
	if c.Identity == "" || strings.ContainsRune(c.Identity, '/') {
		// The server always derives a hex identity from the client
		// certificate; anything else is a wiring bug and must not get (or
		// escape into) a storage namespace.
		return p.failMessage(v, kmip14.ResultReasonPermissionDenied, "no client identity")
	}
	principal, err := p.authenticate(ctx, c, hdr)
	if err != nil {
		p.log.Info("authentication failed", "caller", c.CommonName, "err", err)
		return p.failMessage(v, ReasonOf(err), ClientMessage(err))
	}
	c.Principal = principal
	items := req.All(kmip14.TagBatchItem)
	bc, ok := hdr.Child(kmip14.TagBatchCount).IntValue()
	if !ok {
		return p.failMessage(v, kmip14.ResultReasonInvalidMessage, "missing or malformed Batch Count")
	}
	if int(bc) != len(items) || len(items) == 0 {
		return p.failMessage(v, kmip14.ResultReasonInvalidMessage, fmt.Sprintf("Batch Count %d but %d batch items", bc, len(items)))
	}
	bo, err := parseBatchOptions(hdr)
	if err != nil {
		return p.failMessage(v, ReasonOf(err), ClientMessage(err))
	}
	out := p.runBatch(ctx, c, v, bo, items, ab)
	resp = p.message(v, out)
	if bo.maxResponseSize > 0 {
		resp = p.capResponse(v, resp, out, bo.maxResponseSize)
	}
	return resp
}

// authenticate verifies the request's KMIP Credential and returns the
// credential identity it names under the caller's TLS identity ("" for
// none). With Options.CheckCredentials a Username and Password credential
// is required and checked against Options.Credentials; otherwise a
// Credential is optional and its password is bound on first use
// (credential.Binder). With Options.IgnoreCredentials and no
// CheckCredentials, any Authentication is accepted and ignored, as before
// credentials named identities.
func (p *Processor) authenticate(ctx context.Context, c Caller, hdr *tree.Node) (string, error) {
	if p.opts.IgnoreCredentials && !p.opts.CheckCredentials {
		return "", nil
	}
	cred, err := credential.Parse(hdr.Child(kmip14.TagAuthentication))
	if err != nil {
		return "", err
	}
	defer cred.Wipe()
	switch {
	case p.opts.CheckCredentials:
		if err := p.checkCredentials(cred); err != nil {
			return "", err
		}
	case cred != nil:
		if err := p.binder.Verify(ctx, c.Identity, cred); err != nil {
			return "", err
		}
	}
	if cred == nil || p.opts.IgnoreCredentials {
		return "", nil
	}
	return cred.Principal, nil
}

// checkCredentials checks a Username and Password credential against
// Options.Credentials (user → password).
func (p *Processor) checkCredentials(cred *credential.Credential) error {
	deny := Errorf(kmip14.ResultReasonAuthenticationNotSuccessful, "authentication not successful")
	if cred == nil || cred.Username == "" {
		deny.Err = fmt.Errorf("no username/password credential")
		return deny
	}
	want, known := p.opts.Credentials[cred.Username]
	// Compare even for unknown users so timing does not reveal them.
	if !known {
		want = "\x00unknown-user"
	}
	if subtle.ConstantTimeCompare([]byte(want), cred.Password) == 1 && known {
		return nil
	}
	deny.Err = fmt.Errorf("bad password or unknown user %q", cred.Username)
	return deny
}

// parseVersion reads a Protocol Version structure (as kmipmsg does).
func parseVersion(n *tree.Node) (version, bool) {
	v, ok := kmipmsg.ParseVersion(n)
	return version{v.Major, v.Minor}, ok
}

// message is the Response Message of items, in protocol version v.
func (p *Processor) message(v version, items []*tree.Node) *tree.Node {
	return kmipmsg.Response(kmipmsg.Version{Major: v.major, Minor: v.minor}, p.opts.Now(), items...)
}

// failMessage answers a message-level failure with one failed batch item.
func (p *Processor) failMessage(v version, reason kmip14.ResultReason, msg string) *tree.Node {
	return p.message(v, []*tree.Node{failItem(nil, reason, msg)})
}

// failItem builds a failed ResponseBatchItem; req, when known, supplies the
// Operation and Unique Batch Item ID to echo.
func failItem(req *tree.Node, reason kmip14.ResultReason, msg string) *tree.Node {
	it := tree.Struct(kmip14.TagBatchItem)
	echoItem(it, req)
	return kmipmsg.AddFailure(it, reason, msg)
}

func echoItem(it, req *tree.Node) {
	if op := req.Child(kmip14.TagOperation); op != nil && op.Type == ttlv.TypeEnumeration {
		it.Add(tree.Enum(kmip14.TagOperation, uint32(op.Int)))
	}
	if id := req.Child(kmip14.TagUniqueBatchItemID); id != nil && id.Type == ttlv.TypeByteString {
		it.Add(tree.Bytes(kmip14.TagUniqueBatchItemID, id.Bytes))
	}
}

// capResponse enforces the request's Maximum Response Size: items whose
// payload does not fit are answered Response Too Large instead.
func (p *Processor) capResponse(v version, resp *tree.Node, items []*tree.Node, max int32) *tree.Node {
	b, err := tree.Encode(resp)
	if err == nil && len(b) <= int(max) {
		return resp
	}
	for i, it := range items {
		if it.Child(kmip14.TagResponsePayload) == nil {
			continue
		}
		n := tree.Struct(kmip14.TagBatchItem)
		for _, c := range it.Children {
			if c.Tag == kmip14.TagOperation || c.Tag == kmip14.TagUniqueBatchItemID {
				n.Add(c)
			}
		}
		items[i] = kmipmsg.AddFailure(n, kmip14.ResultReasonResponseTooLarge, "response exceeds Maximum Response Size")
	}
	return p.message(v, items)
}
