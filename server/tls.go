package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
)

// CipherSuites returns the TLS 1.2 suites kmipd offers (TLS 1.3 suites are not
// configurable in Go and are all AEAD). All are ECDHE, for forward secrecy,
// with both an ECDSA and an RSA variant so either kind of server key works:
//   - AES-GCM and ChaCha20-Poly1305 cover OpenSSL's default list, which is
//     what PyKMIP 0.10's client (ssl.wrap_socket, no cipher string) and
//     Barbican's kmip_plugin send.
//   - ECDHE_*_AES_128_CBC_SHA256 are the only suites an RSA-keyed server
//     shares with PyKMIP's "TLS1.2" authentication-suite list (its other
//     RSA-certificate entries are static-RSA or CBC-SHA384, which Go lacks).
//
// Static RSA key exchange, SHA-1 MACs and 3DES are left out.
func CipherSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
	}
}

// CurvePreferences returns the key exchanges kmipd offers when the
// tls.Config leaves CurvePreferences unset: X25519 and the NIST curves.
//
// Go 1.26's default would add the hybrid post-quantum exchanges
// (X25519MLKEM768 and friends) and pick them first whenever a client offers
// them; kmipd leaves them out by default because, for reconnecting clients,
// ML-KEM was about 15% of the server's CPU in TLS 1.3 handshakes, and the
// KMIP clients kmipd serves (PyKMIP, Barbican, storage arrays) do not offer
// them anyway. This trades harvest-now-decrypt-later protection for handshake
// cost, deliberately: to opt in, set CurvePreferences on the tls.Config given
// to New/SetTLSConfig (for example tls.X25519MLKEM768 first); an explicit
// list is used as given, for every TLS version.
//
// With the default, a client that offers only TLS 1.2 gets P-256 (see
// tls12Curves), and TLS 1.3 clients get whichever of these they sent a key
// share for (Go's server avoids a HelloRetryRequest round trip).
func CurvePreferences() []tls.CurveID {
	return []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521}
}

// tls12Curves is the default set for TLS 1.2-only clients. In TLS 1.2, Go's
// server takes the first curve in the client's list that it supports, and
// clients (OpenSSL under PyKMIP and Barbican, Go) list X25519 first. Go's
// P-256 is assembly and on kmipd's 2-core amd64 benchmark machine an
// ephemeral key plus shared secret cost 62 µs against 85 µs for X25519, on
// each side: a full mutual-TLS 1.2 handshake measured 15% cheaper overall.
// Both give ~128-bit security, and Go's P-256 is constant time.
func tls12Curves() []tls.CurveID {
	return []tls.CurveID{tls.CurveP256, tls.CurveP384, tls.CurveP521}
}

