package server

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTLSClientAuthentication(t *testing.T) {
	for _, rsaServer := range []bool{false, true} {
		name := "ecdsa server"
		if rsaServer {
			name = "rsa server"
		}
		t.Run(name, func(t *testing.T) {
			e := startServer(t, envOpt{rsaServer: rsaServer})
			otherCA := newCA(t, "other CA")
			cases := []struct {
				name       string
				cert       *issued
				minV, maxV uint16
				ok         bool
			}{
				{"tls1.2", e.client, tls.VersionTLS12, tls.VersionTLS12, true},
				{"tls1.3", e.client, tls.VersionTLS13, tls.VersionTLS13, true},
				{"rsa client", e.ca.issue(t, "rsa-client", rsaKey(t), x509.ExtKeyUsageClientAuth), 0, 0, true},
				{"tls1.1", e.client, tls.VersionTLS10, tls.VersionTLS11, false},
				{"no client cert", nil, 0, 0, false},
				{"other CA", otherCA.issue(t, "intruder", ecKey(t), x509.ExtKeyUsageClientAuth), 0, 0, false},
				{"server-auth EKU only", e.ca.issue(t, "srv", ecKey(t), x509.ExtKeyUsageServerAuth), 0, 0, false},
				{"no EKU", e.ca.issue(t, "bare", ecKey(t)), 0, 0, false},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					c, err := e.dial(tc.cert, tc.minV, tc.maxV)
					if err == nil {
						// In TLS 1.3 the client finishes before the server
						// has judged its certificate: the refusal shows on
						// the first read.
						_, err = roundTrip(c, request(1))
						c.Close()
					}
					if tc.ok && err != nil {
						t.Fatalf("want success: %v", err)
					}
					if !tc.ok && err == nil {
						t.Fatal("want failure, request was served")
					}
					if tc.name == "no EKU" {
						// Refused by kmipd's own check, not Go's verifier.
						waitLog(t, e, "lacks the clientAuth extended key usage")
					}
				})
			}
		})
	}
}

func TestIdentityIsSPKIHash(t *testing.T) {
	e := startServer(t, envOpt{})
	key := ecKey(t)
	a := e.ca.issue(t, "first", key, x509.ExtKeyUsageClientAuth)
	b := e.ca.issue(t, "renewed", key, x509.ExtKeyUsageClientAuth)
	other := e.ca.issue(t, "first", ecKey(t), x509.ExtKeyUsageClientAuth)

	sum := sha256.Sum256(a.leaf.RawSubjectPublicKeyInfo)
	want := hex.EncodeToString(sum[:])
	if got := Identity(a.leaf); got != want || got != strings.ToLower(got) || len(got) != 64 {
		t.Fatalf("Identity = %q, want %q", got, want)
	}
	seen := func(cert *issued) (id, cn string) {
		resp, err := roundTrip(e.mustDial(cert), request(1))
		if err != nil {
			t.Fatal(err)
		}
		_, msg := resultReason(resp)
		id, cn, _ = strings.Cut(msg, "/")
		return id, cn
	}
	idA, cnA := seen(a)
	idB, cnB := seen(b)
	idO, _ := seen(other)
	if idA != want || idB != want {
		t.Fatalf("caller identities %q, %q; want %q for both", idA, idB, want)
	}
	if cnA != "first" || cnB != "renewed" {
		t.Fatalf("common names %q, %q", cnA, cnB)
	}
	if idO == want {
		t.Fatal("a different key got the same identity")
	}
}

func TestSetTLSConfigReloadsClientCA(t *testing.T) {
	e := startServer(t, envOpt{})
	newCA := newCA(t, "rotated CA")
	newClient := newCA.issue(t, "client-new", ecKey(t), x509.ExtKeyUsageClientAuth)
	if _, err := roundTrip(e.mustDial(e.client), request(1)); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(e.dir, "rotated.crt")
	writeFile(t, caFile, newCA.pem)
	certFile, keyFile := e.server.files(t, e.dir, "server")
	cfg, err := TLSConfig(certFile, keyFile, caFile, tls.VersionTLS12)
	if err != nil {
		t.Fatal(err)
	}
	e.srv.SetTLSConfig(cfg)
	if c, err := e.dial(e.client, 0, 0); err == nil {
		if _, err := roundTrip(c, request(1)); err == nil {
			t.Fatal("client of the old CA still accepted after reload")
		}
		c.Close()
	}
	if _, err := roundTrip(e.mustDial(newClient), request(2)); err != nil {
		t.Fatalf("client of the new CA refused: %v", err)
	}
}

