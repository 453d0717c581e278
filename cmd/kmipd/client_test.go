package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kmipd/kmipd/certs"
	"github.com/kmipd/kmipd/testkit"
)

// `kmipd client` against `kmipd dev` run as a subprocess (testkit), the
// command itself run in-process: every object type round-trips, and every
// failure has its exit code and message.

type clientRun struct {
	code           int
	stdout, stderr string
}

// client runs `kmipd client SUB -dir DEV ARGS...` with stdin.
func client(t *testing.T, dev *testkit.Dev, stdin []byte, sub string, args ...string) clientRun {
	t.Helper()
	full := append([]string{sub, "-dir", dev.Dir}, args...)
	return clientRaw(t, stdin, full...)
}

func clientRaw(t *testing.T, stdin []byte, args ...string) clientRun {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cmdClient(context.Background(), args, bytes.NewReader(stdin), &out, &errOut)
	return clientRun{code, out.String(), errOut.String()}
}

// ok fails the test unless the run exited 0.
func (r clientRun) ok(t *testing.T) clientRun {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	return r
}

// json decodes stdout into a map.
func (r clientRun) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("stdout is not a JSON object: %v\n%s", err, r.stdout)
	}
	return m
}

func (r clientRun) uid(t *testing.T) string {
	t.Helper()
	id, _ := r.json(t)["unique_identifier"].(string)
	if id == "" {
		t.Fatalf("no unique_identifier in %s", r.stdout)
	}
	return id
}

