package kmipops

import (
	"fmt"

	"github.com/gemalto/kmip-go/kmip14"
)

// Symmetric key sizes. A key server can generate key material for any
// algorithm whose key lengths it knows, whether or not it can compute with
// the algorithm itself: Create makes a key of a legal length for every
// symmetric Cryptographic Algorithm of KMIP 1.4 (§9.1.3.2.13), while the
// operations that use a key (Encrypt, MAC, key wrapping...) still refuse
// the algorithms kmipd cannot compute.

// maxAnyLength bounds the algorithms that take a key of any length (HMAC,
// One Time Pad): a server limit on what Create generates, not a rule of
// the algorithms.
const maxAnyLength = 4096

// symAlg says which Cryptographic Lengths (in bits, as KMIP counts them) a
// symmetric algorithm's keys may have.
type symAlg struct {
	lengths        []int32 // the legal lengths, when they are a short list
	min, max, step int32   // otherwise a range of legal lengths
	def            int32   // default length when the client gives none; 0: required
	mask           uint32  // default Cryptographic Usage Mask
	ref            string  // where the lengths come from
}

func fixed(mask uint32, ref string, def int32, lengths ...int32) symAlg {
	return symAlg{lengths: lengths, def: def, mask: mask, ref: ref}
}

func span(mask uint32, ref string, def, min, max, step int32) symAlg {
	return symAlg{min: min, max: max, step: step, def: def, mask: mask, ref: ref}
}

// hmacAlg is an HMAC: a key of any whole number of bytes (RFC 2104 §2,
// §3), by default as long as the hash output.
func hmacAlg(out int32, ref string) symAlg {
	return span(maskMAC, ref, out, 8, maxAnyLength, 8)
}

var symAlgs = map[kmip14.CryptographicAlgorithm]symAlg{
	// DES: 64 key bits of which 8 are parity; KMIP lengths count either.
	kmip14.CryptographicAlgorithmDES: fixed(maskEncDec, "FIPS 46-3 §2", 0, 56, 64),
	// Triple DES: two or three DES keys. KMIP counts bits without parity
	// (112, 168, as the OASIS SKFF cases do); 128 and 192 count them.
	kmip14.CryptographicAlgorithmDES3:     fixed(maskEncDec, "NIST SP 800-67 Rev. 2 §3.1", 0, 112, 128, 168, 192),
	kmip14.CryptographicAlgorithmAES:      fixed(maskEncDec, "FIPS 197 §5", 256, 128, 192, 256),
	kmip14.CryptographicAlgorithmBlowfish: span(maskEncDec, "Schneier, Blowfish (FSE 1993): 32 to 448 bits", 0, 32, 448, 8),
	kmip14.CryptographicAlgorithmCamellia: fixed(maskEncDec, "RFC 3713 §2.1", 0, 128, 192, 256),
	kmip14.CryptographicAlgorithmCAST5:    span(maskEncDec, "RFC 2144 §2.5: 40 to 128 bits in 8-bit steps", 0, 40, 128, 8),
	kmip14.CryptographicAlgorithmIDEA:     fixed(maskEncDec, "RFC 3058 §2 (ISO/IEC 18033-3): 128 bits", 128, 128),
	kmip14.CryptographicAlgorithmMARS:     span(maskEncDec, "IBM MARS AES submission: 4 to 14 32-bit words", 0, 128, 448, 32),
	kmip14.CryptographicAlgorithmRC2:      span(maskEncDec, "RFC 2268 §2: 1 to 128 bytes", 0, 8, 1024, 8),
	kmip14.CryptographicAlgorithmRC4:      span(maskEncDec, "RFC 6229 §1 (key scheduling: 1 to 256 bytes)", 0, 8, 2048, 8),
	kmip14.CryptographicAlgorithmRC5:      span(maskEncDec, "RFC 2040 §2: 0 to 255 bytes", 0, 8, 2040, 8),
	kmip14.CryptographicAlgorithmSKIPJACK: fixed(maskEncDec, "NIST SKIPJACK and KEA specification (1998) §2: 80 bits", 80, 80),
	kmip14.CryptographicAlgorithmTwofish:  fixed(maskEncDec, "Schneier et al., Twofish (1998) §4", 0, 128, 192, 256),
	// A one-time pad is as long as what it encrypts.
	kmip14.CryptographicAlgorithmOneTimePad:       span(maskEncDec, "any length", 0, 8, maxAnyLength, 8),
	kmip14.CryptographicAlgorithmChaCha20:         fixed(maskEncDec, "RFC 8439 §2.3", 256, 256),
	kmip14.CryptographicAlgorithmPoly1305:         fixed(maskMAC, "RFC 8439 §2.5", 256, 256),
	kmip14.CryptographicAlgorithmChaCha20Poly1305: fixed(maskEncDec, "RFC 8439 §2.8", 256, 256),
	kmip14.CryptographicAlgorithmHMAC_MD5:         hmacAlg(128, "RFC 2104"),
	kmip14.CryptographicAlgorithmHMAC_SHA1:        hmacAlg(160, "RFC 2104, FIPS 198-1"),
	kmip14.CryptographicAlgorithmHMAC_SHA224:      hmacAlg(224, "RFC 2104, FIPS 198-1"),
	kmip14.CryptographicAlgorithmHMAC_SHA256:      hmacAlg(256, "RFC 2104, FIPS 198-1"),
	kmip14.CryptographicAlgorithmHMAC_SHA384:      hmacAlg(384, "RFC 2104, FIPS 198-1"),
	kmip14.CryptographicAlgorithmHMAC_SHA512:      hmacAlg(512, "RFC 2104, FIPS 198-1"),
	kmip14.CryptographicAlgorithmHMAC_SHA3_224:    hmacAlg(224, "FIPS 198-1 with FIPS 202"),
	kmip14.CryptographicAlgorithmHMAC_SHA3_256:    hmacAlg(256, "FIPS 198-1 with FIPS 202"),
	kmip14.CryptographicAlgorithmHMAC_SHA3_384:    hmacAlg(384, "FIPS 198-1 with FIPS 202"),
	kmip14.CryptographicAlgorithmHMAC_SHA3_512:    hmacAlg(512, "FIPS 198-1 with FIPS 202"),
}

