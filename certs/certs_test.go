package certs

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func verify(t *testing.T, ca *x509.Certificate, leaf *x509.Certificate, usage x509.ExtKeyUsage, dns string) error {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}, DNSName: dns})
	return err
}

func TestNewCAIssue(t *testing.T) {
	for _, alg := range []string{"", ECDSAP256, RSA2048} {
		t.Run("alg="+alg, func(t *testing.T) {
			ca, err := NewCA(Options{Algorithm: alg})
			if err != nil {
				t.Fatal(err)
			}
			if !ca.Cert.IsCA || !ca.Cert.MaxPathLenZero {
				t.Fatal("CA certificate lacks CA constraints")
			}
			srv, err := ca.IssueServer([]string{"kms.example.com", "10.0.0.1"})
			if err != nil {
				t.Fatal(err)
			}
			cli, err := ca.IssueClient("barbican")
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range []string{"localhost", "kms.example.com", "10.0.0.1"} {
				if err := verify(t, ca.Cert, srv.Cert, x509.ExtKeyUsageServerAuth, h); err != nil {
					t.Errorf("server cert for %s: %v", h, err)
				}
			}
			if err := verify(t, ca.Cert, cli.Cert, x509.ExtKeyUsageClientAuth, ""); err != nil {
				t.Errorf("client cert: %v", err)
			}
			// Usages must not be interchangeable.
			if verify(t, ca.Cert, srv.Cert, x509.ExtKeyUsageClientAuth, "") == nil {
				t.Error("server cert verified for client auth")
			}
			if verify(t, ca.Cert, cli.Cert, x509.ExtKeyUsageServerAuth, "") == nil {
				t.Error("client cert verified for server auth")
			}
			if cli.Cert.Subject.CommonName != "barbican" {
				t.Errorf("CN = %q", cli.Cert.Subject.CommonName)
			}
			_, isRSA := cli.Key.(*rsa.PrivateKey)
			_, isEC := cli.Key.(*ecdsa.PrivateKey)
			if (alg == RSA2048) != isRSA || (alg != RSA2048) != isEC {
				t.Errorf("key type %T for %q", cli.Key, alg)
			}
			if _, err := tls.X509KeyPair(cli.CertPEM, cli.KeyPEM); err != nil {
				t.Errorf("PEM pair: %v", err)
			}
			if !strings.Contains(string(cli.KeyPEM), "BEGIN PRIVATE KEY") {
				t.Error("key is not PKCS#8 PEM")
			}
		})
	}
}

func TestHostileLeaves(t *testing.T) {
	ca, err := NewCA(Options{})
	if err != nil {
		t.Fatal(err)
	}
	exp, err := ca.IssueClient("old", Expired())
	if err != nil {
		t.Fatal(err)
	}
	var inv x509.CertificateInvalidError
	if err := verify(t, ca.Cert, exp.Cert, x509.ExtKeyUsageClientAuth, ""); !errors.As(err, &inv) || inv.Reason != x509.Expired {
		t.Errorf("expired cert: %v", err)
	}
	future, err := ca.IssueClient("future", NotYetValid())
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(t, ca.Cert, future.Cert, x509.ExtKeyUsageClientAuth, ""); err == nil {
		t.Error("not-yet-valid cert verified")
	}
	wrong, err := ca.IssueClient("wrong", ExtKeyUsage(x509.ExtKeyUsageServerAuth))
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(t, ca.Cert, wrong.Cert, x509.ExtKeyUsageClientAuth, ""); err == nil {
		t.Error("client cert with ServerAuth only verified for client auth")
	}
	short, err := ca.IssueClient("short", Validity(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(short.Cert.NotAfter); d > time.Hour+time.Minute || d < 50*time.Minute {
		t.Errorf("validity: expires in %v", d)
	}
	other, err := NewCA(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if verify(t, other.Cert, exp.Cert, x509.ExtKeyUsageClientAuth, "") == nil {
		t.Error("cert verified against a foreign CA")
	}
}

func TestBadOptions(t *testing.T) {
	if _, err := NewCA(Options{Algorithm: "dsa"}); err == nil {
		t.Error("unknown algorithm accepted")
	}
	if err := Init(t.TempDir(), Options{LeafValidity: -time.Hour}); err == nil {
		t.Error("negative validity accepted")
	}
	ca, err := NewCA(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.IssueClient(""); err == nil {
		t.Error("empty CN accepted")
	}
}

// TestTLSHandshake runs a real mutual-TLS handshake with the files Init wrote,
// and shows a certificate from another CA is refused.
func TestTLSHandshake(t *testing.T) {
	for _, alg := range []string{ECDSAP256, RSA2048} {
		t.Run(alg, func(t *testing.T) {
			dir := t.TempDir()
			if err := Init(dir, Options{Algorithm: alg}); err != nil {
				t.Fatal(err)
			}
			load := func(name string) tls.Certificate {
				c, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			caPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(caPEM) {
				t.Fatal("ca.crt has no certificate")
			}
			srvCfg := &tls.Config{
				Certificates: []tls.Certificate{load("server")},
				ClientCAs:    pool,
				ClientAuth:   tls.RequireAndVerifyClientCert,
				MinVersion:   tls.VersionTLS12,
			}
			good := load("client")
			if cn, err := handshake(t, srvCfg, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{good}, ServerName: "localhost"}); err != nil || cn != DefaultClientName {
				t.Fatalf("handshake: cn=%q err=%v", cn, err)
			}
			for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
				cfg := &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{good}, ServerName: "127.0.0.1", MinVersion: v, MaxVersion: v}
				if _, err := handshake(t, srvCfg, cfg); err != nil {
					t.Errorf("TLS %x: %v", v, err)
				}
			}
			foreign, err := NewCA(Options{})
			if err != nil {
				t.Fatal(err)
			}
			bad, err := foreign.IssueClient("mallory")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := handshake(t, srvCfg, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{bad.TLS()}, ServerName: "localhost"}); err == nil {
				t.Error("foreign client certificate accepted")
			}
		})
	}
}

// handshake connects over 127.0.0.1:0 and returns the client CN the server saw.
func handshake(t *testing.T, srvCfg, cliCfg *tls.Config) (string, error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		cn  string
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		_, _ = io.WriteString(tc, "ok")
		done <- result{cn: tc.ConnectionState().PeerCertificates[0].Subject.CommonName}
	}()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), cliCfg)
	if err == nil {
		// In TLS 1.3 the client's handshake finishes before the server has
		// judged the client certificate; reading surfaces a rejection.
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = io.ReadFull(c, make([]byte, 2))
		c.Close()
	}
	r := <-done
	if err == nil {
		err = r.err
	}
	return r.cn, err
}

func TestOpenSSLVerify(t *testing.T) {
	const openssl = "/usr/bin/openssl"
	if _, err := os.Stat(openssl); err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	if err := Init(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, CACertFile)
	for name, purpose := range map[string]string{"server": "sslserver", "client": "sslclient"} {
		out, err := exec.Command(openssl, "verify", "-CAfile", ca, "-purpose", purpose, filepath.Join(dir, name+".crt")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), ": OK") {
			t.Errorf("openssl verify %s: %v\n%s", name, err, out)
		}
	}
	// The client certificate must not pass as a server certificate.
	if out, err := exec.Command(openssl, "verify", "-CAfile", ca, "-purpose", "sslserver", filepath.Join(dir, "client.crt")).CombinedOutput(); err == nil && strings.Contains(string(out), ": OK") {
		t.Errorf("client cert verified as sslserver:\n%s", out)
	}
}
