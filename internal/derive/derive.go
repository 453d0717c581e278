// Package derive holds the key-derivation primitives behind KMIP's Derive Key
// operation (KMIP 1.4 §4.6 with its Derivation Parameters, Derivation Method
// enumeration §9.1.3.2.21): PBKDF2, HASH, HMAC, ENCRYPT and the three
// NIST SP 800-108 KDFs (counter, feedback, double-pipeline iteration).
//
// The package knows bytes, hashes and PRFs, not TTLV: the caller (kmipops)
// reads the request, loads the base object's key material, maps KMIP's
// Hashing Algorithm to a hash constructor and its block-cipher parameters to
// an Encrypter, and registers what Derive returns. Every error wraps
// ErrParameter or ErrLength, both of which KMIP answers with Invalid Field;
// no error message carries key material or derivation data.
package derive

import (
	"errors"
	"fmt"
	"hash"
)

// Method is KMIP's Derivation Method enumeration; the values are KMIP's.
type Method uint32

// Derivation methods of KMIP 1.x.
const (
	PBKDF2        Method = 0x01
	HASH          Method = 0x02
	HMAC          Method = 0x03
	ENCRYPT       Method = 0x04
	NIST800108C   Method = 0x05
	NIST800108F   Method = 0x06
	NIST800108DPI Method = 0x07
	// HKDF (RFC 5869) is KMIP 2.0's value for it; KMIP 1.x has no such
	// method. PyKMIP's server answers KMIP 1.x HMAC with HKDF (Salt as salt,
	// Derivation Data as info), and PyKMIP's own suite checks it with RFC 5869
	// A.7's 42 bytes from HMAC-SHA-1: a caller that wants that behaviour maps
	// HMAC here; HMAC itself is the specification's HMAC over the data.
	HKDF Method = 0x0A
)

func (m Method) String() string {
	switch m {
	case PBKDF2:
		return "PBKDF2"
	case HASH:
		return "HASH"
	case HMAC:
		return "HMAC"
	case ENCRYPT:
		return "ENCRYPT"
	case NIST800108C:
		return "NIST800-108-C"
	case NIST800108F:
		return "NIST800-108-F"
	case NIST800108DPI:
		return "NIST800-108-DPI"
	case HKDF:
		return "HKDF"
	}
	return fmt.Sprintf("Method(%#x)", uint32(m))
}

var (
	// ErrParameter: a required derivation parameter is missing, one that the
	// method does not take is present, or a value is out of range.
	ErrParameter = errors.New("derive: invalid derivation parameters")
	// ErrLength: the requested length is zero, above the package's bound, or
	// more than the method can produce ("If the specified length exceeds the
	// output of the derivation method, then the server SHALL return an
	// error", §4.6).
	ErrLength = errors.New("derive: unsupported derived length")
)

// Bounds on the work one derivation may cost, so that a request cannot make
// the server spin: PBKDF2's iteration count is the client's choice, and so is
// the length of every method that stretches its output.
const (
	// DefaultMaxLength bounds the derived length in bytes when Params.MaxLength
	// is zero.
	DefaultMaxLength = 64 << 10
	// DefaultMaxIterations bounds PBKDF2's work when Params.MaxIterations
	// is zero: its iteration count times the hash-length blocks it produces
	// (about a second of HMAC-SHA-256 on one core).
	DefaultMaxIterations = 2_000_000
)

// Encrypter encrypts data under key with the caller's algorithm, mode and
// padding (from the Derivation Parameters' Cryptographic Parameters) and
// the given IV, which is empty when the client sent none. The ENCRYPT method
// takes its output as the derived bytes.
type Encrypter func(key, iv, data []byte) ([]byte, error)

// Params is one derivation, as a Derive Key request describes it.
type Params struct {
	Method Method
	// Key is the derivation key: the base object's key material (for PBKDF2,
	// the password of a Secret Data object).
	Key []byte
	// Data is the Derivation Data; nil when the request has none (an empty,
	// non-nil slice is a present, zero-length Byte String).
	Data []byte
	// Salt and Iterations are PBKDF2's (Salt is also HKDF's).
	Salt       []byte
	Iterations int
	// IV is the Initialization Vector: ENCRYPT's IV, and K(0) of the feedback
	// KDF. Nil means none was sent; both then use an empty one (§4.6).
	IV []byte
	// Hash is the Cryptographic Parameters' Hashing Algorithm: the hash of
	// HASH, the HMAC hash of HMAC and of PBKDF2's PRF.
	Hash func() hash.Hash
	// PRF is the pseudorandom function of the NIST SP 800-108 methods.
	PRF PRF
	// Counter places the counter for the NIST SP 800-108 methods; the zero
	// value is KMIPCounter.
	Counter *CounterSpec
	// Encrypt performs ENCRYPT's encryption.
	Encrypt Encrypter
	// Length is the number of bytes to derive (the template's Cryptographic
	// Length / 8).
	Length int
	// MaxLength and MaxIterations override the package defaults when
	// non-zero. MaxIterations bounds PBKDF2's iterations × output blocks.
	MaxLength     int
	MaxIterations int
}