func TestClientCommand(t *testing.T) {
	dev := testkit.StartDev(t, testkit.DevOptions{})

	t.Run("symmetric key: create, get, encrypt and decrypt", func(t *testing.T) {
		id := client(t, dev, nil, "create", "-name", "sym", "-activate", "-json").ok(t).uid(t)
		keyHex := strings.TrimSpace(client(t, dev, nil, "get", id, "-format", "hex").ok(t).stdout)
		file := filepath.Join(t.TempDir(), "key.bin")
		client(t, dev, nil, "get", id, "-out", file).ok(t)
		raw, err := os.ReadFile(file)
		if err != nil || len(raw) != 32 || hex.EncodeToString(raw) != keyHex {
			t.Fatalf("get -out wrote %d bytes (%v); -format hex said %d hex digits", len(raw), err, len(keyHex))
		}
		if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file mode %v", fi.Mode())
		}
		plain := []byte("the quick brown fox\n")
		for _, mode := range []string{"gcm", "cbc", "ctr"} {
			enc := client(t, dev, plain, "encrypt", id, "-mode", mode).ok(t)
			iv, tag := field(enc.stderr, "iv"), field(enc.stderr, "tag")
			if iv == "" || (mode == "gcm") != (tag != "") || enc.stdout == string(plain) {
				t.Fatalf("%s: iv %q tag %q, stderr:\n%s", mode, iv, tag, enc.stderr)
			}
			args := []string{id, "-mode", mode, "-iv", iv}
			if tag != "" {
				args = append(args, "-tag", tag)
			}
			if dec := client(t, dev, []byte(enc.stdout), "decrypt", args...).ok(t); dec.stdout != string(plain) {
				t.Fatalf("%s: decrypt gave %q", mode, dec.stdout)
			}
		}
		// With -json: hex fields, and additional data.
		enc := client(t, dev, plain, "encrypt", id, "-aad", "cafe", "-json").ok(t).json(t)
		data, _ := hex.DecodeString(enc["data"].(string))
		dec := client(t, dev, data, "decrypt", id, "-aad", "cafe", "-iv", enc["iv"].(string), "-tag", enc["tag"].(string), "-json").ok(t).json(t)
		if dec["data"] != hex.EncodeToString(plain) {
			t.Fatalf("JSON round trip: %v", dec)
		}
		// A wrong tag: Cryptographic Failure, exit 1, and no plaintext.
		bad := client(t, dev, data, "decrypt", id, "-aad", "beef", "-iv", enc["iv"].(string), "-tag", enc["tag"].(string))
		if bad.code != exitFailed || !strings.Contains(bad.stderr, "Cryptographic Failure") || bad.stdout != "" {
			t.Fatalf("decrypt with other AAD: %+v", bad)
		}
	})

	t.Run("key pairs: get the public key as PEM", func(t *testing.T) {
		kp := client(t, dev, nil, "create-key-pair", "-name", "kp-rsa").ok(t)
		if !strings.Contains(kp.stdout, "PrivateKey") || !strings.Contains(kp.stdout, "PublicKey") {
			t.Fatalf("create-key-pair table:\n%s", kp.stdout)
		}
		ids := locate(t, dev, "-name", "kp-rsa", "-type", "public-key")
		if len(ids) != 1 {
			t.Fatalf("locate public key: %v", ids)
		}
		pub := pemBlock(t, client(t, dev, nil, "get", ids[0]).ok(t).stdout, "RSA PUBLIC KEY")
		if k, err := x509.ParsePKCS1PublicKey(pub); err != nil || k.N.BitLen() != 2048 {
			t.Fatalf("RSA public key: %v", err)
		}
		spki := pemBlock(t, client(t, dev, nil, "get", ids[0], "-key-format", "x509").ok(t).stdout, "PUBLIC KEY")
		if _, err := x509.ParsePKIXPublicKey(spki); err != nil {
			t.Fatal(err)
		}
		// RSA encryption: OAEP with the public key, back with the private one.
		priv := locate(t, dev, "-name", "kp-rsa", "-type", "private-key")[0]
		client(t, dev, nil, "activate", ids[0]).ok(t)
		client(t, dev, nil, "activate", priv).ok(t)
		ct := client(t, dev, []byte("for your eyes"), "encrypt", ids[0], "-padding", "oaep", "-hash", "sha-256").ok(t).stdout
		if len(ct) != 256 {
			t.Fatalf("RSA-2048 ciphertext of %d bytes", len(ct))
		}
		if got := client(t, dev, []byte(ct), "decrypt", priv, "-padding", "oaep", "-hash", "sha-256").ok(t).stdout; got != "for your eyes" {
			t.Fatalf("RSA decrypt: %q", got)
		}
		var ec []any
		if err := json.Unmarshal([]byte(client(t, dev, nil, "create-key-pair", "-alg", "ec", "-curve", "p-384", "-json").ok(t).stdout), &ec); err != nil || len(ec) != 2 {
			t.Fatalf("EC key pair JSON: %v", err)
		}
		ecPub := ec[1].(map[string]any)["unique_identifier"].(string)
		k, err := x509.ParsePKIXPublicKey(pemBlock(t, client(t, dev, nil, "get", ecPub).ok(t).stdout, "PUBLIC KEY"))
		if err != nil || k.(*ecdsa.PublicKey).Curve != elliptic.P384() {
			t.Fatalf("EC public key: %v", err)
		}
	})

	t.Run("register from files, get back byte for byte", func(t *testing.T) {
		dir := t.TempDir()
		for _, f := range registerFiles(t) {
			path := filepath.Join(dir, f.name)
			if err := os.WriteFile(path, f.data, 0o600); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"-type", f.typ, "-name", "reg-" + f.name, path, "-json"}, f.extra...)
			id := client(t, dev, nil, "register", args...).ok(t).uid(t)
			got := client(t, dev, nil, "get", id, "-format", f.getFormat).ok(t).stdout
			if got != string(f.data) {
				t.Fatalf("%s: get -format %s gave %d bytes, not the %d registered", f.name, f.getFormat, len(got), len(f.data))
			}
			if ids := locate(t, dev, "-name", "reg-"+f.name); !slices.Equal(ids, []string{id}) {
				t.Fatalf("%s: locate by name: %v, want [%s]", f.name, ids, id)
			}
		}
		// From stdin too.
		id := client(t, dev, []byte("from stdin"), "register", "-type", "secret", "-", "-json").ok(t).uid(t)
		if got := client(t, dev, nil, "get", id).ok(t).stdout; got != "from stdin" {
			t.Fatalf("secret from stdin: %q", got)
		}
	})

	t.Run("get-attributes", func(t *testing.T) {
		id := client(t, dev, nil, "create", "-alg", "aes", "-length", "192", "-json").ok(t).uid(t)
		m := client(t, dev, nil, "get-attributes", id, "State", "Cryptographic Length", "Cryptographic Usage Mask", "-json").ok(t).json(t)
		got := map[string]any{}
		for _, a := range m["attributes"].([]any) {
			a := a.(map[string]any)
			got[a["name"].(string)] = a["value"]
		}
		if got["State"] != "PreActive" || got["Cryptographic Length"] != 192.0 || got["Cryptographic Usage Mask"] != "Encrypt|Decrypt|WrapKey|UnwrapKey" {
			t.Fatalf("attributes: %v", got)
		}
		table := client(t, dev, nil, "get-attributes", id).ok(t).stdout
		for _, want := range []string{"ATTRIBUTE", "Cryptographic Algorithm", "AES", "Initial Date", "Digest"} {
			if !strings.Contains(table, want) {
				t.Fatalf("the table lacks %q:\n%s", want, table)
			}
		}
	})

	t.Run("lifecycle: activate, revoke, destroy", func(t *testing.T) {
		id := client(t, dev, nil, "create", "-json").ok(t).uid(t)
		client(t, dev, nil, "activate", id).ok(t)
		if r := client(t, dev, nil, "destroy", id); r.code != exitFailed || !strings.Contains(r.stderr, "Permission Denied") {
			t.Fatalf("destroy while Active: %+v", r)
		}
		client(t, dev, nil, "revoke", id, "-reason", "key-compromise", "-message", "laptop lost").ok(t)
		client(t, dev, nil, "destroy", id).ok(t)
		if r := client(t, dev, nil, "get", id); r.code != exitFailed || !strings.Contains(r.stderr, "Item Not Found") || r.stdout != "" {
			t.Fatalf("get after destroy: %+v", r)
		}
		if state := client(t, dev, nil, "get-attributes", id, "State").ok(t).stdout; !strings.Contains(state, "DestroyedCompromised") {
			t.Fatalf("state:\n%s", state)
		}
		if ids := locate(t, dev, "-state", "destroyed-compromised"); !slices.Contains(ids, id) {
			t.Fatalf("locate -state: %v", ids)
		}
	})

	t.Run("query", func(t *testing.T) {
		m := client(t, dev, nil, "query", "-json").ok(t).json(t)
		if m["vendor"] != "kmipd" || !slices.Contains(m["operations"].([]any), any("Encrypt")) {
			t.Fatalf("query: %v", m)
		}
		if out := client(t, dev, nil, "query").ok(t).stdout; !strings.Contains(out, "Vendor") || !strings.Contains(out, "CreateKeyPair") {
			t.Fatalf("query table:\n%s", out)
		}
	})

	t.Run("failures: exit codes and messages", func(t *testing.T) {
		pki := filepath.Join(dev.Dir, "pki")
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := l.Addr().String()
		l.Close()
		secretFile := filepath.Join(t.TempDir(), "key.hex")
		if err := os.WriteFile(secretFile, []byte("00112233445566778899aabbccddeeffXYZW"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name   string
			args   []string
			code   int
			stderr string
		}{
			{"missing object", []string{"get", "-dir", dev.Dir, "no-such-uid"}, exitFailed, "Item Not Found"},
			{"no subcommand", nil, exitUsage, "Subcommands:"},
			{"unknown subcommand", []string{"fly"}, exitUsage, `unknown subcommand "fly"`},
			{"unknown flag", []string{"get", "-dir", dev.Dir, "-bogus", "x"}, exitUsage, "flag provided but not defined"},
			{"missing uid", []string{"activate", "-dir", dev.Dir}, exitUsage, "1 argument(s) expected, got 0"},
			{"extra argument", []string{"query", "-dir", dev.Dir, "extra"}, exitUsage, "0 argument(s) expected, got 1"},
			{"bad algorithm", []string{"create", "-dir", dev.Dir, "-alg", "rot13"}, exitUsage, "AES"},
			{"bad type", []string{"register", "-dir", dev.Dir, "-type", "key", secretFile}, exitUsage, "-type must be"},
			{"bad hex file", []string{"register", "-dir", dev.Dir, "-type", "symmetric", "-input-format", "hex", secretFile}, exitUsage, "not hex"},
			{"missing file", []string{"register", "-dir", dev.Dir, "-type", "secret", filepath.Join(pki, "none")}, exitUsage, "no such file"},
			{"no server given", []string{"query"}, exitUsage, "give -dir DIR"},
			{"not a dev folder", []string{"query", "-dir", t.TempDir()}, exitUsage, "is not a kmipd dev folder"},
			{"bad iv", []string{"decrypt", "-dir", dev.Dir, "-iv", "xyz", "some-id"}, exitUsage, "-iv is not hex"},
			{"connection refused", []string{"query", "-addr", closed, "-ca", filepath.Join(pki, certs.CACertFile),
				"-cert", filepath.Join(pki, certs.ClientCertFile), "-key", filepath.Join(pki, certs.ClientKeyFile)}, exitConn, "connection refused"},
		} {
			r := clientRaw(t, nil, c.args...)
			if r.code != c.code || !strings.Contains(r.stderr, c.stderr) {
				t.Errorf("%s: exit %d, want %d; stderr %q lacks %q", c.name, r.code, c.code, r.stderr, c.stderr)
			}
			if strings.Contains(r.stderr, "00112233") || strings.Contains(r.stdout, "00112233") {
				t.Errorf("%s: key material from the file was printed", c.name)
			}
		}
		// The output file cannot be written, though the Get succeeded.
		id := client(t, dev, nil, "create", "-json").ok(t).uid(t)
		if r := client(t, dev, nil, "get", id, "-out", filepath.Join(pki, "no", "dir")); r.code != exitOutput {
			t.Errorf("get -out into a missing folder: %+v", r)
		}
		// -json reports the failure on stdout too.
		m := client(t, dev, nil, "get", "no-such-uid", "-json")
		if m.code != exitFailed || m.json(t)["result_reason"] != "ItemNotFound" {
			t.Errorf("get -json of a missing object: %+v", m)
		}
	})

	t.Run("every subcommand answers -h", func(t *testing.T) {
		for name := range clientCmds {
			r := clientRaw(t, nil, name, "-h")
			if r.code != 0 || !strings.Contains(r.stderr, "Usage: kmipd client "+name) || !strings.Contains(r.stderr, "Exit codes") {
				t.Errorf("%s -h: exit %d\n%s", name, r.code, r.stderr)
			}
		}
		var out, errOut bytes.Buffer
		if code := run([]string{"client", "-h"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "create-key-pair") {
			t.Errorf("kmipd client -h: exit %d\n%s", code, out.String())
		}
	})
}

// field is the value after name on a line of encrypt's stderr ("iv  0a1b…").
func field(s, name string) string {
	for _, line := range strings.Split(s, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			return f[1]
		}
	}
	return ""
}

