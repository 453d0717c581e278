package server

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"testing"
)

// BenchmarkMutualTLSHandshake is one full mutual-TLS handshake over
// loopback, both sides in this process (client and server CPU both count),
// with Go verifying the client chain every time ("go-verify") or kmipd's
// cache answering after the first ("cached"). No session resumption: the
// client keeps no tickets, like Barbican's per-request connections.
func BenchmarkMutualTLSHandshake(b *testing.B) {
	ca := newCA(b, "bench CA")
	srv := ca.issue(b, "kmipd", ecKey(b), x509.ExtKeyUsageServerAuth)
	client := ca.issue(b, "client", ecKey(b), x509.ExtKeyUsageClientAuth)
	base := &tls.Config{Certificates: []tls.Certificate{srv.tls}, ClientCAs: x509.NewCertPool()}
	base.ClientCAs.AddCert(ca.cert)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)

	for _, v := range tlsVersions {
		for _, mode := range []struct {
			name string
			cfg  *tls.Config
		}{
			{"go-verify", harden(base, nil)},
			{"cached", newServerTLS(base).all},
		} {
			b.Run(tls.VersionName(v)+"/"+mode.name, func(b *testing.B) {
				ccfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: v, MaxVersion: v,
					Certificates: []tls.Certificate{client.tls}}
				benchHandshakes(b, mode.cfg, ccfg)
			})
		}
	}
}

func benchHandshakes(b *testing.B, scfg, ccfg *tls.Config) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	errs := make(chan error, 1)
	go func() {
		for {
			raw, err := l.Accept()
			if err != nil {
				return
			}
			c := tls.Server(raw, scfg)
			err = c.Handshake()
			if err == nil {
				// One byte for the client to wait for (in TLS 1.3 its
				// handshake returns before the server's is done), then
				// wait for its close so neither side resets the other.
				if _, err = c.Write([]byte{0}); err == nil {
					io.Copy(io.Discard, c)
				}
			}
			c.Close()
			errs <- err
		}
	}()
	b.ResetTimer()
	for range b.N {
		c, err := tls.Dial("tcp", l.Addr().String(), ccfg)
		if err != nil {
			b.Fatal(err)
		}
		var one [1]byte
		if _, err := io.ReadFull(c, one[:]); err != nil {
			b.Fatal(err)
		}
		c.Close()
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClientChainVerify is the step the cache replaces: Go's x509
// verification of a client chain (the certificates already parsed, as Go
// has them) against a cache hit on the raw certificates.
func BenchmarkClientChainVerify(b *testing.B) {
	ca := newCA(b, "bench CA")
	client := ca.issue(b, "client", ecKey(b), x509.ExtKeyUsageClientAuth)
	cfg := &tls.Config{ClientCAs: x509.NewCertPool()}
	cfg.ClientCAs.AddCert(ca.cert)
	b.Run("x509", func(b *testing.B) {
		for range b.N {
			opts := x509.VerifyOptions{Roots: cfg.ClientCAs, Intermediates: x509.NewCertPool(),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
			if _, err := client.leaf.Verify(opts); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cache-hit", func(b *testing.B) {
		v := newClientVerifier(cfg)
		if v == nil {
			b.Skip("FIPS mode")
		}
		for range b.N {
			if _, err := v.verify(client.tls.Certificate); err != nil {
				b.Fatal(err)
			}
		}
	})
}
