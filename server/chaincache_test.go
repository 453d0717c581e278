package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmipd/kmipd/certs"
)

// fakeClock drives the server's tls.Config.Time.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// trust reloads e's server (SetTLSConfig) to accept clients of ca, with the
// given clock (nil: real time) and mutate applied to the config.
func (e *env) trust(ca *testCA, clock *fakeClock, mutate func(*tls.Config)) {
	e.t.Helper()
	certFile, keyFile := e.server.files(e.t, e.dir, "server")
	caFile := filepath.Join(e.dir, "trusted-"+ca.cert.Subject.CommonName+".crt")
	writeFile(e.t, caFile, ca.pem)
	cfg, err := TLSConfig(certFile, keyFile, caFile, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	if clock != nil {
		cfg.Time = clock.Now
	}
	if mutate != nil {
		mutate(cfg)
	}
	e.srv.SetTLSConfig(cfg)
}

func (e *env) chainCache() *certs.ChainCache {
	e.t.Helper()
	v := e.srv.tls.Load().verifier
	if v == nil {
		e.t.Skip("FIPS mode: Go verifies every handshake, there is no cache")
	}
	return v.cache
}

// serve reports whether a KMIP request over a new connection with cert, at
// TLS version v, is answered. In TLS 1.3 a refusal may only show on the
// first read.
func (e *env) serve(cert *issued, v uint16) error {
	cfg := &tls.Config{RootCAs: e.pool(), ServerName: "127.0.0.1", MinVersion: v, MaxVersion: v}
	presentAnyway(cfg, cert)
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = roundTrip(c, request(1))
	return err
}

// presentAnyway makes the client send cert (if not nil) even when it is not
// from a CA the server names: Go's client would otherwise send none.
func presentAnyway(cfg *tls.Config, cert *issued) {
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert.tls, nil
		}
	}
}

type cacheCounts struct{ hits, misses uint64 }

func counts(c *certs.ChainCache) cacheCounts {
	h, m := c.Counts()
	return cacheCounts{h, m}
}

var tlsVersions = []uint16{tls.VersionTLS12, tls.VersionTLS13}

// A trusted client is verified once: its second full handshake is a cache
// hit. Refused clients (another CA, wrong or missing EKU, no certificate)
// stay refused before and after, and a failure is never cached.
func TestChainCacheVerifiesOnce(t *testing.T) {
	for _, v := range tlsVersions {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			e := startServer(t, envOpt{})
			cache := e.chainCache()
			intruder := newCA(t, "other CA").issue(t, "intruder", ecKey(t), x509.ExtKeyUsageClientAuth)
			serverEKU := e.ca.issue(t, "srv", ecKey(t), x509.ExtKeyUsageServerAuth)
			noEKU := e.ca.issue(t, "bare", ecKey(t))
			refused := func(when string) {
				t.Helper()
				for _, c := range []struct {
					name string
					cert *issued
				}{{"other CA", intruder}, {"server-auth EKU", serverEKU}, {"no EKU", noEKU}, {"no certificate", nil}} {
					if err := e.serve(c.cert, v); err == nil {
						t.Fatalf("%s: client with %s was served", when, c.name)
					}
				}
			}

			refused("empty cache")
			// Only the no-EKU chain verifies in x509 (no EKU extension
			// means any use); kmipd's own EKU check refuses it.
			if n := cache.Len(); n != 1 {
				t.Fatalf("cache holds %d chains after refusals; want 1 (the no-EKU one)", n)
			}
			if err := e.serve(e.client, v); err != nil {
				t.Fatal(err)
			}
			before := counts(cache)
			if err := e.serve(e.client, v); err != nil {
				t.Fatal(err)
			}
			after := counts(cache)
			if after.misses != before.misses || after.hits <= before.hits {
				t.Fatalf("second handshake: %+v then %+v; want a hit and no new miss", before, after)
			}
			refused("trusted client cached")
			if n := cache.Len(); n != 2 {
				t.Fatalf("cache holds %d chains; want 2", n)
			}
			waitLog(t, e, "unknown authority")
			waitLog(t, e, "incompatible key usage")
			waitLog(t, e, "lacks the clientAuth extended key usage")
			waitLog(t, e, "didn't provide a certificate")
		})
	}
}

// A cached verdict holds only while every certificate of its chain is
// valid: once the leaf, or the CA, has expired the chain is verified afresh
// and refused, as Go would.
func TestChainCacheExpiry(t *testing.T) {
	for _, v := range tlsVersions {
		for _, expiring := range []string{"leaf", "CA"} {
			t.Run(tls.VersionName(v)+"/"+expiring, func(t *testing.T) {
				e := startServer(t, envOpt{})
				clock := newFakeClock()
				soon := time.Now().Add(30 * time.Minute)
				ca, leafUntil := e.ca, soon
				if expiring == "CA" {
					ca, leafUntil = newCAUntil(t, "short CA", soon), time.Now().Add(24*time.Hour)
				}
				client := ca.issueUntil(t, "client", ecKey(t), leafUntil, x509.ExtKeyUsageClientAuth)
				e.trust(ca, clock, nil)
				cache := e.chainCache()
				for range 2 {
					if err := e.serve(client, v); err != nil {
						t.Fatal(err)
					}
				}
				if c := counts(cache); c.hits == 0 || c.misses != 1 {
					t.Fatalf("counts %+v; want one miss, then hits", c)
				}
				clock.Advance(time.Hour)
				if err := e.serve(client, v); err == nil {
					t.Fatalf("client served after the %s expired", expiring)
				}
				if c := counts(cache); c.misses != 2 {
					t.Fatalf("counts %+v: the expired chain was not verified afresh", c)
				}
				waitLog(t, e, "certificate has expired")
			})
		}
	}
}