func TestTLSConfig(t *testing.T) {
	ca := newCA(t, "ca")
	srv := ca.issue(t, "kmipd", ecKey(t), x509.ExtKeyUsageServerAuth)
	dir := t.TempDir()
	certFile, keyFile := srv.files(t, dir, "server")
	caFile := filepath.Join(dir, "ca.crt")
	writeFile(t, caFile, ca.pem)

	if _, err := TLSConfig(certFile, keyFile, caFile, tls.VersionTLS11); err == nil {
		t.Fatal("TLS 1.1 minimum accepted")
	}
	c, err := TLSConfig(certFile, keyFile, caFile, 0)
	if err != nil {
		t.Fatal(err)
	}
	if c.MinVersion != tls.VersionTLS12 || c.ClientAuth != tls.RequireAndVerifyClientCert || c.ClientCAs == nil {
		t.Fatalf("config: min %x auth %v", c.MinVersion, c.ClientAuth)
	}
	for _, id := range c.CipherSuites {
		for _, bad := range tls.InsecureCipherSuites() {
			if id == bad.ID && !strings.Contains(bad.Name, "ECDHE") {
				t.Errorf("static-key or broken suite %s offered", bad.Name)
			}
		}
	}
	if c, err = TLSConfig(certFile, keyFile, caFile, tls.VersionTLS13); err != nil || c.MinVersion != tls.VersionTLS13 {
		t.Fatalf("TLS 1.3 minimum: %v", err)
	}
	notPEM := filepath.Join(dir, "empty.crt")
	writeFile(t, notPEM, []byte("nothing here"))
	if _, err := TLSConfig(certFile, keyFile, notPEM, 0); err == nil {
		t.Fatal("CA file without certificates accepted")
	}
	if _, err := TLSConfig(certFile, caFile, caFile, 0); err == nil {
		t.Fatal("bad key file accepted")
	}

	// harden overrides a lax config given to SetTLSConfig, in both variants,
	// and the config's own hooks cannot loosen it: they run after kmipd's
	// checks and see the verified chains, as they would after Go's.
	var hookChains, connChains int
	lax := &tls.Config{MinVersion: tls.VersionTLS10, ClientAuth: tls.NoClientCert, ClientCAs: c.ClientCAs,
		VerifyPeerCertificate: func(_ [][]byte, chains [][]*x509.Certificate) error {
			hookChains = len(chains)
			return nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			connChains = len(cs.VerifiedChains)
			return nil
		},
	}
	st := newServerTLS(lax)
	for _, h := range []*tls.Config{st.all, st.tls12} {
		assertHardened(t, h, ca)
	}
	if st.verifier != nil && (hookChains == 0 || connChains == 0) {
		t.Fatalf("the config's hooks saw %d and %d verified chains", hookChains, connChains)
	}
}

