package bench

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/kmipd/kmipd/certs"
)

// handshakeServer accepts TLS connections with cert and completes each
// handshake (or fails it) before closing.
func handshakeServer(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	return l.Addr().String()
}

func handshake(addr string, cfg *tls.Config) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	return c.Close()
}

func issueServer(t *testing.T, ca *certs.CA, hosts []string, opts ...certs.LeafOption) tls.Certificate {
	t.Helper()
	s, err := ca.IssueServer(hosts, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s.TLS()
}

func newCA(t *testing.T) *certs.CA {
	t.Helper()
	ca, err := certs.NewCA(certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestVerifyOnce(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	good := handshakeServer(t, issueServer(t, ca, []string{"127.0.0.1"}))
	foreign := handshakeServer(t, issueServer(t, other, []string{"127.0.0.1"}))
	expired := handshakeServer(t, issueServer(t, ca, []string{"127.0.0.1"}, certs.Expired()))
	misnamed := handshakeServer(t, issueServer(t, ca, []string{"kmip.example.com"}))

	var mu sync.Mutex
	clock := time.Now()
	cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12,
		Time: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }}
	v := verifyOnce(cfg)
	if v == nil || !cfg.InsecureSkipVerify || cfg.VerifyConnection == nil {
		t.Fatal("verifier not installed")
	}
	cfg12 := cfg.Clone() // shares the verifier, over TLS 1.2 (ServerKeyExchange)
	cfg12.MaxVersion = tls.VersionTLS12

	var certErr *tls.CertificateVerificationError
	reject := func(what, addr string, c *tls.Config) {
		t.Helper()
		n := v.verified.Load()
		if err := handshake(addr, c); !errors.As(err, &certErr) {
			t.Errorf("%s: %v, want a certificate verification error", what, err)
		}
		if v.verified.Load() != n+1 {
			t.Errorf("%s: %d verifications, want 1 (failures are not cached)", what, v.verified.Load()-n)
		}
	}
	reject("another CA's server, first", foreign, cfg)
	reject("another CA's server, again", foreign, cfg)
	reject("expired certificate", expired, cfg)
	reject("name mismatch", misnamed, cfg)

	for i, c := range []*tls.Config{cfg, cfg, cfg12, cfg12} {
		if err := handshake(good, c); err != nil {
			t.Fatalf("trusted server, handshake %d: %v", i, err)
		}
	}
	if n := v.verified.Load(); n != 5 {
		t.Errorf("%d verifications after 4 trusted handshakes, want 5 (4 failures, 1 real verification)", n)
	}

	reject("another CA's server, after a trusted one was cached", foreign, cfg)

	// The cached chain is only trusted while it is valid.
	mu.Lock()
	clock = time.Now().Add(3 * certs.DefaultLeafValidity)
	mu.Unlock()
	reject("trusted server once expired", good, cfg)
}

// The cache is keyed by name too: a chain verified for one name says
// nothing about another.
func TestVerifyOnceCacheKey(t *testing.T) {
	ca := newCA(t)
	chain := []*x509.Certificate{issueServer(t, ca, []string{"127.0.0.1"}).Leaf}
	v := verifyOnce(&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
	for _, name := range []string{"127.0.0.1", "127.0.0.1", "localhost"} {
		if err := v.verify(chain, name); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if err := v.verify(chain, "kmip.example.com"); err == nil {
		t.Fatal("a chain cached for 127.0.0.1 passed for kmip.example.com")
	}
	if n := v.verified.Load(); n != 3 {
		t.Fatalf("%d verifications, want 3", n)
	}
	if err := v.verify(nil, "127.0.0.1"); err == nil {
		t.Fatal("no certificate passed")
	}
}

func TestVerifyOnceLeavesInsecureConfigs(t *testing.T) {
	cfg := &tls.Config{InsecureSkipVerify: true, ServerName: "127.0.0.1"}
	if verifyOnce(cfg) != nil || cfg.VerifyConnection != nil {
		t.Fatal("a config that already skips verification was changed")
	}
	cfg = &tls.Config{}
	if verifyOnce(cfg) != nil || cfg.InsecureSkipVerify {
		t.Fatal("a config without ServerName must keep crypto/tls's own checks")
	}
}

func TestVerifiedChainsAreBounded(t *testing.T) {
	v := verifyOnce(&tls.Config{ServerName: "127.0.0.1"})
	for i := range maxVerifiedChains + 10 {
		v.cache.Put(certs.ChainKeyOf([][]byte{{byte(i), byte(i >> 8)}}, "127.0.0.1"), nil)
	}
	if n := v.cache.Len(); n != maxVerifiedChains {
		t.Fatalf("%d entries, want %d", n, maxVerifiedChains)
	}
}
