//go:build !boringcrypto

package server

// boringCrypto: crypto/tls/fipsonly cannot be linked in (see fipsTLS).
const boringCrypto = false