// assertHardened checks the invariant identity relies on: the server
// requires a client certificate and accepts one only if it chains to ca
// with the clientAuth usage (verified either by Go, under
// RequireAndVerifyClientCert, or by kmipd's verifier in
// VerifyPeerCertificate under RequireAnyClientCert, which still makes Go
// refuse a client without a certificate) and names the clientAuth EKU
// explicitly (VerifyConnection).
func assertHardened(t *testing.T, h *tls.Config, ca *testCA) {
	t.Helper()
	if h.MinVersion < tls.VersionTLS12 || h.VerifyConnection == nil {
		t.Fatalf("lax config: min %x, VerifyConnection set %v", h.MinVersion, h.VerifyConnection != nil)
	}
	good := ca.issue(t, "good", ecKey(t), x509.ExtKeyUsageClientAuth)
	switch h.ClientAuth {
	case tls.RequireAndVerifyClientCert:
	case tls.RequireAnyClientCert:
		if h.VerifyPeerCertificate == nil {
			t.Fatal("RequireAnyClientCert without kmipd's verification")
		}
		for _, bad := range []struct {
			name string
			raw  [][]byte
		}{
			{"no certificate", nil},
			{"another CA", newCA(t, "other CA").issue(t, "intruder", ecKey(t), x509.ExtKeyUsageClientAuth).tls.Certificate},
			{"server-auth EKU", ca.issue(t, "srv", ecKey(t), x509.ExtKeyUsageServerAuth).tls.Certificate},
			{"expired", ca.issueUntil(t, "old", ecKey(t), time.Now().Add(-time.Minute), x509.ExtKeyUsageClientAuth).tls.Certificate},
		} {
			if err := h.VerifyPeerCertificate(bad.raw, nil); err == nil {
				t.Errorf("VerifyPeerCertificate accepted %s", bad.name)
			}
		}
		if err := h.VerifyPeerCertificate(good.tls.Certificate, nil); err != nil {
			t.Errorf("VerifyPeerCertificate refused a client of the CA: %v", err)
		}
	default:
		t.Fatalf("ClientAuth %v does not require a verified client certificate", h.ClientAuth)
	}
	if h.VerifyConnection(tls.ConnectionState{}) == nil {
		t.Error("VerifyConnection accepted a connection without a certificate")
	}
	bare := ca.issue(t, "bare", ecKey(t))
	if h.VerifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{bare.leaf}}) == nil {
		t.Error("VerifyConnection accepted a certificate without the clientAuth EKU")
	}
	if err := h.VerifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{good.leaf}}); err != nil {
		t.Errorf("VerifyConnection refused a client of the CA: %v", err)
	}
}

func waitLog(t *testing.T, e *env, s string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if strings.Contains(e.logs.String(), s) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("log lacks %q", s)
}

// A resumed session still yields the identity of the certificate verified in
// its full handshake, in TLS 1.2 and 1.3; a ticket from before SetTLSConfig
// is not honoured afterwards, so a reload that drops a CA cannot be skipped by
// resuming.
func TestSessionResumptionKeepsIdentity(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			e := startServer(t, envOpt{})
			other := e.ca.issue(t, "client-b", ecKey(t), x509.ExtKeyUsageClientAuth)
			wantID := func(c *issued) string {
				sum := sha256.Sum256(c.leaf.RawSubjectPublicKeyInfo)
				return hex.EncodeToString(sum[:]) + "/" + c.leaf.Subject.CommonName
			}
			newClient := func(cert *issued) *tls.Config {
				return &tls.Config{RootCAs: e.pool(), ServerName: "127.0.0.1", MinVersion: v, MaxVersion: v,
					Certificates: []tls.Certificate{cert.tls}, ClientSessionCache: tls.NewLRUClientSessionCache(4)}
			}
			// who connects with cfg and returns the caller the server saw
			// and whether the session was resumed.
			who := func(cfg *tls.Config) (string, bool, error) {
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.addr, cfg)
				if err != nil {
					return "", false, err
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				resp, err := roundTrip(c, request(1))
				if err != nil {
					return "", false, err
				}
				_, msg := resultReason(resp)
				return msg, c.ConnectionState().DidResume, nil
			}
			a, b := newClient(e.client), newClient(other)
			for i, want := range []bool{false, true, true} {
				for _, c := range []struct {
					cfg  *tls.Config
					cert *issued
				}{{a, e.client}, {b, other}} {
					got, resumed, err := who(c.cfg)
					if err != nil {
						t.Fatalf("connection %d: %v", i, err)
					}
					if resumed != want || got != wantID(c.cert) {
						t.Fatalf("connection %d: caller %q resumed %v; want %q resumed %v", i, got, resumed, wantID(c.cert), want)
					}
				}
			}

			// Same CA reloaded: tickets from before are not resumed.
			certFile, keyFile := e.server.files(t, e.dir, "server")
			caFile := filepath.Join(e.dir, "ca.crt")
			cfg, err := TLSConfig(certFile, keyFile, caFile, 0)
			if err != nil {
				t.Fatal(err)
			}
			e.srv.SetTLSConfig(cfg)
			if got, resumed, err := who(a); err != nil || resumed || got != wantID(e.client) {
				t.Fatalf("after reload: caller %q resumed %v err %v; want a full handshake as %q", got, resumed, err, wantID(e.client))
			}

			// CA rotated away: a client holding a fresh ticket is refused.
			if _, resumed, err := who(b); err != nil || resumed { // full handshake, new ticket
				t.Fatalf("after reload: resumed %v, %v", resumed, err)
			}
			if _, resumed, err := who(b); err != nil || !resumed {
				t.Fatalf("no ticket to replay: resumed %v, %v", resumed, err)
			}
			rotated := filepath.Join(e.dir, "rotated.crt")
			writeFile(t, rotated, newCA(t, "rotated CA").pem)
			if cfg, err = TLSConfig(certFile, keyFile, rotated, 0); err != nil {
				t.Fatal(err)
			}
			e.srv.SetTLSConfig(cfg)
			if got, resumed, err := who(b); err == nil {
				t.Fatalf("client of the removed CA served as %q (resumed %v)", got, resumed)
			}
		})
	}
}

