package kmipops

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/subtle"
	"io"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/internal/aesmodes"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// Symmetric Encrypt and Decrypt: AES and Triple DES in ECB, CBC (padding
// None or PKCS5), CTR, and AES in GCM.

var errDecrypt = Errorf(kmip14.ResultReasonCryptographicFailure, "decryption failed")

// blockCipher builds the key's block cipher. A Cryptographic Algorithm in
// the parameters must agree with the key's.
func blockCipher(k *opKey, cp cryptoParams) (cipher.Block, error) {
	if cp.alg != 0 && cp.alg != k.alg {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Cryptographic Algorithm %s in the parameters does not match the key's %s", cp.alg, k.alg)
	}
	switch k.alg {
	case kmip14.CryptographicAlgorithmAES:
		b, err := aes.NewCipher(k.sym)
		if err != nil {
			return nil, Errorf(kmip14.ResultReasonCryptographicFailure, "AES key must be 16, 24 or 32 bytes")
		}
		return b, nil
	case kmip14.CryptographicAlgorithmDES3:
		key := k.sym
		if len(key) == 16 { // two-key Triple DES: K1 K2 K1
			key = append(append(make([]byte, 0, 24), key...), key[:8]...)
			defer clear(key)
		}
		b, err := des.NewTripleDESCipher(key)
		if err != nil {
			return nil, Errorf(kmip14.ResultReasonCryptographicFailure, "Triple DES key must be 16 or 24 bytes")
		}
		return b, nil
	case 0:
		return nil, Errorf(kmip14.ResultReasonInvalidField, "key has no Cryptographic Algorithm")
	}
	return nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "%s keys cannot be used for Encrypt or Decrypt", k.alg)
}

// startSymmetric sets up Encrypt or Decrypt with a symmetric key.
func startSymmetric(p *Processor, ic *itemCtx, k *opKey, cp cryptoParams, req *tree.Node, decrypt bool) (cryptoSession, []*tree.Node, error) {
	b, err := blockCipher(k, cp)
	if err != nil {
		return nil, nil, err
	}
	if cp.ivFields || cp.ctrInit || (cp.ctrBits != 0 && cp.ctrBits != 128) {
		return nil, nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "IV field lengths, Initial Counter Value and partial Counter Length are not supported")
	}
	iv, hasIV, err := payloadBytes(req, kmip14.TagIVCounterNonce)
	if err != nil {
		return nil, nil, err
	}
	aad, hasAAD, err := payloadBytes(req, kmip14.TagAuthenticatedEncryptionAdditionalData)
	if err != nil {
		return nil, nil, err
	}
	if cp.mode != kmip14.BlockCipherModeGCM && (hasAAD || req.Child(kmip14.TagAuthenticatedEncryptionTag) != nil) {
		return nil, nil, Errorf(kmip14.ResultReasonInvalidField, "authenticated encryption fields need GCM")
	}
	if cp.mode != kmip14.BlockCipherModeECB && cp.mode != kmip14.BlockCipherModeCBC &&
		cp.padding != 0 && cp.padding != kmip14.PaddingMethodNone {
		return nil, nil, Errorf(kmip14.ResultReasonInvalidField, "Padding Method %s does not apply to %s", cp.padding, cp.mode)
	}
	bs := b.BlockSize()
	// getIV returns the IV to use and, when the server made it, the field
	// that returns it to the client (KMIP 1.4 §4.29).
	getIV := func(genLen int, valid func(int) bool) ([]byte, []*tree.Node, error) {
		switch {
		case hasIV && !decrypt && cp.randomIV:
			return nil, nil, Errorf(kmip14.ResultReasonInvalidField, "IV/Counter/Nonce given although Random IV asks the server for one")
		case hasIV:
			if !valid(len(iv)) {
				return nil, nil, Errorf(kmip14.ResultReasonInvalidField, "IV/Counter/Nonce of %d bytes is not valid for %s", len(iv), cp.mode)
			}
			return iv, nil, nil
		case decrypt:
			return nil, nil, Errorf(kmip14.ResultReasonInvalidMessage, "missing IV/Counter/Nonce")
		}
		// Without an IV the server makes one even when Random IV is not
		// set: reusing a fixed IV would be the dangerous default.
		gen := make([]byte, genLen)
		if _, err := io.ReadFull(p.opts.Rand, gen); err != nil {
			return nil, nil, err
		}
		return gen, []*tree.Node{tree.Bytes(kmip14.TagIVCounterNonce, gen)}, nil
	}
	blockIV := func(n int) bool { return n == bs }
	switch cp.mode {
	case kmip14.BlockCipherModeECB:
		if hasIV {
			return nil, nil, Errorf(kmip14.ResultReasonInvalidField, "ECB takes no IV/Counter/Nonce")
		}
		pad, err := blockPadding(cp)
		if err != nil {
			return nil, nil, err
		}
		return &blockSession{m: ecbMode{b, decrypt}, pad: pad, decrypt: decrypt}, nil, nil
	case kmip14.BlockCipherModeCBC:
		pad, err := blockPadding(cp)
		if err != nil {
			return nil, nil, err
		}
		v, first, err := getIV(bs, blockIV)
		if err != nil {
			return nil, nil, err
		}
		var m cipher.BlockMode
		if decrypt {
			m = cipher.NewCBCDecrypter(b, v)
		} else {
			m = cipher.NewCBCEncrypter(b, v)
		}
		return &blockSession{m: m, pad: pad, decrypt: decrypt}, first, nil
	case kmip14.BlockCipherModeCTR:
		v, first, err := getIV(bs, blockIV)
		if err != nil {
			return nil, nil, err
		}
		return ctrSession{cipher.NewCTR(b, v)}, first, nil
	case kmip14.BlockCipherModeGCM:
		if ic.v.minor < 4 {
			// Before 1.4 there is no Authenticated Encryption Tag field to
			// carry the tag: GCM without it would be unverifiable.
			return nil, nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "GCM needs KMIP 1.4 (Authenticated Encryption Tag)")
		}
		if bs != aesmodes.BlockSize {
			return nil, nil, Errorf(kmip14.ResultReasonInvalidField, "GCM needs a 128-bit block cipher")
		}
		if cp.tagLen != 0 && (cp.tagLen < aesmodes.MinTagSize || cp.tagLen > aesmodes.MaxTagSize) {
			// General Failure is what the OASIS CS-BC-M-GCM-1 case expects.
			return nil, nil, Errorf(kmip14.ResultReasonGeneralFailure, "invalid GCM tag length %d", cp.tagLen)
		}
		genLen := aesmodes.StdNonceSize
		if cp.ivBits != 0 {
			if cp.ivBits%8 != 0 || cp.ivBits < 64 || cp.ivBits/8 > gcmMaxNonce {
				return nil, nil, Errorf(kmip14.ResultReasonInvalidField, "IV Length %d bits not supported for GCM", cp.ivBits)
			}
			genLen = int(cp.ivBits / 8)
		}
		v, first, err := getIV(genLen, func(n int) bool { return n > 0 && n <= gcmMaxNonce })
		if err != nil {
			return nil, nil, err
		}
		g := &gcmSession{b: b, iv: v, aad: aad, tagLen: int(cp.tagLen), decrypt: decrypt, streamed: opensStream(req)}
		if g.streamed && !decrypt {
			if g.stream, err = aesmodes.NewGCMStream(b, v, aad); err != nil {
				return nil, nil, err
			}
		}
		return g, first, nil
	case 0:
		return nil, nil, Errorf(kmip14.ResultReasonInvalidMessage, "Block Cipher Mode is required (in the request or the key's Cryptographic Parameters)")
	}
	return nil, nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "Block Cipher Mode %s not supported", cp.mode)
}

