// Package secp256k1 is ECDSA over the SEC 2 curve secp256k1 (KMIP 1.4
// §9.1.3.2.5 Recommended Curve SECP256K1), which Go's crypto/ecdsa and
// crypto/x509 do not implement: key generation, SEC 1 v2 §4.1 signatures
// with RFC 6979 deterministic nonces, verification, SEC 1 point encoding,
// and the DER key formats kmipd serves for other curves (RFC 5915
// ECPrivateKey, PKCS#8 and SubjectPublicKeyInfo with OID 1.3.132.0.10).
//
// Arithmetic. Field and scalar elements are four 64-bit limbs in Montgomery
// form (mont.go), computed with math/bits without branches or table indexes
// that depend on their values. Points are projective (X:Y:Z) and use the
// complete addition and doubling formulas for a = 0 of Renes, Costello and
// Batina (eprint 2015/1060, algorithms 7 and 9), so the identity and P + P
// need no special case. Scalar multiplication is a fixed 4-bit window over
// all 64 nibbles with a table lookup that reads every entry. Inversions are
// Fermat exponentiations by public exponents.
//
// Constant time, honestly: the code is written so that neither branches nor
// memory addresses depend on a private key or a nonce, but it has not been
// audited or measured (dudect, ctgrind), and Go gives no guarantee that the
// compiler keeps it so. math/big appears only on public values: the
// moduli's constants at start-up, the signature's DER encoding (r and s)
// and the tests. Treat it as a careful software
// implementation, not as an HSM: kmipd's own keys and the NIST curves do not
// use it.
//
// Randomness. Signatures take no random input: the nonce is RFC 6979's
// HMAC-DRBG over the private key and the digest, with HMAC over the hash the
// digest was made with, so a weak or failed random source cannot leak the
// key through nonces, and the same key and digest give the same signature.
// Only key generation reads a random source (rejection sampling, no bias).
package secp256k1