// A reload starts from an empty cache: a client cached under the old pool
// is verified against the new one (and refused when its CA is gone).
func TestChainCacheReload(t *testing.T) {
	for _, v := range tlsVersions {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			e := startServer(t, envOpt{})
			if err := e.serve(e.client, v); err != nil {
				t.Fatal(err)
			}
			old := e.chainCache()
			if old.Len() != 1 {
				t.Fatalf("cache holds %d chains", old.Len())
			}

			e.trust(e.ca, nil, nil) // same CA, new configuration
			if err := e.serve(e.client, v); err != nil {
				t.Fatal(err)
			}
			if c := counts(e.chainCache()); c.misses != 1 {
				t.Fatalf("after reload: %+v; want a fresh verification", c)
			}

			rotated := newCA(t, "rotated CA")
			e.trust(rotated, nil, nil)
			if err := e.serve(e.client, v); err == nil {
				t.Fatal("client of the removed CA served from a cached verdict")
			}
			if n := e.chainCache().Len(); n != 0 {
				t.Fatalf("new cache holds %d chains", n)
			}
			if err := e.serve(rotated.issue(t, "new", ecKey(t), x509.ExtKeyUsageClientAuth), v); err != nil {
				t.Fatalf("client of the new CA refused: %v", err)
			}
		})
	}
}

// Resuming a session needs, as with Go's own verification, a chain of its
// full handshake that is still valid: once the CA has expired the ticket is
// not honoured, although the leaf is still valid, and the full handshake
// that follows refuses the client.
func TestResumptionNeedsValidChain(t *testing.T) {
	for _, v := range tlsVersions {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			e := startServer(t, envOpt{})
			clock := newFakeClock()
			ca := newCAUntil(t, "short CA", time.Now().Add(30*time.Minute))
			client := ca.issue(t, "client", ecKey(t), x509.ExtKeyUsageClientAuth)
			e.trust(ca, clock, nil)
			cfg := resumingClient(e, client, v)
			for i, want := range []bool{false, true} {
				if resumed, err := resume(e, cfg); err != nil || resumed != want {
					t.Fatalf("connection %d: resumed %v, %v; want resumed %v", i, resumed, err, want)
				}
			}
			clock.Advance(time.Hour)
			if resumed, err := resume(e, cfg); err == nil {
				t.Fatalf("client of an expired CA served (resumed %v)", resumed)
			}
		})
	}
}

// Tickets are bound to the configuration that issued them even when the
// caller fixes the ticket key across reloads: the stamp's generation must
// match, so a reload still forces a full handshake against the new pool.
func TestResumptionBoundToGeneration(t *testing.T) {
	fixedKey := func(c *tls.Config) { c.SessionTicketKey = [32]byte{1, 2, 3} }
	for _, v := range tlsVersions {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			e := startServer(t, envOpt{})
			e.trust(e.ca, nil, fixedKey)
			e.chainCache()
			cfg := resumingClient(e, e.client, v)
			for i, want := range []bool{false, true} {
				if resumed, err := resume(e, cfg); err != nil || resumed != want {
					t.Fatalf("connection %d: resumed %v, %v; want resumed %v", i, resumed, err, want)
				}
			}
			e.trust(e.ca, nil, fixedKey)
			if resumed, err := resume(e, cfg); err != nil || resumed {
				t.Fatalf("after reload: resumed %v, %v; want a full handshake", resumed, err)
			}
			if resumed, err := resume(e, cfg); err != nil || !resumed {
				t.Fatalf("no fresh ticket to replay: resumed %v, %v", resumed, err)
			}
			e.trust(newCA(t, "rotated CA"), nil, fixedKey)
			if resumed, err := resume(e, cfg); err == nil {
				t.Fatalf("client of the removed CA served (resumed %v)", resumed)
			}
		})
	}
}

func resumingClient(e *env, cert *issued, v uint16) *tls.Config {
	cfg := &tls.Config{RootCAs: e.pool(), ServerName: "127.0.0.1", MinVersion: v, MaxVersion: v,
		ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	presentAnyway(cfg, cert)
	return cfg
}

// resume makes one request over a new connection (which takes the ticket
// of the previous one, in TLS 1.3 sent with the first response).
func resume(e *env, cfg *tls.Config) (resumed bool, err error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.addr, cfg)
	if err != nil {
		return false, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = roundTrip(c, request(1))
	return c.ConnectionState().DidResume, err
}

// The error of a refused chain is Go's own type, so logs and errors.As
// callers see what they did before the cache.
func TestVerifyErrorType(t *testing.T) {
	v := newClientVerifier(&tls.Config{ClientCAs: x509.NewCertPool()})
	if v == nil {
		t.Skip("FIPS mode")
	}
	cert := newCA(t, "ca").issue(t, "c", ecKey(t), x509.ExtKeyUsageClientAuth)
	_, err := v.verify(cert.tls.Certificate)
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	if !errors.As(err, &cve) || !errors.As(err, &uae) || len(cve.UnverifiedCertificates) != 1 {
		t.Fatalf("error %T %v", err, err)
	}
}
