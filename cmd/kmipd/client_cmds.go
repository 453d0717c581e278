package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipclient"
)

// The subcommands of `kmipd client` that manage objects. Each defines its
// flags on e.fs, parses, connects, runs one typed kmipclient call and prints
// a table, or JSON with -json.

// keyFlags are the template flags create, create-key-pair and register share.
type keyFlags struct {
	name     *string
	usage    *string
	activate *bool
}

func addKeyFlags(fs *flag.FlagSet) keyFlags {
	return keyFlags{
		name:     fs.String("name", "", "a Name for the object (Locate finds it by -name)"),
		usage:    fs.String("usage", "", "Cryptographic Usage Mask, e.g. encrypt,decrypt (default: the usual one for the key)"),
		activate: fs.Bool("activate", false, "make the object Active at once (Activation Date now)"),
	}
}

// attributes turns the flags into template attributes (the usage mask
// apart, which the caller places).
func (k keyFlags) attributes(e *clientEnv) ([]kmipclient.Attribute, kmip14.CryptographicUsageMask, error) {
	var l []kmipclient.Attribute
	if *k.name != "" {
		l = append(l, kmipclient.Name(*k.name))
	}
	if *k.activate {
		l = append(l, kmipclient.ActivationDate(time.Now()))
	}
	var m kmip14.CryptographicUsageMask
	if *k.usage != "" {
		var err error
		if m, err = kmipclient.ParseMask(*k.usage); err != nil {
			return nil, 0, e.usageError("-usage: %v", err)
		}
	}
	return l, m, nil
}

// enumFlag parses a flag's value as a value of tag's enumeration (0 when empty).
func enumFlag(e *clientEnv, flagName string, tag ttlv.Tag, s string) (uint32, error) {
	if s == "" {
		return 0, nil
	}
	v, err := kmipclient.ParseEnum(tag, s)
	if err != nil {
		return 0, e.usageError("-%s: %v", flagName, err)
	}
	return v, nil
}