func locate(t *testing.T, dev *testkit.Dev, args ...string) []string {
	t.Helper()
	var ids []string
	for _, v := range client(t, dev, nil, "locate", append(args, "-json")...).ok(t).json(t)["unique_identifiers"].([]any) {
		ids = append(ids, v.(string))
	}
	return ids
}

func pemBlock(t *testing.T, s, typ string) []byte {
	t.Helper()
	b, rest := pem.Decode([]byte(s))
	if b == nil || b.Type != typ || len(rest) != 0 {
		t.Fatalf("want one PEM %q block, got:\n%s", typ, s)
	}
	return b.Bytes
}

type registerFile struct {
	name, typ string
	data      []byte
	extra     []string // more register flags
	getFormat string   // get's -format that gives data back
}

// registerFiles are files of every kind register reads.
func registerFiles(t *testing.T) []registerFile {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	sec1, _ := x509.MarshalECPrivateKey(ecKey)
	spki, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	ca, err := certs.NewCA(certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueClient("registered")
	if err != nil {
		t.Fatal(err)
	}
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	aes := make([]byte, 32)
	_, _ = rand.Read(aes)
	return []registerFile{
		{"aes.bin", "symmetric", aes, nil, "raw"},
		{"aes.hex", "symmetric", []byte(hex.EncodeToString(aes[:16]) + "\n"), []string{"-input-format", "hex"}, "hex"},
		{"password.txt", "secret", []byte("correct horse battery staple"), nil, "raw"},
		{"seed.bin", "secret", aes[:20], []string{"-secret-type", "seed"}, "raw"},
		{"blob.bin", "opaque", []byte{0, 1, 2, 3, 0xfe, 0xff}, nil, "raw"},
		{"cert.pem", "certificate", leaf.CertPEM, nil, "pem"},
		{"cert.der", "certificate", leaf.Cert.Raw, nil, "raw"},
		{"rsa-pub.pem", "public-key", pemOf("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)), nil, "auto"},
		{"ec-pub.der", "public-key", spki, nil, "raw"},
		{"rsa-priv.pem", "private-key", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), nil, "pem"},
		{"ec-priv.der", "private-key", pkcs8, nil, "raw"},
		{"ec-sec1.pem", "private-key", pemOf("EC PRIVATE KEY", sec1), nil, "auto"},
	}
}
