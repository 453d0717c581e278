package bench

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"sync/atomic"
	"time"

	"github.com/kmipd/kmipd/certs"
)

// In reconnect mode every request is a full handshake, and building and
// checking the server's chain (x509 Verify) was about a fifth of the load
// generator's CPU, taken from the server it shares the cores with. The
// chain is the same every time, so the client verifies it once and then
// only recognises it.
//
// Only the chain building is skipped. With InsecureSkipVerify the client
// still proves the server holds the leaf's private key: crypto/tls
// (go1.26) verifies the TLS 1.2 ServerKeyExchange signature against
// c.peerCertificates[0] (handshake_client.go:712, processServerKeyExchange,
// which calls verifyHandshakeSignature in key_agreement.go:351), and the
// TLS 1.3 CertificateVerify (handshake_client_tls13.go:669). RSA key
// exchange encrypts the premaster secret to that key (handshake_client.go:763).

// maxVerifiedChains bounds the cache; a run sees one server chain, a few
// at most.
const maxVerifiedChains = 256

// chainVerifier checks server chains as crypto/tls would without
// InsecureSkipVerify, remembering each success (certs.ChainCache, the cache
// kmipd's server uses for client chains) for as long as every certificate
// in the verified chain stays valid. Failures are not remembered. It is
// safe for concurrent use.
type chainVerifier struct {
	roots *x509.CertPool   // nil: the system pool, as in crypto/tls
	now   func() time.Time // tls.Config.Time, or time.Now
	cache *certs.ChainCache

	verified atomic.Uint64 // full x509 verifications, hits excluded
}

// verifyOnce makes cfg verify each distinct server chain once: it turns
// off crypto/tls's own chain verification and does the same verification
// in VerifyConnection (which, unlike VerifyPeerCertificate, also runs on
// resumed sessions), cached. Call it once ServerName, RootCAs and Time are
// final; clones share the cache. A config that already skips verification,
// or has no ServerName to check, is left as it is. It returns the verifier,
// or nil if it installed none.
func verifyOnce(cfg *tls.Config) *chainVerifier {
	if cfg.InsecureSkipVerify || cfg.ServerName == "" {
		return nil
	}
	v := &chainVerifier{roots: cfg.RootCAs, now: cfg.Time, cache: certs.NewChainCache(maxVerifiedChains)}
	if v.now == nil {
		v.now = time.Now
	}
	// crypto/tls checks the configured name, not the SNI it sent (which
	// omits IP addresses), so the name is taken from cfg here too.
	name, next := cfg.ServerName, cfg.VerifyConnection
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := v.verify(cs.PeerCertificates, name); err != nil {
			return err
		}
		if next != nil {
			return next(cs)
		}
		return nil
	}
	return v
}

// verify is crypto/tls's verifyServerCertificate check (the same
// VerifyOptions: roots, intermediates from the peer, DNSName, the config's
// clock), skipped when this chain and name already passed and the clock is
// still inside the chain's validity.
func (v *chainVerifier) verify(peer []*x509.Certificate, name string) error {
	if len(peer) == 0 {
		return errors.New("tls: server sent no certificate")
	}
	raw := make([][]byte, len(peer))
	for i, c := range peer {
		raw[i] = c.Raw
	}
	key := certs.ChainKeyOf(raw, name)
	now := v.now()
	if _, ok := v.cache.Get(key, now); ok {
		return nil
	}
	// Concurrent first handshakes may each verify; that costs a few
	// verifications once, not correctness.
	opts := x509.VerifyOptions{Roots: v.roots, DNSName: name, CurrentTime: now, Intermediates: x509.NewCertPool()}
	for _, c := range peer[1:] {
		opts.Intermediates.AddCert(c)
	}
	chains, err := peer[0].Verify(opts)
	v.verified.Add(1)
	if err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: peer, Err: err}
	}
	v.cache.Put(key, chains)
	return nil
}