// opensStream reports whether a request opens a stream.
func opensStream(req *tree.Node) bool {
	init, _ := payloadBool(req, kmip14.TagInitIndicator)
	fin, _ := payloadBool(req, kmip14.TagFinalIndicator)
	return init && !fin
}

func blockPadding(cp cryptoParams) (bool, error) {
	switch cp.padding {
	case 0, kmip14.PaddingMethodNone:
		return false, nil
	case kmip14.PaddingMethodPKCS5:
		return true, nil
	}
	return false, Errorf(kmip14.ResultReasonFeatureNotSupported, "Padding Method %s not supported", cp.padding)
}

// ecbMode is electronic codebook mode, which Go leaves out of crypto/cipher.
type ecbMode struct {
	b   cipher.Block
	dec bool
}

func (e ecbMode) BlockSize() int { return e.b.BlockSize() }

func (e ecbMode) CryptBlocks(dst, src []byte) {
	bs := e.b.BlockSize()
	for i := 0; i+bs <= len(src); i += bs {
		if e.dec {
			e.b.Decrypt(dst[i:i+bs], src[i:i+bs])
		} else {
			e.b.Encrypt(dst[i:i+bs], src[i:i+bs])
		}
	}
}

// blockSession runs ECB or CBC over parts, holding back a partial block
// (and, when unpadding, the last full block until the end).
type blockSession struct {
	m       cipher.BlockMode
	pad     bool
	decrypt bool
	buf     []byte
}

func (s *blockSession) update(data []byte) ([]byte, error) {
	s.buf = append(s.buf, data...)
	bs := s.m.BlockSize()
	n := len(s.buf) / bs * bs
	if s.decrypt && s.pad && n == len(s.buf) && n > 0 {
		n -= bs
	}
	out := make([]byte, n)
	s.m.CryptBlocks(out, s.buf[:n])
	s.buf = append(s.buf[:0], s.buf[n:]...)
	return out, nil
}

