package bench

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"time"
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
// InsecureSkipVerify, remembering each success for as long as every
// certificate in the verified chain stays valid. Failures are not
// remembered. It is safe for concurrent use.
type chainVerifier struct {
	roots *x509.CertPool   // nil: the system pool, as in crypto/tls
	now   func() time.Time // tls.Config.Time, or time.Now

	mu    sync.Mutex
	valid map[[sha256.Size]byte]window

	verified atomic.Uint64 // full x509 verifications, hits excluded
}

// window is when a verified chain verifies again: inside every
// certificate's validity, as x509 checks it.
type window struct{ notBefore, notAfter time.Time }

func (w window) contains(t time.Time) bool { return !t.Before(w.notBefore) && !t.After(w.notAfter) }

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
	v := &chainVerifier{roots: cfg.RootCAs, now: cfg.Time, valid: make(map[[sha256.Size]byte]window)}
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
func (v *chainVerifier) verify(certs []*x509.Certificate, name string) error {
	if len(certs) == 0 {
		return errors.New("tls: server sent no certificate")
	}
	key := chainKey(certs, name)
	now := v.now()
	v.mu.Lock()
	w, ok := v.valid[key]
	v.mu.Unlock()
	if ok && w.contains(now) {
		return nil
	}
	// Concurrent first handshakes may each verify; that costs a few
	// verifications once, not correctness.
	opts := x509.VerifyOptions{Roots: v.roots, DNSName: name, CurrentTime: now, Intermediates: x509.NewCertPool()}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	chains, err := certs[0].Verify(opts)
	v.verified.Add(1)
	if err != nil {
		v.mu.Lock()
		delete(v.valid, key) // an entry past its window
		v.mu.Unlock()
		return &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
	}
	v.remember(key, validity(chains[0]))
	return nil
}

func (v *chainVerifier) remember(key [sha256.Size]byte, w window) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.valid[key]; !ok && len(v.valid) >= maxVerifiedChains {
		for k := range v.valid { // evict an arbitrary entry: it is only a cache
			delete(v.valid, k)
			break
		}
	}
	v.valid[key] = w
}

// validity is the intersection of the chain's validity periods (the root
// included): the verification's outcome cannot change inside it, since
// roots, certificates and name are fixed.
func validity(chain []*x509.Certificate) window {
	w := window{notBefore: chain[0].NotBefore, notAfter: chain[0].NotAfter}
	for _, c := range chain[1:] {
		if c.NotBefore.After(w.notBefore) {
			w.notBefore = c.NotBefore
		}
		if c.NotAfter.Before(w.notAfter) {
			w.notAfter = c.NotAfter
		}
	}
	return w
}

// chainKey is SHA-256 over the certificate count, the length-prefixed
// certificates and the length-prefixed name, so no two different (chain,
// name) pairs share an encoding.
func chainKey(certs []*x509.Certificate, name string) [sha256.Size]byte {
	h := sha256.New()
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(certs)))
	h.Write(n[:])
	for _, c := range certs {
		binary.BigEndian.PutUint32(n[:], uint32(len(c.Raw)))
		h.Write(n[:])
		h.Write(c.Raw)
	}
	binary.BigEndian.PutUint32(n[:], uint32(len(name)))
	h.Write(n[:])
	h.Write([]byte(name))
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}
