package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipclient"
)

// The subcommands of `kmipd client` that print key material or data, and
// only where the user asked for it: get, encrypt and decrypt.

func clientGet(ctx context.Context, e *clientEnv, args []string) error {
	format := e.fs.String("format", "auto", "output encoding: auto (PEM for certificates and public and private keys, raw otherwise), raw (DER for those), pem or hex")
	keyFormat := e.fs.String("key-format", "", "ask the server for this Key Format Type: Raw, TransparentSymmetricKey, PKCS_1, PKCS_8, X_509, ECPrivateKey")
	out := e.fs.String("out", "", "write the material to this file (created 0600) instead of stdout")
	pos, err := e.parse(args, 1, 1)
	if err != nil {
		return err
	}
	switch *format {
	case "auto", "raw", "der", "pem", "hex":
	default:
		return e.usageError("-format must be auto, raw, pem or hex")
	}
	kf, err := enumFlag(e, "key-format", kmip14.TagKeyFormatType, *keyFormat)
	if err != nil {
		return err
	}
	c, err := e.connect()
	if err != nil {
		return err
	}
	o, err := c.Get(ctx, pos[0], kmip14.KeyFormatType(kf))
	if err != nil {
		return err
	}
	defer o.Wipe()
	var material []byte
	_, hasPEM := o.PEMType()
	switch {
	case *format == "pem" || (*format == "auto" && hasPEM):
		if material, err = o.PEM(); err != nil {
			return e.usageError("%v", err)
		}
	case *format == "hex":
		material = []byte(hex.EncodeToString(o.Material) + "\n")
	default:
		material = append([]byte(nil), o.Material...)
	}
	defer clear(material)
	meta := map[string]any{"unique_identifier": pos[0], "object_type": o.Type.String(), "format": o.Form(), "bytes": len(o.Material)}
	if o.Algorithm != 0 {
		meta["cryptographic_algorithm"], meta["cryptographic_length"] = o.Algorithm.String(), o.Length
	}
	if *out == "" && !e.json {
		return e.writeOutput("", material)
	}
	if *out != "" {
		if err := e.writeOutput(*out, material); err != nil {
			return err
		}
		meta["file"] = *out
	} else {
		meta["material"] = hex.EncodeToString(o.Material)
	}
	return e.emit(meta, func(w io.Writer) {
		row := []string{pos[0], o.Type.String(), o.Form(), fmt.Sprint(len(o.Material)), *out}
		table(w, []string{"UNIQUE IDENTIFIER", "OBJECT TYPE", "FORMAT", "BYTES", "WRITTEN TO"}, row)
	})
}

// cipherFlags are encrypt's and decrypt's flags.
type cipherFlags struct {
	mode, padding, hash, iv, aad, in, out *string
}

func addCipherFlags(e *clientEnv) cipherFlags {
	fs := e.fs
	return cipherFlags{
		mode:    fs.String("mode", "", "Block Cipher Mode: GCM, CBC, CTR, ECB, or none for RSA (default GCM; none with an RSA -padding)"),
		padding: fs.String("padding", "", "Padding Method: PKCS5 or None for CBC and ECB (default PKCS5); OAEP or PKCS1_V1_5 for RSA"),
		hash:    fs.String("hash", "", "Hashing Algorithm, for RSA OAEP (default SHA-1)"),
		iv:      fs.String("iv", "", "IV/Counter/Nonce, hex"),
		aad:     fs.String("aad", "", "GCM additional authenticated data, hex"),
		in:      fs.String("in", "", "read the input from this file instead of stdin"),
		out:     fs.String("out", "", "write the output to this file (created 0600) instead of stdout"),
	}
}

// parse parses encrypt's or decrypt's command line: the key's identifier
// and the cipher the flags describe.
func (f cipherFlags) parse(e *clientEnv, args []string) (string, kmipclient.Cipher, error) {
	pos, err := e.parse(args, 1, 1)
	if err != nil {
		return "", kmipclient.Cipher{}, err
	}
	p, err := f.cipher(e)
	return pos[0], p, err
}

