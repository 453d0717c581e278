// Package secrets_test runs real client sessions — secrets registered, keys
// created and read back, a key pair's private key read back, data
// encrypted, and requests that fail on purpose while carrying key bytes —
// against kmipd at trace level, then scans every log line and every error
// message the client got for those bytes in any usual encoding.
package secrets_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"
	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/conformance"
	"github.com/kmipd/kmipd/kmipmsg"
	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/testkit"
	"github.com/kmipd/kmipd/tests/hostile"
)

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func params(children ...*tree.Node) *tree.Node {
	return tree.Struct(kmip14.TagCryptographicParameters, children...)
}

var gcm = params(tree.Enum(kmip14.TagBlockCipherMode, uint32(kmip14.BlockCipherModeGCM)), tree.Int(kmip14.TagTagLength, 16))

// session drives one identity through everything that handles key
// material and returns every Result Message the server sent.
func session(t *testing.T, c *hostile.Conn, v *vault) []string {
	t.Helper()
	var messages []string
	do := func(items ...*tree.Node) []hostile.Result {
		t.Helper()
		rs := c.Do(t, hostile.ContinueOnError(items...))
		for _, r := range rs {
			if r.Message != "" {
				messages = append(messages, r.Message)
			}
		}
		return rs
	}
	material := func(r hostile.Result) []byte {
		t.Helper()
		m := hostile.FindBytes(hostile.WantOK(t, r), kmip14.TagKeyMaterial)
		if m == nil {
			t.Fatalf("no key material in %v", r.Payload)
		}
		return m
	}
	// Registered secrets, then read back.
	secretData, aesKey := random(32), random(32)
	password := []byte("correct horse battery staple " + hex.EncodeToString(random(8)))
	v.add(t, "registered secret data", secretData)
	v.add(t, "registered AES key", aesKey)
	v.add(t, "registered password", password)
	rs := do(hostile.RegisterSecret(secretData), hostile.RegisterAES(aesKey), hostile.RegisterSecret(password))
	for i, want := range [][]byte{secretData, aesKey, password} {
		uid := hostile.UIDOf(hostile.WantOK(t, rs[i]))
		if got := material(do(hostile.Item(kmip14.OperationGet, hostile.UID(uid)))[0]); !bytes.Equal(got, want) {
			t.Fatalf("registered secret %d read back wrong", i)
		}
	}
	// Created keys, read back.
	var created []string
	for _, bits := range []int32{128, 256} {
		uid := hostile.UIDOf(hostile.WantOK(t, do(hostile.CreateAES(bits))[0]))
		created = append(created, uid)
		v.add(t, "created AES key", material(do(hostile.Item(kmip14.OperationGet, hostile.UID(uid)))[0]))
	}
	// A key pair; the private key read back.
	pair := hostile.WantOK(t, do(hostile.CreateKeyPair(2048))[0])
	priv, _ := pair.Child(kmip14.TagPrivateKeyUniqueIdentifier).TextValue()
	v.addRSA(t, "created RSA private key", material(do(hostile.Item(kmip14.OperationGet, hostile.UID(priv)))[0]))
	// Data through the keys: plaintext is as secret as the key.
	plaintext := random(64)
	v.add(t, "plaintext", plaintext)
	do(hostile.Item(kmip14.OperationActivate, hostile.UID(created[1])))
	enc := hostile.WantOK(t, do(hostile.Item(kmip14.OperationEncrypt, hostile.UID(created[1]), gcm.Clone(), tree.Bytes(kmip14.TagData, plaintext)))[0])
	ct, _ := enc.Child(kmip14.TagData).BytesValue()
	iv, _ := enc.Child(kmip14.TagIVCounterNonce).BytesValue()
	tag, _ := enc.Child(kmip14.TagAuthenticatedEncryptionTag).BytesValue()
	dec := hostile.WantOK(t, do(hostile.Item(kmip14.OperationDecrypt, hostile.UID(created[1]), gcm.Clone(), tree.Bytes(kmip14.TagData, ct),
		tree.Bytes(kmip14.TagIVCounterNonce, iv), tree.Bytes(kmip14.TagAuthenticatedEncryptionTag, tag)))[0])
	if got, _ := dec.Child(kmip14.TagData).BytesValue(); !bytes.Equal(got, plaintext) {
		t.Fatalf("decrypted %x", got)
	}

	// A KMIP Credential: its password bound on first use, then refused
	// when another comes with the same username. Neither may show.
	user := "user-" + hex.EncodeToString(random(4))
	goodPW, badPW := "good "+hex.EncodeToString(random(12)), "bad "+hex.EncodeToString(random(12))
	v.add(t, "credential password", []byte(goodPW))
	v.add(t, "wrong credential password", []byte(badPW))
	asUser := func(pw string, items ...*tree.Node) []hostile.Result {
		t.Helper()
		rs := c.Do(t, kmipmsg.Request(kmipmsg.Version{Major: 1, Minor: 4},
			kmipmsg.Options{Credential: kmipmsg.UsernamePassword(user, pw)}, items...))
		for _, r := range rs {
			if r.Message != "" {
				messages = append(messages, r.Message)
			}
		}
		return rs
	}
	hostile.WantOK(t, asUser(goodPW, hostile.CreateAES(128))[0])
	if r := asUser(badPW, hostile.CreateAES(128))[0]; r.OK() {
		t.Fatal("a wrong credential password was accepted")
	}

	// Requests that fail while carrying key bytes.
	bad := random(33)
	v.add(t, "refused key material", bad)
	badTag := append([]byte{}, tag...)
	badTag[0] ^= 1
	fails := do(
		// Register keeps material it will only refuse at use (KMIP §4.3), but
		// not a Cryptographic Length that contradicts it, nor material of the
		// wrong type.
		hostile.Item(kmip14.OperationRegister, tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSymmetricKey)),
			tree.Struct(kmip14.TagTemplateAttribute),
			tree.Struct(kmip14.TagSymmetricKey, tree.Struct(kmip14.TagKeyBlock,
				tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw)),
				tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, bad[:17])),
				tree.Enum(kmip14.TagCryptographicAlgorithm, uint32(kmip14.CryptographicAlgorithmAES)),
				tree.Int(kmip14.TagCryptographicLength, 256)))), // 17 bytes are not 256 bits
		hostile.Item(kmip14.OperationRegister, tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypePrivateKey)),
			tree.Struct(kmip14.TagTemplateAttribute),
			tree.Struct(kmip14.TagPrivateKey, tree.Struct(kmip14.TagKeyBlock,
				tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypePKCS_8)),
				tree.Struct(kmip14.TagKeyValue, tree.Text(kmip14.TagKeyMaterial, hex.EncodeToString(bad))), // PKCS#8 is a Byte String
				tree.Enum(kmip14.TagCryptographicAlgorithm, uint32(kmip14.CryptographicAlgorithmRSA)),
				tree.Int(kmip14.TagCryptographicLength, 2048)))),
		hostile.Item(kmip14.OperationRegister, tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSecretData)),
			tree.Struct(kmip14.TagSecretData, tree.Enum(kmip14.TagSecretDataType, uint32(kmip14.SecretDataTypePassword)),
				tree.Struct(kmip14.TagKeyBlock, tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeOpaque)),
					tree.Struct(kmip14.TagKeyValue, tree.Text(kmip14.TagKeyMaterial, hex.EncodeToString(bad)))))),
		hostile.Item(kmip14.OperationDecrypt, hostile.UID(created[1]), gcm.Clone(), tree.Bytes(kmip14.TagData, ct),
			tree.Bytes(kmip14.TagIVCounterNonce, iv), tree.Bytes(kmip14.TagAuthenticatedEncryptionTag, badTag)),
		hostile.Item(kmip14.OperationEncrypt, hostile.UID(created[0]), gcm.Clone(), tree.Bytes(kmip14.TagData, bad)), // key not Active
		hostile.Item(kmip14.OperationEncrypt, hostile.UID(priv), tree.Bytes(kmip14.TagData, bad)),                    // no padding given
		hostile.Item(kmip14.OperationGet, hostile.UID(created[0]), tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeTransparentECPrivateKey))),
		hostile.Item(kmip14.OperationGet, hostile.UID(hex.EncodeToString(bad))),
		hostile.Item(kmip14.OperationLocate, hostile.Attr("x-secret", tree.Bytes(0, bad)), tree.Int(kmip14.TagMaximumItems, -1)),
	)
	for i, r := range fails {
		if r.OK() {
			t.Errorf("deliberately bad request %d succeeded", i)
		}
	}
	// A malformed message whose bytes carry the secret, as text that is
	// not UTF-8: the decode error must describe it, not quote it.
	frame := append([]byte{0x42, 0x00, 0x78, byte(ttlv.TypeStructure), 0, 0, 0, 0}, 0x42, 0x00, 0x55, byte(ttlv.TypeTextString), 0, 0, 0, 40)
	frame = append(frame, append(append([]byte{0xff}, bad...), make([]byte, 6)...)...)
	binary.BigEndian.PutUint32(frame[4:8], uint32(len(frame)-8))
	resp, err := c.RoundTripBytes(frame)
	if err != nil {
		t.Fatalf("malformed message: %v", err)
	}
	r := hostile.Only(t, resp)
	hostile.WantFailure(t, r, kmip14.ResultReasonInvalidMessage)
	return append(messages, r.Message)
}