// table prints rows under a header (none if nil), in aligned columns.
func table(w io.Writer, header []string, rows ...[]string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	clean := strings.NewReplacer("\t", " ", "\n", " ", "\r", " ")
	if header != nil {
		rows = append([][]string{header}, rows...)
	}
	for _, r := range rows {
		for i := range r {
			r[i] = clean.Replace(r[i])
		}
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	_ = tw.Flush()
}

type createdObject struct {
	UniqueIdentifier string `json:"unique_identifier"`
	ObjectType       string `json:"object_type"`
}

func (e *clientEnv) printCreated(objs ...createdObject) error {
	var v any = objs[0]
	if len(objs) > 1 {
		v = objs
	}
	return e.emit(v, func(w io.Writer) {
		rows := make([][]string, len(objs))
		for i, o := range objs {
			rows[i] = []string{o.UniqueIdentifier, o.ObjectType}
		}
		table(w, []string{"UNIQUE IDENTIFIER", "OBJECT TYPE"}, rows...)
	})
}

func clientCreate(ctx context.Context, e *clientEnv, args []string) error {
	alg := e.fs.String("alg", "AES", "Cryptographic Algorithm: AES, DES3, HMAC_SHA256, ...")
	length := e.fs.Int("length", 0, "key length in bits (default: the server's, 256 for AES)")
	kf := addKeyFlags(e.fs)
	if _, err := e.parse(args, 0, 0); err != nil {
		return err
	}
	a, err := enumFlag(e, "alg", kmip14.TagCryptographicAlgorithm, *alg)
	if err != nil {
		return err
	}
	attrs, mask, err := kf.attributes(e)
	if err != nil {
		return err
	}
	c, err := e.connect()
	if err != nil {
		return err
	}
	id, err := c.Create(ctx, kmipclient.KeySpec{Algorithm: kmip14.CryptographicAlgorithm(a),
		Length: int32(*length), UsageMask: mask, Attributes: attrs})
	if err != nil {
		return err
	}
	return e.printCreated(createdObject{id, "SymmetricKey"})
}

func clientCreateKeyPair(ctx context.Context, e *clientEnv, args []string) error {
	alg := e.fs.String("alg", "RSA", "Cryptographic Algorithm: RSA or EC")
	length := e.fs.Int("length", 0, "key length in bits (default: 2048 for RSA; EC: the curve's)")
	curve := e.fs.String("curve", "", "EC curve: P-256, P-384, P-521 or SECP256K1 (default P-256)")
	kf := addKeyFlags(e.fs)
	if _, err := e.parse(args, 0, 0); err != nil {
		return err
	}
	a, err := enumFlag(e, "alg", kmip14.TagCryptographicAlgorithm, *alg)
	if err != nil {
		return err
	}
	rc, err := enumFlag(e, "curve", kmip14.TagRecommendedCurve, *curve)
	if err != nil {
		return err
	}
	spec := kmipclient.KeySpec{Algorithm: kmip14.CryptographicAlgorithm(a), Length: int32(*length), Curve: kmip14.RecommendedCurve(rc)}
	switch spec.Algorithm {
	case kmip14.CryptographicAlgorithmRSA:
		if spec.Length == 0 {
			spec.Length = 2048
		}
	case kmip14.CryptographicAlgorithmEC, kmip14.CryptographicAlgorithmECDSA:
		if spec.Length == 0 && spec.Curve == 0 {
			spec.Curve = kmip14.RecommendedCurveP_256
		}
	}
	if spec.Attributes, spec.UsageMask, err = kf.attributes(e); err != nil {
		return err
	}
	c, err := e.connect()
	if err != nil {
		return err
	}
	priv, pub, err := c.CreateKeyPair(ctx, spec)
	if err != nil {
		return err
	}
	return e.printCreated(createdObject{priv, "PrivateKey"}, createdObject{pub, "PublicKey"})
}

// registerTypes are register's -type values.
var registerTypes = map[string]kmip14.ObjectType{
	"symmetric": kmip14.ObjectTypeSymmetricKey, "secret": kmip14.ObjectTypeSecretData,
	"opaque": kmip14.ObjectTypeOpaqueObject, "certificate": kmip14.ObjectTypeCertificate,
	"public-key": kmip14.ObjectTypePublicKey, "private-key": kmip14.ObjectTypePrivateKey,
}

func clientRegister(ctx context.Context, e *clientEnv, args []string) error {
	typ := e.fs.String("type", "", "symmetric, secret, opaque, certificate (PEM or DER), public-key or private-key (RSA or EC, PEM or DER) (required)")
	inFormat := e.fs.String("input-format", "raw", "symmetric, secret and opaque: raw (the file's bytes) or hex")
	alg := e.fs.String("alg", "AES", "symmetric: Cryptographic Algorithm")
	secretType := e.fs.String("secret-type", "Password", "secret: Secret Data Type, Password or Seed")
	opaqueType := e.fs.String("opaque-type", "0x80000001", "opaque: Opaque Data Type (KMIP 1.4 defines none: an extension value)")
	kf := addKeyFlags(e.fs)
	pos, err := e.parse(args, 1, 1)
	if err != nil {
		return err
	}
	ot, ok := registerTypes[*typ]
	if !ok {
		return e.usageError("-type must be one of symmetric, secret, opaque, certificate, public-key, private-key")
	}
	if *inFormat != "raw" && *inFormat != "hex" {
		return e.usageError("-input-format must be raw or hex")
	}
	b, err := e.readInput(pos[0])
	if err != nil {
		return err
	}
	defer clear(b)
	o, err := registerObject(e, ot, b, *inFormat == "hex", *alg, *secretType, *opaqueType)
	if err != nil {
		return err
	}
	defer o.Wipe()
	attrs, mask, err := kf.attributes(e)
	if err != nil {
		return err
	}
	if mask == 0 {
		mask = defaultUsage(o)
	}
	if mask != 0 {
		attrs = append(attrs, kmipclient.UsageMask(mask))
	}
	c, err := e.connect()
	if err != nil {
		return err
	}
	id, err := c.Register(ctx, o, attrs...)
	if err != nil {
		return err
	}
	return e.printCreated(createdObject{id, o.Type.String()})
}

// registerObject builds what register sends from the file's bytes b.
func registerObject(e *clientEnv, ot kmip14.ObjectType, b []byte, isHex bool, alg, secretType, opaqueType string) (*kmipclient.Object, error) {
	var err error
	var o *kmipclient.Object
	switch ot {
	case kmip14.ObjectTypeCertificate:
		o, err = kmipclient.ParseCertificate(b)
	case kmip14.ObjectTypePublicKey:
		o, err = kmipclient.ParsePublicKey(b)
	case kmip14.ObjectTypePrivateKey:
		o, err = kmipclient.ParsePrivateKey(b)
	}
	if err != nil {
		return nil, e.usageError("the file holds %v", err)
	}
	if o != nil {
		return o, nil
	}
	data := append([]byte(nil), b...)
	if isHex {
		// hex's own errors quote the offending byte: not for key material.
		n, err := hex.Decode(data, []byte(strings.TrimSpace(string(b))))
		if err != nil {
			clear(data)
			return nil, e.usageError("the file is not hex")
		}
		data = data[:n]
	}
	switch ot {
	case kmip14.ObjectTypeSymmetricKey:
		a, err := enumFlag(e, "alg", kmip14.TagCryptographicAlgorithm, alg)
		if err != nil {
			return nil, err
		}
		return kmipclient.SymmetricKey(kmip14.CryptographicAlgorithm(a), data), nil
	case kmip14.ObjectTypeSecretData:
		t, err := enumFlag(e, "secret-type", kmip14.TagSecretDataType, secretType)
		if err != nil {
			return nil, err
		}
		return kmipclient.SecretData(kmip14.SecretDataType(t), data), nil
	}
	t, err := enumFlag(e, "opaque-type", kmip14.TagOpaqueDataType, opaqueType)
	if err != nil {
		return nil, err
	}
	return kmipclient.OpaqueObject(kmip14.OpaqueDataType(t), data), nil
}

// defaultUsage is the usage mask kmipd gives keys it generates, for a key
// registered without -usage: without one, a registered key could not be used.
func defaultUsage(o *kmipclient.Object) kmip14.CryptographicUsageMask {
	const (
		enc, dec, wrap, unwrap = kmip14.CryptographicUsageMaskEncrypt, kmip14.CryptographicUsageMaskDecrypt, kmip14.CryptographicUsageMaskWrapKey, kmip14.CryptographicUsageMaskUnwrapKey
		sign, verify           = kmip14.CryptographicUsageMaskSign, kmip14.CryptographicUsageMaskVerify
	)
	rsa := o.Algorithm == kmip14.CryptographicAlgorithmRSA
	switch o.Type {
	case kmip14.ObjectTypeSymmetricKey:
		return enc | dec | wrap | unwrap
	case kmip14.ObjectTypePrivateKey:
		if rsa {
			return sign | dec | unwrap
		}
		return sign
	case kmip14.ObjectTypePublicKey:
		if rsa {
			return verify | enc | wrap
		}
		return verify
	}
	return 0
}

func clientLocate(ctx context.Context, e *clientEnv, args []string) error {
	name := e.fs.String("name", "", "objects with this Name")
	typ := e.fs.String("type", "", "objects of this Object Type: SymmetricKey, PrivateKey, Certificate, SecretData, ...")
	alg := e.fs.String("alg", "", "objects of this Cryptographic Algorithm")
	state := e.fs.String("state", "", "objects in this State: PreActive, Active, Deactivated, Compromised, Destroyed")
	max := e.fs.Int("max", 0, "at most this many (default: all)")
	if _, err := e.parse(args, 0, 0); err != nil {
		return err
	}
	var attrs []kmipclient.Attribute
	if *name != "" {
		attrs = append(attrs, kmipclient.Name(*name))
	}
	for _, f := range []struct {
		flag, val string
		tag       ttlv.Tag
		attr      func(uint32) kmipclient.Attribute
	}{
		{"type", *typ, kmip14.TagObjectType, func(v uint32) kmipclient.Attribute { return kmipclient.ObjectType(kmip14.ObjectType(v)) }},
		{"alg", *alg, kmip14.TagCryptographicAlgorithm, func(v uint32) kmipclient.Attribute {
			return kmipclient.Algorithm(kmip14.CryptographicAlgorithm(v))
		}},
		{"state", *state, kmip14.TagState, func(v uint32) kmipclient.Attribute { return kmipclient.State(kmip14.State(v)) }},
	} {
		v, err := enumFlag(e, f.flag, f.tag, f.val)
		if err != nil {
			return err
		}
		if v != 0 {
			attrs = append(attrs, f.attr(v))
		}
	}
	c, err := e.connect()
	if err != nil {
		return err
	}
	ids, err := c.Locate(ctx, int32(*max), attrs...)
	if err != nil {
		return err
	}
	return e.emit(map[string]any{"unique_identifiers": ids}, func(w io.Writer) {
		if len(ids) == 0 {
			fmt.Fprintln(e.stderr, "no objects found")
			return
		}
		rows := make([][]string, len(ids))
		for i, id := range ids {
			rows[i] = []string{id}
		}
		table(w, []string{"UNIQUE IDENTIFIER"}, rows...)
	})
}

func clientGetAttributes(ctx context.Context, e *clientEnv, args []string) error {
	pos, err := e.parse(args, 1, -1)
	if err != nil {
		return err
	}
	c, err := e.connect()
	if err != nil {
		return err
	}
	attrs, err := c.GetAttributes(ctx, pos[0], pos[1:]...)
	if err != nil {
		return err
	}
	type jsonAttr struct {
		Name  string `json:"name"`
		Index int32  `json:"index"`
		Value any    `json:"value"`
	}
	list := make([]jsonAttr, len(attrs))
	rows := make([][]string, len(attrs))
	for i, a := range attrs {
		list[i] = jsonAttr{a.Name, a.Index, a.JSON()}
		rows[i] = []string{a.Name, fmt.Sprint(a.Index), a.Text()}
	}
	return e.emit(map[string]any{"unique_identifier": pos[0], "attributes": list}, func(w io.Writer) {
		table(w, []string{"ATTRIBUTE", "INDEX", "VALUE"}, rows...)
	})
}

// lifecycle runs activate, revoke and destroy: one identifier, one call;
// check, when set, validates the flags once parsed.
func lifecycle(ctx context.Context, e *clientEnv, args []string, done string, check func() error,
	call func(*kmipclient.Client, context.Context, string) error) error {
	pos, err := e.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if check != nil {
		if err := check(); err != nil {
			return err
		}
	}
	c, err := e.connect()
	if err != nil {
		return err
	}
	if err := call(c, ctx, pos[0]); err != nil {
		return err
	}
	return e.emit(map[string]string{"unique_identifier": pos[0], "done": done}, func(w io.Writer) {
		fmt.Fprintf(w, "%s %s\n", done, pos[0])
	})
}

func clientActivate(ctx context.Context, e *clientEnv, args []string) error {
	return lifecycle(ctx, e, args, "activated", nil, (*kmipclient.Client).Activate)
}

func clientDestroy(ctx context.Context, e *clientEnv, args []string) error {
	return lifecycle(ctx, e, args, "destroyed", nil, (*kmipclient.Client).Destroy)
}

func clientRevoke(ctx context.Context, e *clientEnv, args []string) error {
	reason := e.fs.String("reason", "Unspecified", "Revocation Reason: Unspecified, KeyCompromise, CACompromise, AffiliationChanged, Superseded, CessationOfOperation, PrivilegeWithdrawn")
	message := e.fs.String("message", "", "Revocation Message")
	var code uint32
	check := func() (err error) {
		code, err = enumFlag(e, "reason", kmip14.TagRevocationReasonCode, *reason)
		return err
	}
	return lifecycle(ctx, e, args, "revoked", check, func(c *kmipclient.Client, ctx context.Context, id string) error {
		return c.Revoke(ctx, id, kmip14.RevocationReasonCode(code), *message)
	})
}

func clientQuery(ctx context.Context, e *clientEnv, args []string) error {
	if _, err := e.parse(args, 0, 0); err != nil {
		return err
	}
	c, err := e.connect()
	if err != nil {
		return err
	}
	info, err := c.Query(ctx)
	if err != nil {
		return err
	}
	ops := make([]string, len(info.Operations))
	for i, op := range info.Operations {
		ops[i] = op.String()
	}
	types := make([]string, len(info.ObjectTypes))
	for i, t := range info.ObjectTypes {
		types[i] = t.String()
	}
	v := c.Version()
	return e.emit(map[string]any{"vendor": info.Vendor, "protocol_version": v.String(), "operations": ops, "object_types": types},
		func(w io.Writer) {
			table(w, []string{"QUERY", "ANSWER"},
				[]string{"Vendor", info.Vendor},
				[]string{"Protocol version asked", v.String()},
				[]string{"Operations", strings.Join(ops, ", ")},
				[]string{"Object types", strings.Join(types, ", ")})
		})
}
