//go:build boringcrypto

package server

// boringCrypto: crypto/tls/fipsonly may be linked in (see fipsTLS).
const boringCrypto = true
