package derive

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/pbkdf2"
	"fmt"
	"hash"
)

// PBKDF2Key is PBKDF2 (RFC 8018 §5.2) with HMAC over newHash as its PRF:
// the password is the derivation key.
func PBKDF2Key(newHash func() hash.Hash, password, salt []byte, iterations, n int) ([]byte, error) {
	if newHash == nil {
		return nil, fmt.Errorf("%w: PBKDF2 needs a Hashing Algorithm for its HMAC", ErrParameter)
	}
	if salt == nil {
		return nil, fmt.Errorf("%w: PBKDF2 needs a Salt", ErrParameter)
	}
	if iterations < 1 {
		return nil, fmt.Errorf("%w: PBKDF2 needs an Iteration Count of at least 1", ErrParameter)
	}
	if n < 1 {
		return nil, fmt.Errorf("%w: %d bytes requested", ErrLength, n)
	}
	out, err := pbkdf2.Key(newHash, string(password), salt, iterations, n)
	if err != nil {
		return nil, fmt.Errorf("%w: PBKDF2: %v", ErrParameter, err)
	}
	return out, nil
}

// Hash is the HASH method: "a hash over the derivation key or the derivation
// data" (§4.6), truncated to n bytes. It hashes data when the request carries
// Derivation Data and the key otherwise. Both at once is refused, as PyKMIP's
// server refuses it: the specification's "or" does not say which one a client
// sending both meant, and a wrong guess would silently produce another key.
func Hash(newHash func() hash.Hash, key, data []byte, n int) ([]byte, error) {
	if newHash == nil {
		return nil, fmt.Errorf("%w: HASH needs a Hashing Algorithm", ErrParameter)
	}
	in := key
	switch {
	case data != nil && len(key) > 0:
		return nil, fmt.Errorf("%w: HASH hashes either the derivation key or the Derivation Data, not both", ErrParameter)
	case data != nil:
		in = data
	}
	h := newHash()
	h.Write(in)
	return truncate(h.Sum(nil), n, "HASH")
}

// HMACKey is the HMAC method: HMAC(key, data) over the Derivation Data
// (§4.6), truncated to n bytes; at most the hash's output size.
func HMACKey(newHash func() hash.Hash, key, data []byte, n int) ([]byte, error) {
	if newHash == nil {
		return nil, fmt.Errorf("%w: HMAC needs a Hashing Algorithm", ErrParameter)
	}
	if data == nil {
		return nil, fmt.Errorf("%w: HMAC needs Derivation Data", ErrParameter)
	}
	m := hmac.New(newHash, key)
	m.Write(data)
	return truncate(m.Sum(nil), n, "HMAC")
}

// HKDFKey is HKDF (RFC 5869): extract with salt (absent = zeros, as RFC 5869
// §2.2 says), expand with data as info, n bytes of at most 255 hash outputs.
func HKDFKey(newHash func() hash.Hash, key, salt, data []byte, n int) ([]byte, error) {
	if newHash == nil {
		return nil, fmt.Errorf("%w: HKDF needs a Hashing Algorithm", ErrParameter)
	}
	if limit := 255 * newHash().Size(); n < 1 || n > limit {
		return nil, fmt.Errorf("%w: HKDF yields 1 to %d bytes with this hash, %d requested", ErrLength, limit, n)
	}
	out, err := hkdf.Key(newHash, key, salt, string(data), n)
	if err != nil {
		return nil, fmt.Errorf("%w: HKDF: %v", ErrParameter, err)
	}
	return out, nil
}

// Encrypt is the ENCRYPT method: the Derivation Data encrypted under the
// derivation key, truncated to n bytes. iv nil means the client sent none;
// enc then gets an empty IV, as the Derivation Parameters table (§4.6) says a server assumes.
func Encrypt(enc Encrypter, key, iv, data []byte, n int) ([]byte, error) {
	if enc == nil {
		return nil, fmt.Errorf("%w: ENCRYPT needs an encryption algorithm and mode", ErrParameter)
	}
	if data == nil {
		return nil, fmt.Errorf("%w: ENCRYPT needs Derivation Data", ErrParameter)
	}
	if iv == nil {
		iv = []byte{}
	}
	out, err := enc(key, iv, data)
	if err != nil {
		return nil, fmt.Errorf("%w: ENCRYPT: %w", ErrParameter, err)
	}
	return truncate(out, n, "ENCRYPT")
}

// truncate returns a copy of the first n bytes of out, or ErrLength when out
// is shorter; out is wiped either way, so no derived byte beyond n lingers.
func truncate(out []byte, n int, method string) ([]byte, error) {
	defer clear(out)
	if n < 1 || n > len(out) {
		return nil, fmt.Errorf("%w: %s yields %d bytes here, %d requested", ErrLength, method, len(out), n)
	}
	return append([]byte(nil), out[:n]...), nil
}
