package kmipops

// Caller is the authenticated client of one request.
type Caller struct {
	// Identity is the owner key: lowercase hex SHA-256 of the client
	// certificate's SubjectPublicKeyInfo (see DEVELOPERS.md).
	Identity string
	// CommonName is the certificate's subject CN, for logs and audit only.
	CommonName string
	// Principal is the credential identity the request's KMIP Credential
	// names under Identity ("" without one), once verified: Process sets
	// it (credentials.go); what a server passes in is ignored.
	Principal string
}