// legal reports whether bits is a length the algorithm's keys may have.
func (s symAlg) legal(bits int32) bool {
	if s.lengths != nil {
		for _, l := range s.lengths {
			if l == bits {
				return true
			}
		}
		return false
	}
	return bits >= s.min && bits <= s.max && (bits-s.min)%s.step == 0
}

func (s symAlg) String() string {
	if s.lengths != nil {
		return fmt.Sprint(s.lengths)
	}
	return fmt.Sprintf("%d to %d in steps of %d", s.min, s.max, s.step)
}

// keyBytes is the number of key material bytes a symmetric key of the given
// KMIP Cryptographic Length holds: DES and Triple DES lengths may leave the
// parity bits out, every other length counts each bit of whole bytes.
func keyBytes(alg kmip14.CryptographicAlgorithm, bits int32) (int, bool) {
	switch {
	case alg == kmip14.CryptographicAlgorithmDES && (bits == 56 || bits == 64):
		return 8, true
	case alg == kmip14.CryptographicAlgorithmDES3 && (bits == 112 || bits == 128):
		return 16, true
	case alg == kmip14.CryptographicAlgorithmDES3 && (bits == 168 || bits == 192):
		return 24, true
	case bits > 0 && bits%8 == 0:
		return int(bits / 8), true
	}
	return 0, false
}

// symmetricSpec decides the key Create makes: the Cryptographic Length to
// record, the bytes to generate and the default usage mask. An algorithm
// that is not a symmetric key algorithm, or a length it does not allow, is
// an incorrect attribute value: Invalid Field (KMIP 1.4 §11.1).
func symmetricSpec(alg kmip14.CryptographicAlgorithm, length int32, given bool) (int32, int, uint32, error) {
	s, ok := symAlgs[alg]
	if !ok {
		return 0, 0, 0, Errorf(kmip14.ResultReasonInvalidField, "Cryptographic Algorithm %s is not a symmetric key algorithm", alg)
	}
	if !given {
		if s.def == 0 {
			return 0, 0, 0, Errorf(kmip14.ResultReasonInvalidField, "Cryptographic Length is required for %s", alg)
		}
		length = s.def
	}
	n, ok := keyBytes(alg, length)
	if !ok || !s.legal(length) {
		return 0, 0, 0, Errorf(kmip14.ResultReasonInvalidField, "Cryptographic Length %d not supported for %s (%s)", length, alg, s)
	}
	return length, n, s.mask, nil
}
