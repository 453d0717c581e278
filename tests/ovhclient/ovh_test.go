// Package ovhclient drives kmipd with an independent KMIP client,
// github.com/ovh/kmip-go's kmipclient, over real mutual TLS on 127.0.0.1
// against a real `kmipd dev` (SoftHSM2, Badger). It is its own Go module so
// kmipd's go.mod never depends on that client.
//
// What the client cannot do by KMIP, the test says, citing the spec; kmipd is
// never loosened to match the client's bytes.
package ovhclient

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/payloads"

	"github.com/kmipd/kmipd/testkit"
)

// server is one kmipd dev for the whole suite: each test takes its own
// identity from the dev CA, so tests share no objects.
type server struct {
	dev *testkit.Dev
}

// TestOVHClient is the suite: one server, one subtest per area.
func TestOVHClient(t *testing.T) {
	s := &server{dev: testkit.StartDev(t, testkit.DevOptions{})}
	t.Run("Negotiation", s.testNegotiation)
	t.Run("KMIP2Refused", s.testKMIP2Refused)
	for _, v := range []kmip.ProtocolVersion{kmip.V1_4, kmip.V1_2, kmip.V1_0} {
		t.Run("v"+v.String(), func(t *testing.T) { s.testVersion(t, v) })
	}
	t.Run("Crypto", s.testCrypto)
	t.Run("Rekey", s.testRekey)
	t.Run("Batch", s.testBatch)
	t.Run("KMIP14ImportExport", s.testImportExport)
	t.Run("Deeper", s.testDeeper)
	t.Run("More", s.testMore)
	t.Run("Concurrent", s.testConcurrent)
}

// dial connects the ovh client with a fresh identity (a new owner).
func (s *server) dial(t *testing.T, name string, opts ...kmipclient.Option) *kmipclient.Client {
	t.Helper()
	id := s.dev.NewIdentity(t, name)
	opts = append([]kmipclient.Option{
		kmipclient.WithRootCAFile(id.CAFile),
		kmipclient.WithClientCertFiles(id.CertFile, id.KeyFile),
	}, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := kmipclient.DialContext(ctx, s.dev.Addr, opts...)
	if err != nil {
		t.Fatalf("dial kmipd with ovh/kmip-go: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// recorder is a middleware keeping every request header the client sends and
// every response header it gets.
type recorder struct {
	mu   sync.Mutex
	reqs []kmip.RequestMessage
	resp []kmip.ResponseMessage
}

func (r *recorder) middleware(next kmipclient.Next, ctx context.Context, msg *kmip.RequestMessage) (*kmip.ResponseMessage, error) {
	resp, err := next(ctx, msg)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, *msg)
	if resp != nil {
		r.resp = append(r.resp, *resp)
	}
	return resp, err
}

// testNegotiation: by default the client sends Discover Versions (as a KMIP
// 1.1 message) listing 1.4 down to 1.0 and adopts the first version the
// server answers (KMIP 1.1+ §4.26: the server's list is in its order of
// preference). kmipd must answer 1.4 first, and then serve 1.4 requests.
func (s *server) testNegotiation(t *testing.T) {
	rec := &recorder{}
	c := s.dial(t, "negotiate", kmipclient.WithMiddlewares(rec.middleware))
	if len(rec.reqs) != 1 {
		t.Fatalf("dial sent %d messages, want exactly the Discover Versions", len(rec.reqs))
	}
	req := rec.reqs[0]
	if req.Header.ProtocolVersion != kmip.V1_1 || req.BatchItem[0].Operation != kmip.OperationDiscoverVersions {
		t.Fatalf("first message: %v %v, want Discover Versions at 1.1", req.Header.ProtocolVersion, req.BatchItem[0].Operation)
	}
	if got := rec.resp[0].Header.ProtocolVersion; got != kmip.V1_1 {
		t.Errorf("response to a 1.1 request carries version %v, want the request's 1.1", got)
	}
	if got := c.Version(); got != kmip.V1_4 {
		t.Fatalf("negotiated %v, want 1.4 (kmipd's highest)", got)
	}
	// Discover Versions with the client's list, sent again by hand: the
	// answer is the intersection in the server's order.
	resp, err := c.Request(context.Background(), &payloads.DiscoverVersionsRequestPayload{
		ProtocolVersion: []kmip.ProtocolVersion{kmip.V2_0, kmip.V1_2, kmip.V1_0},
	})
	if err != nil {
		t.Fatalf("Discover Versions: %v", err)
	}
	got := resp.(*payloads.DiscoverVersionsResponsePayload).ProtocolVersion
	if len(got) != 2 || got[0] != kmip.V1_2 || got[1] != kmip.V1_0 {
		t.Errorf("Discover Versions(2.0, 1.2, 1.0) = %v, want [1.2 1.0]", got)
	}
	// A client offering only 2.x finds no common version.
	id := s.dev.NewIdentity(t, "only2")
	_, err = kmipclient.Dial(s.dev.Addr, kmipclient.WithRootCAFile(id.CAFile),
		kmipclient.WithClientCertFiles(id.CertFile, id.KeyFile), kmipclient.WithKmipVersions(kmip.V2_1, kmip.V2_0))
	if err == nil {
		t.Errorf("a client offering only KMIP 2.0 and 2.1 negotiated a version with a 1.x server")
	}
	checkSmoke(t, c)
}

// checkSmoke creates, reads back and destroys one AES key.
func checkSmoke(t *testing.T, c *kmipclient.Client) {
	t.Helper()
	cr, err := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).Exec()
	if err != nil {
		t.Fatalf("Create AES-256 at %v: %v", c.Version(), err)
	}
	g, err := c.Get(cr.UniqueIdentifier).Exec()
	if err != nil {
		t.Fatalf("Get at %v: %v", c.Version(), err)
	}
	km, err := g.Object.(*kmip.SymmetricKey).KeyMaterial()
	if err != nil || len(km) != 32 {
		t.Fatalf("Get at %v: key material %d bytes, %v; want 32", c.Version(), len(km), err)
	}
	if _, err := c.Destroy(cr.UniqueIdentifier).Exec(); err != nil {
		t.Fatalf("Destroy at %v: %v", c.Version(), err)
	}
}

// failure runs one request and returns its failed batch item; it fails the
// test if the request succeeded or did not come back as a KMIP response.
func failure(t *testing.T, c *kmipclient.Client, pl kmip.OperationPayload, opts ...kmipclient.BatchOption) *kmip.ResponseBatchItem {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.BatchOpt(ctx, []kmip.OperationPayload{pl}, opts...)
	if err != nil {
		t.Fatalf("%v: no KMIP answer: %v", pl.Operation(), err)
	}
	bi := res[0]
	if bi.ResultStatus == kmip.ResultStatusSuccess {
		t.Fatalf("%v succeeded, want a failure", pl.Operation())
	}
	return &bi
}

// reasonOf runs one request and returns its Result Reason (0 on success).
func reasonOf(t *testing.T, c *kmipclient.Client, pl kmip.OperationPayload) kmip.ResultReason {
	t.Helper()
	res, err := c.Batch(context.Background(), pl)
	if err != nil {
		t.Fatalf("%v: no KMIP answer: %v", pl.Operation(), err)
	}
	return res[0].ResultReason
}