// TLSConfig builds the server's mutual-TLS configuration: the server
// certificate chain and key, the CA pool client certificates must chain to,
// and the minimum version (0 means TLS 1.2; below 1.2 is refused). Call it
// again and pass the result to SetTLSConfig to reload certificates.
func TLSConfig(certFile, keyFile, clientCAFile string, minVersion uint16) (*tls.Config, error) {
	if minVersion == 0 {
		minVersion = tls.VersionTLS12
	}
	if minVersion < tls.VersionTLS12 || minVersion > tls.VersionTLS13 {
		return nil, fmt.Errorf("server: TLS minimum version %#04x not supported; use 1.2 or 1.3", minVersion)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("server: load certificate: %w", err)
	}
	pemCAs, err := os.ReadFile(clientCAFile)
	if err != nil {
		return nil, fmt.Errorf("server: read client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCAs) {
		return nil, fmt.Errorf("server: no PEM certificates in client CA file %s", clientCAFile)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   minVersion,
		MaxVersion:   tls.VersionTLS13,
		CipherSuites: CipherSuites(),
		// CurvePreferences stays nil so that harden applies the defaults,
		// per TLS version (see CurvePreferences). Session tickets stay on
		// (Go's default): a client that resumes skips the certificate
		// exchange and the signatures.
	}, nil
}

// serverTLS is what the listener hands out per ClientHello: the hardened
// configuration and, when the curves are kmipd's defaults, its variant for
// clients that offer only TLS 1.2.
type serverTLS struct {
	all      *tls.Config
	tls12    *tls.Config     // nil: all serves every client
	verifier *clientVerifier // shared by both; nil in FIPS mode
}

// newServerTLS hardens c. Each call gets a new clientVerifier, hence an
// empty chain cache and a new ticket generation: a reload never reuses a
// verdict reached under the previous CA pool. The TLS 1.2 variant shares
// the verifier (same pool, same clock, same reload) but, through harden,
// seals its tickets under its own keys.
func newServerTLS(c *tls.Config) *serverTLS {
	v := newClientVerifier(c)
	t := &serverTLS{all: harden(c, v), verifier: v}
	if c.CurvePreferences == nil {
		c12 := c.Clone()
		c12.CurvePreferences = tls12Curves()
		t.tls12 = harden(c12, v)
	}
	return t
}

func (t *serverTLS) forHello(chi *tls.ClientHelloInfo) *tls.Config {
	if t.tls12 != nil && !slices.Contains(chi.SupportedVersions, tls.VersionTLS13) &&
		slices.Contains(chi.SupportedCurves, tls.CurveP256) {
		return t.tls12
	}
	return t.all
}

// harden returns a copy of c with the guarantees identity relies on forced on,
// whatever c asks for: a client certificate that chains to ClientCAs with
// the client-auth usage, verified by v (see clientVerifier), or by Go under
// RequireAndVerifyClientCert when v is nil. A VerifyPeerCertificate or
// VerifyConnection of c still runs, after kmipd's checks.
func harden(c *tls.Config, v *clientVerifier) *tls.Config {
	c = c.Clone()
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	if v == nil {
		c.ClientAuth = tls.RequireAndVerifyClientCert
	} else {
		c.ClientAuth = tls.RequireAnyClientCert
		c.VerifyPeerCertificate = v.verifyPeer(c.VerifyPeerCertificate)
	}
	if c.CipherSuites == nil {
		c.CipherSuites = CipherSuites()
	}
	if c.CurvePreferences == nil {
		c.CurvePreferences = CurvePreferences()
	}
	bindTickets(c, v)
	next := c.VerifyConnection
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("client certificate required")
		}
		if err := checkClientEKU(cs.PeerCertificates[0]); err != nil {
			return err
		}
		if next == nil {
			return nil
		}
		if v != nil && len(cs.VerifiedChains) == 0 {
			// Go leaves VerifiedChains empty under RequireAnyClientCert
			// (and tickets carry none): give the caller's hook the chains
			// it would have had, from the cache as a rule.
			chains, err := v.verify(rawCerts(cs.PeerCertificates))
			if err != nil {
				return err
			}
			cs.VerifiedChains = chains
		}
		return next(cs)
	}
	return c
}

// bindTickets makes session tickets valid only with the configuration that
// issued them.
//
// Resumption is safe for identity because a resumed session carries the
// client certificates verified in its full handshake (Go keeps them in the
// ticket, refuses to resume a ticket without them, or past the leaf's
// NotAfter, and runs VerifyConnection, hence the EKU check, on resumption
// too; with a verifier, v.resumable stands in for Go's check that a verified
// chain is still valid). What Go does not do is verify them again: and
// since the server hands out its listener-wide tls.Config through
// GetConfigForClient, Go would seal tickets with that outer config's keys,
// which outlive SetTLSConfig. A client whose CA was just removed could then
// resume for up to a week. With WrapSession/UnwrapSession sealing under this
// config's own (auto-rotated) keys, a reload invalidates every earlier
// ticket: the client falls back to a full handshake, verified against the
// new CA pool. Hooks c already has are kept, inside the stamp check.
func bindTickets(c *tls.Config, v *clientVerifier) {
	if c.SessionTicketsDisabled {
		return
	}
	seal, open := c.WrapSession, c.UnwrapSession
	if seal == nil {
		seal = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
			return c.EncryptTicket(cs, ss)
		}
	}
	if open == nil {
		open = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
			return c.DecryptTicket(identity, cs)
		}
	}
	if v == nil {
		c.WrapSession, c.UnwrapSession = seal, open
		return
	}
	c.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		v.stamp(cs, ss)
		return seal(cs, ss)
	}
	c.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		ss, err := open(identity, cs)
		if err != nil || ss == nil || v.resumable(ss) {
			return ss, err
		}
		return nil, nil // not an error: Go runs a full handshake instead
	}
}

// checkClientEKU requires the client-auth extended key usage to be present.
// Go's verifier (KeyUsages: ClientAuth) rejects a certificate whose EKUs
// exclude client auth, but accepts one with no EKU extension at all; kmipd
// insists the certificate was issued for client use.
func checkClientEKU(leaf *x509.Certificate) error {
	for _, u := range leaf.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny {
			return nil
		}
	}
	return fmt.Errorf("client certificate %q lacks the clientAuth extended key usage", leaf.Subject.CommonName)
}