func TestCurvePreferencesClassicalByDefault(t *testing.T) {
	e := startServer(t, envOpt{})
	c := e.mustDial(e.client) // Go clients offer X25519MLKEM768 first
	if _, err := roundTrip(c, request(1)); err != nil {
		t.Fatal(err)
	}
	if got := c.ConnectionState().CurveID; got != tls.X25519 {
		t.Fatalf("key exchange %v, want X25519", got)
	}
	h := newServerTLS(&tls.Config{CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519}}).all
	if h.CurvePreferences[0] != tls.X25519MLKEM768 {
		t.Fatal("harden overrode an explicit opt-in to hybrid post-quantum key exchange")
	}
}

// TLS 1.2-only clients (PyKMIP, Barbican) get P-256, the cheaper exchange
// in Go; TLS 1.3 clients the X25519 share they sent; an explicit list is
// used as given.
func TestCurveChoicePerVersion(t *testing.T) {
	e := startServer(t, envOpt{})
	curve := func(cfg *tls.Config) tls.CurveID {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := roundTrip(c, request(1)); err != nil {
			t.Fatal(err)
		}
		return c.ConnectionState().CurveID
	}
	client := func(maxV uint16, curves ...tls.CurveID) *tls.Config {
		return &tls.Config{RootCAs: e.pool(), ServerName: "127.0.0.1", MaxVersion: maxV,
			Certificates: []tls.Certificate{e.client.tls}, CurvePreferences: curves}
	}
	if got := curve(client(tls.VersionTLS12)); got != tls.CurveP256 {
		t.Errorf("TLS 1.2 client: %v, want P-256", got)
	}
	if got := curve(client(tls.VersionTLS12, tls.X25519)); got != tls.X25519 {
		t.Errorf("TLS 1.2 client offering only X25519: %v", got)
	}
	if got := curve(client(tls.VersionTLS13)); got != tls.X25519 {
		t.Errorf("TLS 1.3 client: %v, want X25519", got)
	}

	certFile, keyFile := e.server.files(t, e.dir, "server")
	cfg, err := TLSConfig(certFile, keyFile, filepath.Join(e.dir, "ca.crt"), 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg.CurvePreferences = []tls.CurveID{tls.X25519MLKEM768, tls.X25519}
	e.srv.SetTLSConfig(cfg)
	if got := curve(client(tls.VersionTLS12)); got != tls.X25519 {
		t.Errorf("explicit list, TLS 1.2 client: %v, want X25519", got)
	}
	if got := curve(client(tls.VersionTLS13)); got != tls.X25519MLKEM768 {
		t.Errorf("explicit list, TLS 1.3 client: %v, want X25519MLKEM768", got)
	}
}