// cipher turns the flags into kmipclient.Cipher.
func (f cipherFlags) cipher(e *clientEnv) (kmipclient.Cipher, error) {
	var p kmipclient.Cipher
	pad, err := enumFlag(e, "padding", kmip14.TagPaddingMethod, *f.padding)
	if err != nil {
		return p, err
	}
	p.Padding = kmip14.PaddingMethod(pad)
	switch *f.mode {
	case "":
		if p.Padding != kmip14.PaddingMethodOAEP && p.Padding != kmip14.PaddingMethodPKCS1V1_5 {
			p.Mode = kmip14.BlockCipherModeGCM
		}
	case "none", "None", "NONE":
	default:
		m, err := enumFlag(e, "mode", kmip14.TagBlockCipherMode, *f.mode)
		if err != nil {
			return p, err
		}
		p.Mode = kmip14.BlockCipherMode(m)
	}
	if p.Padding == 0 && (p.Mode == kmip14.BlockCipherModeCBC || p.Mode == kmip14.BlockCipherModeECB) {
		p.Padding = kmip14.PaddingMethodPKCS5
	}
	h, err := enumFlag(e, "hash", kmip14.TagHashingAlgorithm, *f.hash)
	if err != nil {
		return p, err
	}
	p.Hash = kmip14.HashingAlgorithm(h)
	if p.IV, err = hexFlag(e, "iv", *f.iv); err != nil {
		return p, err
	}
	p.AAD, err = hexFlag(e, "aad", *f.aad)
	return p, err
}

// hexFlag decodes a hex flag (nil when empty). Its error does not quote the
// value.
func hexFlag(e *clientEnv, name, s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, e.usageError("-%s is not hex", name)
	}
	return b, nil
}

func clientEncrypt(ctx context.Context, e *clientEnv, args []string) error {
	cf := addCipherFlags(e)
	tagLen := e.fs.Int("tag-length", 0, "GCM tag length in bytes (default 16)")
	id, p, err := cf.parse(e, args)
	if err != nil {
		return err
	}
	p.TagLength = int32(*tagLen)
	data, err := e.readInput(*cf.in)
	if err != nil {
		return err
	}
	defer clear(data)
	c, err := e.connect()
	if err != nil {
		return err
	}
	ct, err := c.Encrypt(ctx, id, data, p)
	if err != nil {
		return err
	}
	iv := ct.IV
	if iv == nil {
		iv = p.IV
	}
	if e.json {
		v := map[string]any{"unique_identifier": id, "iv": hex.EncodeToString(iv), "tag": hex.EncodeToString(ct.Tag)}
		if toStdout(*cf.out) {
			v["data"] = hex.EncodeToString(ct.Data)
		} else if err := e.writeOutput(*cf.out, ct.Data); err != nil {
			return err
		}
		return e.emit(v, nil)
	}
	if err := e.writeOutput(*cf.out, ct.Data); err != nil {
		return err
	}
	// stdout holds the ciphertext: what decrypt will need goes beside it.
	var rows [][]string
	if iv != nil {
		rows = append(rows, []string{"iv", hex.EncodeToString(iv)})
	}
	if ct.Tag != nil {
		rows = append(rows, []string{"tag", hex.EncodeToString(ct.Tag)})
	}
	if rows != nil {
		table(e.stderr, nil, rows...)
	}
	return nil
}

func clientDecrypt(ctx context.Context, e *clientEnv, args []string) error {
	cf := addCipherFlags(e)
	tag := e.fs.String("tag", "", "GCM: the Authenticated Encryption Tag encrypt printed, hex")
	id, p, err := cf.parse(e, args)
	if err != nil {
		return err
	}
	if p.Tag, err = hexFlag(e, "tag", *tag); err != nil {
		return err
	}
	data, err := e.readInput(*cf.in)
	if err != nil {
		return err
	}
	c, err := e.connect()
	if err != nil {
		return err
	}
	plain, err := c.Decrypt(ctx, id, data, p)
	if err != nil {
		return err
	}
	defer clear(plain)
	if e.json && toStdout(*cf.out) {
		return e.emit(map[string]any{"unique_identifier": id, "data": hex.EncodeToString(plain)}, nil)
	}
	return e.writeOutput(*cf.out, plain)
}