// TestSecretsStaySecretInProcess: the whole stack in this process, every
// component logging at trace level into one buffer. Also scanned for: the
// owners' pKEKs, unwrapped here through the HSM exactly as kek does.
func TestSecretsStaySecretInProcess(t *testing.T) {
	e := hostile.StartServer(t, hostile.Options{LogLevel: hclog.Trace})
	v := newVault()
	var messages []string
	for i := range e.Owners {
		messages = append(messages, session(t, e.Dial(i), v)...)
	}
	for i, owner := range e.Owners {
		rec, err := e.Store().Get(context.Background(), "pkek/"+owner)
		if err != nil {
			t.Fatal(err)
		}
		// version(1) | len(2) | wrapped | mac; AAD "kmipd/pkek/v1\0" owner.
		n := int(binary.BigEndian.Uint16(rec[1:3]))
		pkek, err := e.HSM.Unwrap(context.Background(), rec[3:3+n], append([]byte("kmipd/pkek/v1\x00"), owner...))
		if err != nil {
			t.Fatalf("unwrap pKEK %d: %v", i, err)
		}
		v.add(t, "pKEK", pkek)
	}
	e.Stop()
	logs := e.Logs()
	if !strings.Contains(logs, "[TRACE]") && !strings.Contains(logs, "[DEBUG]") {
		t.Fatalf("no trace or debug output: the log level did not take")
	}
	v.scan(t, "the in-process log", logs)
	v.scan(t, "a Result Message", strings.Join(messages, "\n"))
	t.Logf("scanned %d KiB of log and %d messages for %d needles", len(logs)>>10, len(messages), v.size())
}

