package server

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
)

// Identity is the owner key of a client: the lowercase hex SHA-256 of its
// certificate's SubjectPublicKeyInfo (as minio/kes does). Hashing the key,
// not the certificate, lets a client renew its certificate for the same key
// and keep its objects; a new key is a new owner.
func Identity(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}
