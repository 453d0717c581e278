// Package aesmodes holds the block cipher modes kmipd writes itself because
// Go's standard library lacks them: CMAC (NIST SP 800-38B, RFC 4493), GCM
// with any nonce length, a short tag and part-by-part encryption (SP
// 800-38D), and AES Key Wrap with and without padding (RFC 3394, RFC 5649;
// SP 800-38F KW and KWP).
//
// It knows nothing of KMIP: callers decide which parameters a request may
// use and what a failure means to their client. Bad lengths are errors,
// never panics; no error carries key or data bytes.
package aesmodes

import "errors"

// The sentinels; test for them with errors.Is.
var (
	// ErrLength reports a key, block, nonce, tag or input length the mode
	// does not take.
	ErrLength = errors.New("aesmodes: invalid length")
	// ErrTooLong reports a GCM message past SP 800-38D's limit, beyond which
	// the 32-bit counter would wrap and reuse keystream.
	ErrTooLong = errors.New("aesmodes: message longer than GCM allows")
	// ErrFinished reports use of a GCMStream after its tag was taken.
	ErrFinished = errors.New("aesmodes: GCM stream already finished")
	// ErrAuth reports a GCM tag or a key wrap integrity check that does not
	// verify: the input was altered or the key is wrong.
	ErrAuth = errors.New("aesmodes: message authentication failed")
)