// TestSecretsStaySecretInKmipdDev: the real binary, `kmipd dev -log-level
// trace`, its stdout and stderr captured. Also scanned for: the HSM PIN.
func TestSecretsStaySecretInKmipdDev(t *testing.T) {
	d := testkit.StartDev(t, testkit.DevOptions{LogLevel: "trace"})
	v := newVault()
	var messages []string
	for _, cl := range []*testkit.Client{d.Client(t), d.NewIdentity(t, "second")} {
		cfg, err := conformance.TLSConfig(cl.CAFile, cl.CertFile, cl.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ServerName = "localhost"
		c, err := hostile.DialAddr(d.Addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		messages = append(messages, session(t, c, v)...)
		c.Close()
	}
	pin, err := os.ReadFile(filepath.Join(d.Dir, "hsm.pin"))
	if err != nil {
		t.Fatal(err)
	}
	pin = bytes.TrimSpace(pin)
	if len(pin) >= rawWin {
		v.add(t, "HSM PIN", pin)
	}
	d.Stop()
	logs := d.Log()
	if !strings.Contains(logs, "[TRACE]") && !strings.Contains(logs, "[DEBUG]") {
		t.Fatalf("no trace or debug output: the log level did not take")
	}
	v.scan(t, "kmipd's output", logs)
	v.scan(t, "a Result Message", strings.Join(messages, "\n"))
	t.Logf("scanned %d KiB of output and %d messages for %d needles", len(logs)>>10, len(messages), v.size())
}
