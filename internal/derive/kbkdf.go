package derive

import (
	"crypto/hmac"
	"fmt"
	"hash"
)

// PRF makes a keyed pseudorandom function for the NIST SP 800-108 KDFs: HMAC
// over a hash (HMACPRF), or CMAC over a block cipher, which the caller
// supplies (Go's standard library has none), e.g.
//
//	func(key []byte) (hash.Hash, error) { b, err := aes.NewCipher(key); …; return cmac.New(b), nil }
//
// The hash.Hash it returns is used as Write*, Sum, Reset.
type PRF func(key []byte) (hash.Hash, error)

// HMACPRF is HMAC over newHash as an SP 800-108 PRF.
func HMACPRF(newHash func() hash.Hash) PRF {
	return func(key []byte) (hash.Hash, error) { return hmac.New(newHash, key), nil }
}

// Location is where the counter [i]_r goes in each PRF input.
type Location int

const (
	// BeforeFixed puts the counter right before the fixed input data: first
	// in counter mode ([i] || fixed), after the iteration value in feedback
	// and double-pipeline modes (K(i-1) || [i] || fixed), as SP 800-108 §5
	// writes it. CAVP calls these BEFORE_FIXED and AFTER_ITER.
	BeforeFixed Location = iota
	// AfterFixed puts it last: ... || fixed || [i].
	AfterFixed
	// BeforeIter puts it first in feedback and double-pipeline modes:
	// [i] || K(i-1) || fixed. Counter mode has no iteration value.
	BeforeIter
)

// CounterSpec says how the counter i is encoded: Bits is r, its length in
// bits (8, 16, 24 or 32; 0 for no counter, allowed in feedback and
// double-pipeline modes only), big-endian, starting at 1.
type CounterSpec struct {
	Bits     int
	Location Location
}

// KMIPCounter is the encoding kmipd uses when a KMIP request names an SP
// 800-108 method. KMIP (§4.6) defines no field for the counter's length or
// place and takes the fixed input data whole from the Derivation Data, so the
// server fixes them: r = 32 bits, right before the fixed input data: SP
// 800-108's own formulas, CAVP's most common configuration, and what
// PyKMIP's server does for counter mode (its suite checks a CAVP vector).
var KMIPCounter = CounterSpec{Bits: 32, Location: BeforeFixed}

// Counter is the KDF in counter mode (SP 800-108 §5.1):
// K(i) = PRF(key, [i]_r || fixed), output = K(1) || K(2) || … truncated to n.
func Counter(prf PRF, key, fixed []byte, n int, c CounterSpec) ([]byte, error) {
	if c.Bits == 0 || c.Location == BeforeIter {
		return nil, fmt.Errorf("%w: counter mode needs a counter before or after the fixed input data", ErrParameter)
	}
	if fixed == nil {
		return nil, fmt.Errorf("%w: NIST800-108-C needs Derivation Data (the fixed input data)", ErrParameter)
	}
	return run(prf, key, fixed, n, c, nil, false)
}

// Feedback is the KDF in feedback mode (SP 800-108 §5.2):
// K(0) = iv, K(i) = PRF(key, K(i-1) {|| [i]_r} || fixed).
// A nil iv is the empty IV the Derivation Parameters table (§4.6) says a
// server assumes.
func Feedback(prf PRF, key, iv, fixed []byte, n int, c CounterSpec) ([]byte, error) {
	if fixed == nil {
		return nil, fmt.Errorf("%w: NIST800-108-F needs Derivation Data (the fixed input data)", ErrParameter)
	}
	if iv == nil {
		iv = []byte{}
	}
	return run(prf, key, fixed, n, c, iv, false)
}

// DoublePipeline is the KDF in double-pipeline iteration mode (SP 800-108
// §5.3): A(0) = fixed, A(i) = PRF(key, A(i-1)),
// K(i) = PRF(key, A(i) {|| [i]_r} || fixed).
func DoublePipeline(prf PRF, key, fixed []byte, n int, c CounterSpec) ([]byte, error) {
	if fixed == nil {
		return nil, fmt.Errorf("%w: NIST800-108-DPI needs Derivation Data (the fixed input data)", ErrParameter)
	}
	return run(prf, key, fixed, n, c, nil, true)
}

// run is the loop the three modes share. iv non-nil selects feedback mode;
// pipeline selects double-pipeline; neither is counter mode.
func run(prf PRF, key, fixed []byte, n int, c CounterSpec, iv []byte, pipeline bool) ([]byte, error) {
	if prf == nil {
		return nil, fmt.Errorf("%w: the NIST SP 800-108 methods need a PRF (HMAC or CMAC)", ErrParameter)
	}
	switch c.Bits {
	case 0, 8, 16, 24, 32:
	default:
		return nil, fmt.Errorf("%w: counter length %d bits; 8, 16, 24 or 32 allowed", ErrParameter, c.Bits)
	}
	if c.Location < BeforeFixed || c.Location > BeforeIter {
		return nil, fmt.Errorf("%w: unknown counter location %d", ErrParameter, c.Location)
	}
	if n < 1 {
		return nil, fmt.Errorf("%w: %d bytes requested", ErrLength, n)
	}
	mac, err := prf(key)
	if err != nil {
		return nil, fmt.Errorf("%w: PRF: %w", ErrParameter, err)
	}
	h := mac.Size()
	blocks := (n + h - 1) / h
	if c.Bits > 0 && c.Bits < 32 && blocks > 1<<c.Bits-1 {
		return nil, fmt.Errorf("%w: %d blocks need more than a %d-bit counter", ErrLength, blocks, c.Bits)
	}
	out := make([]byte, 0, blocks*h)
	var ctr [4]byte
	counter := func(i int) []byte {
		ctr[0], ctr[1], ctr[2], ctr[3] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		return ctr[4-c.Bits/8:]
	}
	prev := iv // feedback: K(i-1); pipeline: A(i)
	if pipeline {
		prev = fixed
	}
	var a []byte
	for i := 1; i <= blocks; i++ {
		if pipeline {
			mac.Reset()
			mac.Write(prev)
			a = mac.Sum(a[:0])
			prev = a
		}
		mac.Reset()
		if c.Bits > 0 && (c.Location == BeforeIter || (prev == nil && c.Location == BeforeFixed)) {
			mac.Write(counter(i))
		}
		if prev != nil {
			mac.Write(prev)
			if c.Bits > 0 && c.Location == BeforeFixed {
				mac.Write(counter(i))
			}
		}
		mac.Write(fixed)
		if c.Bits > 0 && c.Location == AfterFixed {
			mac.Write(counter(i))
		}
		out = mac.Sum(out)
		if iv != nil {
			prev = out[len(out)-h:]
		}
	}
	clear(a)
	res := append([]byte(nil), out[:n]...)
	clear(out)
	return res, nil
}