func (s *blockSession) final(*tree.Node) ([]byte, []*tree.Node, error) {
	bs := s.m.BlockSize()
	switch {
	case s.pad && !s.decrypt:
		// PKCS#5 (PKCS#7 for 16-byte blocks): always 1..bs bytes of value n.
		n := bs - len(s.buf)
		for range n {
			s.buf = append(s.buf, byte(n))
		}
		out := make([]byte, len(s.buf))
		s.m.CryptBlocks(out, s.buf)
		return out, nil, nil
	case s.pad:
		if len(s.buf) != bs {
			return nil, nil, errDecrypt
		}
		out := make([]byte, bs)
		s.m.CryptBlocks(out, s.buf)
		pt, ok := unpadPKCS5(out, bs)
		if !ok {
			return nil, nil, errDecrypt
		}
		return pt, nil, nil
	case len(s.buf) != 0 && s.decrypt:
		return nil, nil, errDecrypt
	case len(s.buf) != 0:
		return nil, nil, Errorf(kmip14.ResultReasonInvalidField, "data is not a multiple of the %d-byte block and no padding was asked for", bs)
	}
	return nil, nil, nil
}

func (s *blockSession) held() int { return len(s.buf) }

// unpadPKCS5 checks and strips the padding of the last block without
// branching on the padding bytes; only the verdict is revealed, which the
// Decrypt result reveals anyway.
func unpadPKCS5(b []byte, bs int) ([]byte, bool) {
	n := len(b)
	p := int(b[n-1])
	good := subtle.ConstantTimeLessOrEq(1, p) & subtle.ConstantTimeLessOrEq(p, bs)
	for i := 0; i < bs; i++ {
		in := subtle.ConstantTimeLessOrEq(i+1, p)
		eq := subtle.ConstantTimeByteEq(b[n-1-i], byte(p))
		good &= 1 ^ (in &^ eq)
	}
	if good != 1 {
		return nil, false
	}
	return b[:n-p], true
}

// ctrSession is CTR mode: output part by part, nothing held.
type ctrSession struct{ s cipher.Stream }

func (c ctrSession) update(data []byte) ([]byte, error) {
	out := make([]byte, len(data))
	c.s.XORKeyStream(out, data)
	return out, nil
}

func (ctrSession) final(*tree.Node) ([]byte, []*tree.Node, error) { return nil, nil, nil }
func (ctrSession) held() int                                      { return 0 }

// gcmMaxNonce bounds a GCM nonce, in bytes: anything longer is a client bug,
// not a nonce.
const gcmMaxNonce = 256

// gcmSession is GCM Encrypt or Decrypt. A single-part request is one
// aesmodes.GCMSeal or GCMOpen call at the end (Go's cipher.AEAD for a 96-bit
// nonce, aesmodes' own GCM for the other lengths of CS-BC-M-GCM-2). A
// streamed encryption releases ciphertext part by part (stream); a streamed
// decryption holds the ciphertext and releases plaintext only once the tag
// has been checked, never before.
type gcmSession struct {
	b        cipher.Block
	iv, aad  []byte
	tagLen   int // 0: 16 for Encrypt, the tag's length for Decrypt
	decrypt  bool
	streamed bool
	stream   *aesmodes.GCMStream // streamed encryption (CS-BC-M-GCM-3)
	buf      []byte
}

func (g *gcmSession) update(data []byte) ([]byte, error) {
	switch {
	case g.stream != nil:
		if g.stream.Len()+uint64(len(data)) > aesmodes.MaxBytes {
			// Past this the 32-bit counter would wrap and reuse keystream.
			return nil, Errorf(kmip14.ResultReasonPermissionDenied, "GCM message longer than %d bytes", uint64(aesmodes.MaxBytes))
		}
		out := make([]byte, len(data))
		if err := g.stream.Seal(out, data); err != nil {
			return nil, err
		}
		return out, nil
	case g.streamed:
		g.buf = append(g.buf, data...)
	default:
		g.buf = data // one part: the request outlives the session, no copy
	}
	return nil, nil
}

func (g *gcmSession) final(req *tree.Node) ([]byte, []*tree.Node, error) {
	if !g.decrypt {
		tl := g.tagLen
		if tl == 0 {
			tl = aesmodes.MaxTagSize
		}
		if g.stream != nil {
			tag, err := g.stream.Tag(tl)
			if err != nil {
				return nil, nil, err
			}
			return nil, []*tree.Node{tree.Bytes(kmip14.TagAuthenticatedEncryptionTag, tag)}, nil
		}
		ct, tag, err := aesmodes.GCMSeal(g.b, g.iv, g.buf, g.aad, tl)
		if err != nil {
			return nil, nil, err
		}
		return ct, []*tree.Node{tree.Bytes(kmip14.TagAuthenticatedEncryptionTag, tag)}, nil
	}
	tag, ok, err := payloadBytes(req, kmip14.TagAuthenticatedEncryptionTag)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, Errorf(kmip14.ResultReasonInvalidMessage, "missing Authenticated Encryption Tag")
	}
	if g.tagLen != 0 && len(tag) != g.tagLen {
		return nil, nil, Errorf(kmip14.ResultReasonInvalidField, "Authenticated Encryption Tag is %d bytes, Tag Length says %d", len(tag), g.tagLen)
	}
	if len(tag) < aesmodes.MinTagSize || len(tag) > aesmodes.MaxTagSize {
		return nil, nil, errDecrypt
	}
	pt, err := aesmodes.GCMOpen(g.b, g.iv, g.buf, g.aad, tag)
	if err != nil {
		return nil, nil, errDecrypt
	}
	return pt, nil, nil
}

func (g *gcmSession) held() int { return len(g.buf) }
