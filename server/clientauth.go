package server

import (
	"bytes"
	"crypto/fips140"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/kmipd/kmipd/certs"
)

// clientVerifier verifies client certificate chains for one TLS
// configuration (one SetTLSConfig), reusing verdicts through a certs.ChainCache:
// clients that reconnect per request (Barbican) present the same chain over
// and over, and x509 verification was ~15% of the server's CPU.
//
// crypto/tls verifies client chains itself only under VerifyClientCertIfGiven
// or RequireAndVerifyClientCert, with no way to reuse the result (Go 1.26,
// handshake_server.go processCertsFromClient). So harden asks for
// RequireAnyClientCert, which still demands a certificate and still checks
// the client's CertificateVerify signature, and installs verifyPeer as
// VerifyPeerCertificate: Go calls it at the point where its own
// verification would have run, in full handshakes only, and aborts the
// handshake if it fails. Resumption is handled by stamp and resumable.
type clientVerifier struct {
	roots *x509.CertPool
	clock func() time.Time
	cache *certs.ChainCache
	gen   [16]byte // names this configuration in the tickets it issues
}

// chainCacheSize bounds the chains one TLS configuration remembers. Clients
// are few (Barbican, PyKMIP, a handful of arrays); the bound only stops one
// that presents endless distinct chains from growing memory.
const chainCacheSize = 4096

// newClientVerifier returns nil when Go must keep verifying (FIPS mode).
func newClientVerifier(c *tls.Config) *clientVerifier {
	if fipsTLS() {
		return nil
	}
	v := &clientVerifier{roots: c.ClientCAs, clock: c.Time, cache: certs.NewChainCache(chainCacheSize)}
	if v.clock == nil {
		v.clock = time.Now
	}
	rand.Read(v.gen[:])
	return v
}

// fipsTLS reports whether crypto/tls may be in FIPS mode, where it also
// drops verified chains with non-approved keys (common.go fipsAllowedChains)
// — a filter kmipd does not copy, so there Go keeps verifying every
// handshake itself. crypto/tls/fipsonly exists only in boringcrypto builds.
func fipsTLS() bool { return fips140.Enabled() || boringCrypto }

// verify returns the chains raw (leaf first) verifies to, exactly as
// crypto/tls does under RequireAndVerifyClientCert: the same VerifyOptions,
// the same time (Config.Time, else now) and the same error type.
func (v *clientVerifier) verify(raw [][]byte) ([][]*x509.Certificate, error) {
	if len(raw) == 0 {
		return nil, errors.New("tls: client didn't provide a certificate")
	}
	now := v.clock()
	key := certs.ChainKeyOf(raw, "")
	if chains, ok := v.cache.Get(key, now); ok {
		return chains, nil
	}
	parsed := make([]*x509.Certificate, len(raw))
	for i, der := range raw {
		// Go has parsed these already; VerifyPeerCertificate only gets the
		// bytes, so a miss parses again.
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("tls: failed to parse client certificate: %w", err)
		}
		parsed[i] = c
	}
	opts := x509.VerifyOptions{
		Roots:         v.roots,
		CurrentTime:   now,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, c := range parsed[1:] {
		opts.Intermediates.AddCert(c)
	}
	chains, err := parsed[0].Verify(opts)
	if err != nil {
		return nil, &tls.CertificateVerificationError{UnverifiedCertificates: parsed, Err: err}
	}
	v.cache.Put(key, chains)
	return chains, nil
}

// verifyPeer returns the VerifyPeerCertificate hook; next, the caller's own
// hook if any, runs after it with the verified chains, as it would have
// after Go's verification.
func (v *clientVerifier) verifyPeer(next func([][]byte, [][]*x509.Certificate) error) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		chains, err := v.verify(raw)
		if err != nil {
			return err
		}
		if next != nil {
			return next(raw, chains)
		}
		return nil
	}
}

func rawCerts(certs []*x509.Certificate) [][]byte {
	raw := make([][]byte, len(certs))
	for i, c := range certs {
		raw[i] = c.Raw
	}
	return raw
}

// Session resumption. Under RequireAndVerifyClientCert, Go resumes a session
// only if one of the chains verified in its full handshake is still within
// every certificate's validity and still ends in a ClientCAs root
// (anyValidVerifiedChain, in checkForResumption of handshake_server.go and
// handshake_server_tls13.go); under RequireAnyClientCert it skips that
// check, and its tickets carry no chains. So each ticket kmipd issues is
// stamped with this configuration's generation and the validity windows of
// the chains its certificates verify to, and a ticket is resumed only if
// its stamp is from this generation and a window contains the current time;
// otherwise Go falls back to a full handshake, verified afresh. Within one
// generation the roots still hold: the pool is fixed and a CertPool only
// grows. Go's own checks (certificates present, leaf not expired,
// VerifyConnection run) still apply on top.

const stampPrefix = "kmipd/verified-chains/v1\x00"

// stamp records in ss what resumable checks. On a resumed connection the
// certificates come from the old ticket and are verified (normally a cache
// hit) again here; a chain that no longer verifies gets an empty stamp,
// which is never resumed.
func (v *clientVerifier) stamp(cs tls.ConnectionState, ss *tls.SessionState) {
	var windows []certs.Window
	if chains, err := v.verify(rawCerts(cs.PeerCertificates)); err == nil {
		for _, c := range chains {
			windows = append(windows, certs.ChainWindow(c))
		}
	}
	b := make([]byte, 0, len(stampPrefix)+len(v.gen)+16*len(windows))
	b = append(append(b, stampPrefix...), v.gen[:]...)
	for _, w := range windows {
		// Certificate times are whole seconds; rounding inwards keeps the
		// window no wider than the chain's in any case.
		nb := w.NotBefore.Unix()
		if w.NotBefore.Nanosecond() != 0 {
			nb++
		}
		b = binary.BigEndian.AppendUint64(b, uint64(nb))
		b = binary.BigEndian.AppendUint64(b, uint64(w.NotAfter.Unix()))
	}
	ss.Extra = append(ss.Extra, b)
}

// resumable reports whether ss carries this generation's stamp with a chain
// valid now.
func (v *clientVerifier) resumable(ss *tls.SessionState) bool {
	for _, e := range ss.Extra {
		rest, ok := bytes.CutPrefix(e, []byte(stampPrefix))
		if !ok {
			continue
		}
		if len(rest) < len(v.gen) || !bytes.Equal(rest[:len(v.gen)], v.gen[:]) {
			return false
		}
		now := v.clock()
		for rest = rest[len(v.gen):]; len(rest) >= 16; rest = rest[16:] {
			w := certs.Window{
				NotBefore: time.Unix(int64(binary.BigEndian.Uint64(rest)), 0),
				NotAfter:  time.Unix(int64(binary.BigEndian.Uint64(rest[8:])), 0),
			}
			if w.Contains(now) {
				return true
			}
		}
		return false
	}
	return false
}