// Derive runs p.Method with p's parameters and returns p.Length bytes.
func Derive(p Params) ([]byte, error) {
	maxLen := p.MaxLength
	if maxLen == 0 {
		maxLen = DefaultMaxLength
	}
	if p.Length <= 0 || p.Length > maxLen {
		return nil, fmt.Errorf("%w: %d bytes requested, between 1 and %d allowed", ErrLength, p.Length, maxLen)
	}
	spec := KMIPCounter
	if p.Counter != nil {
		spec = *p.Counter
	}
	switch p.Method {
	case PBKDF2:
		if p.Data != nil || p.IV != nil {
			return nil, fmt.Errorf("%w: PBKDF2 takes no Derivation Data or Initialization Vector", ErrParameter)
		}
		maxIter := p.MaxIterations
		if maxIter == 0 {
			maxIter = DefaultMaxIterations
		}
		// PBKDF2 runs its iterations once per hash-length block of output,
		// so the bound is on iterations × blocks: a long output must not
		// multiply the work the iteration bound allows.
		blocks := 1
		if p.Hash != nil {
			hl := p.Hash().Size()
			blocks = (p.Length + hl - 1) / hl
		}
		if p.Iterations > maxIter/blocks {
			return nil, fmt.Errorf("%w: PBKDF2 iteration count %d for %d output blocks exceeds this server's limit of %d iterations", ErrParameter, p.Iterations, blocks, maxIter)
		}
		return PBKDF2Key(p.Hash, p.Key, p.Salt, p.Iterations, p.Length)
	case HASH:
		if err := noPBKDF2Params(p); err != nil {
			return nil, err
		}
		return Hash(p.Hash, p.Key, p.Data, p.Length)
	case HMAC:
		if err := noPBKDF2Params(p); err != nil {
			return nil, err
		}
		return HMACKey(p.Hash, p.Key, p.Data, p.Length)
	case HKDF:
		if p.Iterations != 0 || p.IV != nil {
			return nil, fmt.Errorf("%w: HKDF takes no Iteration Count or Initialization Vector", ErrParameter)
		}
		return HKDFKey(p.Hash, p.Key, p.Salt, p.Data, p.Length)
	case ENCRYPT:
		if err := noPBKDF2Params(p); err != nil {
			return nil, err
		}
		return Encrypt(p.Encrypt, p.Key, p.IV, p.Data, p.Length)
	case NIST800108C:
		if err := noPBKDF2Params(p); err != nil {
			return nil, err
		}
		if p.IV != nil {
			return nil, fmt.Errorf("%w: counter mode takes no Initialization Vector", ErrParameter)
		}
		return Counter(p.PRF, p.Key, p.Data, p.Length, spec)
	case NIST800108F:
		if err := noPBKDF2Params(p); err != nil {
			return nil, err
		}
		return Feedback(p.PRF, p.Key, p.IV, p.Data, p.Length, spec)
	case NIST800108DPI:
		if err := noPBKDF2Params(p); err != nil {
			return nil, err
		}
		if p.IV != nil {
			return nil, fmt.Errorf("%w: double-pipeline mode takes no Initialization Vector", ErrParameter)
		}
		return DoublePipeline(p.PRF, p.Key, p.Data, p.Length, spec)
	}
	return nil, fmt.Errorf("%w: derivation method %v is not supported", ErrParameter, p.Method)
}

// noPBKDF2Params refuses Salt and Iteration Count outside PBKDF2: KMIP
// defines them for PBKDF2 only, and silently ignoring them would derive a key
// the client did not describe.
func noPBKDF2Params(p Params) error {
	if p.Salt != nil || p.Iterations != 0 {
		return fmt.Errorf("%w: Salt and Iteration Count belong to PBKDF2, not %v", ErrParameter, p.Method)
	}
	return nil
}
