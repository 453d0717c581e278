package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/kmipmsg"
	"github.com/kmipd/kmipd/kmipops"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// testCA is a throwaway PKI; the real one is in certs/, which this package
// must not depend on for its own tests.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

var serial = struct {
	sync.Mutex
	n int64
}{n: 1}

func nextSerial() *big.Int {
	serial.Lock()
	defer serial.Unlock()
	serial.n++
	return big.NewInt(serial.n)
}

func ecKey(t testing.TB) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func rsaKey(t testing.TB) crypto.Signer {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newCA(t testing.TB, name string) *testCA {
	return newCAUntil(t, name, time.Now().Add(24*time.Hour))
}

// newCAUntil is a CA whose own certificate expires at notAfter.
func newCAUntil(t testing.TB, name string, notAfter time.Time) *testCA {
	key := ecKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issued is a certificate with its key, in memory and as PEM.
type issued struct {
	tls     tls.Certificate
	leaf    *x509.Certificate
	certPEM []byte
	keyPEM  []byte
}

func (ca *testCA) issue(t testing.TB, cn string, key crypto.Signer, eku ...x509.ExtKeyUsage) *issued {
	return ca.issueUntil(t, cn, key, time.Now().Add(24*time.Hour), eku...)
}

// issueUntil issues a certificate that expires at notAfter.
func (ca *testCA) issueUntil(t testing.TB, cn string, key crypto.Signer, notAfter time.Time, eku ...x509.ExtKeyUsage) *issued {
	ku := x509.KeyUsageDigitalSignature
	if _, ok := key.(*rsa.PrivateKey); ok {
		ku |= x509.KeyUsageKeyEncipherment
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     ku,
		ExtKeyUsage:  eku,
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &issued{
		tls:     tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		leaf:    leaf,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}),
	}
}

// files writes the certificate and key to dir and returns their paths.
func (c *issued) files(t testing.TB, dir, name string) (certFile, keyFile string) {
	certFile = filepath.Join(dir, name+".crt")
	keyFile = filepath.Join(dir, name+".key")
	writeFile(t, certFile, c.certPEM)
	writeFile(t, keyFile, c.keyPEM)
	return certFile, keyFile
}

func writeFile(t testing.TB, path string, b []byte) {
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// echoProc answers every request with its protocol version and batch
// count, and the caller in the result message. Batch count 99 panics.
type echoProc struct {
	block chan struct{} // if set, Process waits on it (or ctx)
}

func (p echoProc) Process(ctx context.Context, c kmipops.Caller, req *tree.Node) *tree.Node {
	hdr := req.Child(kmip14.TagRequestHeader)
	bc := hdr.Child(kmip14.TagBatchCount)
	if v, _ := bc.IntValue(); v == 99 {
		panic("test processor panic")
	}
	if p.block != nil {
		select {
		case <-p.block:
		case <-ctx.Done():
		}
	}
	return tree.Struct(kmip14.TagResponseMessage,
		tree.Struct(kmip14.TagResponseHeader,
			hdr.Child(kmip14.TagProtocolVersion).Clone(),
			tree.Time(kmip14.TagTimeStamp, time.Now()),
			bc.Clone(),
		),
		tree.Struct(kmip14.TagBatchItem,
			tree.Enum(kmip14.TagResultStatus, uint32(kmip14.ResultStatusSuccess)),
			tree.Text(kmip14.TagResultMessage, c.Identity+"/"+c.CommonName),
		),
	)
}

// request is a minimal RequestMessage carrying a secret-looking byte string,
// so tests can check it never reaches the log.
func request(batchCount int32) []byte {
	return tree.MustEncode(tree.Struct(kmip14.TagRequestMessage,
		kmipmsg.RequestHeader(kmipmsg.Version{Major: 1, Minor: 4}, batchCount, kmipmsg.Options{}),
		tree.Struct(kmip14.TagBatchItem,
			tree.Enum(kmip14.TagOperation, uint32(kmip14.OperationRegister)),
			tree.Bytes(kmip14.TagKeyMaterial, []byte(secretMarker)),
		),
	))
}

const secretMarker = "SECRET-KEY-MATERIAL-0123456789"

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a running server with its PKI.
type env struct {
	t       *testing.T
	srv     *Server
	addr    string
	ca      *testCA
	server  *issued
	client  *issued
	metrics *Metrics
	logs    *syncBuffer
	dir     string
	stop    func() // cancels Serve and waits for it; idempotent
}

type envOpt struct {
	rsaServer bool
	cfg       Config
	proc      Processor
}

func startServer(t *testing.T, o envOpt) *env {
	t.Helper()
	e := &env{t: t, ca: newCA(t, "test CA"), metrics: NewMetrics(), logs: &syncBuffer{}, dir: t.TempDir()}
	skey := ecKey(t)
	if o.rsaServer {
		skey = rsaKey(t)
	}
	e.server = e.ca.issue(t, "kmipd", skey, x509.ExtKeyUsageServerAuth)
	e.client = e.ca.issue(t, "client-a", ecKey(t), x509.ExtKeyUsageClientAuth)
	certFile, keyFile := e.server.files(t, e.dir, "server")
	caFile := filepath.Join(e.dir, "ca.crt")
	writeFile(t, caFile, e.ca.pem)
	tc, err := TLSConfig(certFile, keyFile, caFile, 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg := o.cfg
	cfg.TLS = tc
	cfg.Metrics = e.metrics
	if o.proc == nil {
		o.proc = echoProc{}
	}
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: e.logs})
	e.srv = New(cfg, o.proc, log)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = l.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, l) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("Serve did not return")
			}
		})
	}
	t.Cleanup(func() {
		e.stop()
		if bytes.Contains([]byte(e.logs.String()), []byte(secretMarker)) {
			t.Errorf("log contains message content")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", e.logs.String())
		}
	})
	return e
}

func (e *env) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(e.ca.cert)
	return p
}

// dial opens a TLS connection; cert may be nil; max 0 means no limit.
func (e *env) dial(cert *issued, minV, maxV uint16) (*tls.Conn, error) {
	cfg := &tls.Config{RootCAs: e.pool(), ServerName: "127.0.0.1", MinVersion: minV, MaxVersion: maxV}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.tls}
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", e.addr, cfg)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, nil
}

func (e *env) mustDial(cert *issued) *tls.Conn {
	e.t.Helper()
	c, err := e.dial(cert, 0, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// readResponse reads one framed message.
func readResponse(r io.Reader) (*tree.Node, error) {
	return kmipmsg.ReadTree(r, 0, tree.DefaultLimits)
}

func roundTrip(c net.Conn, req []byte) (*tree.Node, error) {
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	return readResponse(c)
}

// expectClosed asserts the peer closes without sending anything more.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	var b [1]byte
	n, err := c.Read(b[:])
	if n != 0 || err == nil {
		t.Fatalf("read = %d, %v; want connection closed", n, err)
	}
	if isTimeout(err) {
		t.Fatalf("connection still open: %v", err)
	}
}

func batchCount(t *testing.T, resp *tree.Node) int32 {
	t.Helper()
	v, ok := resp.Path(kmip14.TagResponseHeader, kmip14.TagBatchCount).IntValue()
	if !ok {
		t.Fatalf("no batch count in %v", resp)
	}
	return v
}

func resultReason(resp *tree.Node) (kmip14.ResultReason, string) {
	r, _ := resp.Path(kmip14.TagBatchItem, kmip14.TagResultReason).EnumValue()
	m, _ := resp.Path(kmip14.TagBatchItem, kmip14.TagResultMessage).TextValue()
	return kmip14.ResultReason(r), m
}
