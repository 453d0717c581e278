package daemon

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
)

const examplePath = "../config.example.hcl"

// minimal is the smallest valid file; cases below append to or edit it.
const minimal = `listener {
  cert_file      = "server.crt"
  key_file       = "server.key"
  client_ca_file = "ca.crt"
}
hsm {
  module      = "/usr/lib/softhsm/libsofthsm2.so"
  token_label = "kmipd"
  pin         = "env:KMIPD_HSM_PIN"
}
storage {
  path = "data"
}
`

func TestExampleParses(t *testing.T) {
	c, err := LoadConfig(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	// The example documents the defaults, so it must equal them.
	want := defaultConfig()
	want.Listener.CertFile, want.Listener.KeyFile, want.Listener.ClientCAFile = "/etc/kmipd/server.crt", "/etc/kmipd/server.key", "/etc/kmipd/ca.crt"
	want.HSM.Module, want.HSM.TokenLabel, want.HSM.PIN = "/usr/lib/softhsm/libsofthsm2.so", "kmipd", "env:KMIPD_HSM_PIN"
	want.Storage.Path = "/var/lib/kmipd/badger"
	want.Telemetry = &TelemetryConfig{Address: defaultTelemetryAddress}
	want.Admin = &AdminConfig{Socket: "/run/kmipd/admin.sock"}
	want.Certify = defaultCertify()
	want.Certify.CACert, want.Certify.CAKey = "/etc/kmipd/issuer.crt", "/etc/kmipd/issuer.key"
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("example:\n got %#v\nwant %#v", *c, want)
	}
}

func TestDefaultsAndRelativePaths(t *testing.T) {
	dir := t.TempDir()
	c, err := ParseConfig([]byte(minimal), filepath.Join(dir, "kmipd.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	l := c.Listener
	if l.Address != "0.0.0.0:5696" || l.MinTLSVersion != tls.VersionTLS12 || l.MaxMessageSize != 1<<20 ||
		l.ReadTimeout != 30*time.Second || l.IdleTimeout != 2*time.Minute || l.WriteTimeout != 30*time.Second ||
		l.MaxConnections != 10000 || l.CheckCredentials {
		t.Errorf("listener defaults: %+v", l)
	}
	h := c.HSM
	if h.MaxSessions != 4 || h.MinIdle != 0 || h.SessionWaitTimeout != 5*time.Second || h.IdleTimeout != 30*time.Second ||
		h.MKEKLabel != "kmipd-mkek" || h.HMACLabel != "kmipd-hmac" || h.Slot != nil || h.TokenSerial != "" {
		t.Errorf("hsm defaults: %+v", h)
	}
	if !c.Storage.SyncWrites || c.KEK.CacheTTL != 15*time.Minute || c.KEK.CacheSize != 10000 ||
		c.Log.Level != "info" || c.Log.Format != "text" || c.Telemetry != nil {
		t.Errorf("other defaults: %+v", c)
	}
	if l.CertFile != filepath.Join(dir, "server.crt") || l.ClientCAFile != filepath.Join(dir, "ca.crt") ||
		c.Storage.Path != filepath.Join(dir, "data") {
		t.Errorf("relative paths not resolved against %s: %s %s %s", dir, l.CertFile, l.ClientCAFile, c.Storage.Path)
	}

	src := strings.Replace(minimal, `pin         = "env:KMIPD_HSM_PIN"`, `pin = "file:secret/pin"`, 1) +
		"telemetry {}\nlog {\n level = \"debug\"\n}\n"
	src = strings.Replace(src, `module      = "/usr/lib/softhsm/libsofthsm2.so"`, `module = "libsofthsm2.so"`, 1)
	c, err = ParseConfig([]byte(src), filepath.Join(dir, "kmipd.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if string(c.HSM.PIN) != "file:"+filepath.Join(dir, "secret/pin") || c.HSM.Module != "libsofthsm2.so" {
		t.Errorf("pin %q module %q", string(c.HSM.PIN), c.HSM.Module)
	}
	if c.Telemetry == nil || c.Telemetry.Address != "127.0.0.1:9696" || c.Log.Level != "debug" || c.Log.Format != "text" {
		t.Errorf("telemetry %+v log %+v", c.Telemetry, c.Log)
	}
}

func TestValues(t *testing.T) {
	set := func(block, kv string) string {
		return strings.Replace(minimal, block+" {\n", block+" {\n  "+kv+"\n", 1)
	}
	c, err := ParseConfig([]byte(set("listener", `max_message_size = 65536`)+
		"kek {\n cache_size = \"20\"\n cache_ttl = \"1h\"\n}\n"), "k.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.Listener.MaxMessageSize != 65536 || c.KEK.CacheSize != 20 || c.KEK.CacheTTL != time.Hour {
		t.Errorf("%d %d %v", c.Listener.MaxMessageSize, c.KEK.CacheSize, c.KEK.CacheTTL)
	}
	if c.Objects.CacheBytes != 32<<20 || len(c.Warnings) != 0 {
		t.Errorf("object cache default %d, warnings %v", c.Objects.CacheBytes, c.Warnings)
	}
	for in, want := range map[string]int64{`"0"`: 0, `0`: 0, `"8MiB"`: 8 << 20} {
		c, err := ParseConfig([]byte(minimal+"objects {\n cache_bytes = "+in+"\n}\n"), "k.hcl")
		if err != nil || c.Objects.CacheBytes != want || len(c.Warnings) != 0 {
			t.Errorf("cache_bytes %s: %v %v", in, c, err)
		}
	}
	if _, err := ParseConfig([]byte(minimal+"objects {\n cache_bytes = \"-1\"\n}\n"), "k.hcl"); err == nil ||
		!strings.Contains(err.Error(), "k.hcl:15,2-") || !strings.Contains(err.Error(), "objects.cache_bytes does not parse as a size") {
		t.Errorf("a negative cache_bytes: %v", err)
	}
	for in, want := range map[string]int64{`"512KiB"`: 512 << 10, `"2 MiB"`: 2 << 20, `"1GiB"`: 1 << 30, `"10KB"`: 10000, `"100B"`: 100, `"4096"`: 4096} {
		c, err := ParseConfig([]byte(set("listener", "max_message_size = "+in)), "k.hcl")
		if err != nil || c.Listener.MaxMessageSize != want {
			t.Errorf("size %s: %v %v", in, c, err)
		}
	}
	c, err = ParseConfig([]byte(strings.Replace(set("listener", `min_tls_version = "1.3"`), `token_label = "kmipd"`, "slot = 1872829273", 1)), "k.hcl")
	if err != nil || c.Listener.MinTLSVersion != tls.VersionTLS13 || c.HSM.Slot == nil || *c.HSM.Slot != 1872829273 {
		t.Errorf("tls 1.3 / slot: %v", err)
	}
}

// TestBadValues: every rejected value yields a message naming the key and the
// line it is on.
func TestBadValues(t *testing.T) {
	cases := []struct{ block, kv, want string }{
		{"listener", `address = "nope"`, "listener.address must be host:port"},
		{"listener", `address = "h:99999"`, "listener.address has an invalid port"},
		{"listener", `cert_file = ""`, "listener.cert_file must not be empty"},
		{"listener", `min_tls_version = "1.1"`, "listener.min_tls_version must be one of"},
		{"listener", `max_message_size = "1 furlong"`, "listener.max_message_size does not parse as a size"},
		{"listener", `max_message_size = 0`, "listener.max_message_size must be between"},
		{"listener", `max_message_size = "2GiB"`, "listener.max_message_size must be between"},
		{"listener", `max_message_size = "99999999999999GiB"`, "listener.max_message_size does not parse"},
		{"listener", `read_timeout = "soon"`, "listener.read_timeout does not parse as a duration"},
		{"listener", `idle_timeout = 30`, "listener.idle_timeout does not parse as a duration"},
		{"listener", `write_timeout = "-1s"`, "listener.write_timeout must be a positive duration"},
		{"listener", `max_connections = 0`, "listener.max_connections must be between"},
		{"listener", `max_connections = 1.5`, "listener.max_connections must be a whole number"},
		{"listener", `max_connections = "many"`, "listener.max_connections must be a number"},
		{"listener", `check_credentials = "perhaps"`, "listener.check_credentials must be a bool"},
		{"listener", `address = null`, "listener.address must be set to a value"},
		{"listener", `address = var.addr`, "listener.address must be a constant value"},
		{"listener", `address = ["a"]`, "listener.address must be a string"},
		{"hsm", `module = ""`, "hsm.module must not be empty"},
		{"hsm", `token_serial = "123"`, "exactly one of token_label, token_serial or slot"},
		{"hsm", `slot = -1`, "hsm.slot must be between"},
		{"hsm", `pin = ""`, "hsm.pin must not be empty"},
		{"hsm", `pin = "env:"`, "hsm.pin env: needs an environment variable name"},
		{"hsm", `pin = "file:"`, "hsm.pin file: needs a path"},
		{"hsm", `max_sessions = 1`, "hsm.max_sessions must be between 2"},
		{"hsm", `min_idle = 4`, "hsm.min_idle must be less than max_sessions"},
		{"hsm", `min_idle = -1`, "hsm.min_idle must be between"},
		{"hsm", `session_wait_timeout = "5"`, "hsm.session_wait_timeout does not parse as a duration"},
		{"hsm", `idle_timeout = "0s"`, "hsm.idle_timeout must be a positive duration"},
		{"hsm", `mkek_label = ""`, "hsm.mkek_label must not be empty"},
		{"hsm", `hmac_label = "kmipd-mkek"`, "hsm.hmac_label must differ from mkek_label"},
		{"storage", `sync_writes = 1`, "storage.sync_writes must be a bool"},
		{"storage", `path = 12`, ""}, // numbers convert to strings: accepted
		{"storage", `cache_bytes = "lots"`, "storage.cache_bytes does not parse as a size"},
		{"storage", `index_cache_bytes = 0`, "storage.index_cache_bytes must be between 1 byte"},
		{"storage", `memtable_bytes = "1MiB"`, "storage.memtable_bytes must be between"},
		{"storage", `num_memtables = 0`, "storage.num_memtables must be between 1"},
	}
	for _, tc := range cases {
		// Attributes may not be redefined, so drop the one being replaced.
		key := strings.Fields(tc.kv)[0]
		var lines []string
		for _, ln := range strings.Split(minimal, "\n") {
			if f := strings.Fields(ln); len(f) > 0 && f[0] == key {
				continue
			}
			lines = append(lines, ln)
		}
		src := strings.Join(lines, "\n")
		i := strings.Index(src, tc.block+" {\n") + len(tc.block+" {\n")
		line := strings.Count(src[:i], "\n") + 1
		src = src[:i] + "  " + tc.kv + "\n" + src[i:]
		_, err := ParseConfig([]byte(src), "kmipd.hcl")
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.kv, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted", tc.kv)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q lacks %q", tc.kv, err, tc.want)
		}
		if !strings.HasPrefix(tc.want, "exactly") && !strings.Contains(err.Error(), fmt.Sprintf("kmipd.hcl:%d,3-", line)) {
			t.Errorf("%s: error %q does not point at line %d", tc.kv, err, line)
		}
		var diags hcl.Diagnostics
		if !errors.As(err, &diags) || len(diags) == 0 {
			t.Errorf("%s: no hcl.Diagnostics in %T", tc.kv, err)
		}
	}
}

func TestStructureErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{minimal + "listener {\n}\n", "kmipd.hcl:14,1-9: duplicate listener block"},
		{minimal + "\nbogus {\n}\n", "kmipd.hcl:15,1-6: Unsupported block type"},
		{minimal + "\ntelemetry {\n  port = 9\n}\n", `kmipd.hcl:16,3-7: Unsupported argument: An argument named "port"`},
		{strings.Replace(minimal, "storage {", "storage {\n  paht = 1", 1), `kmipd.hcl:12,3-7: Unsupported argument: An argument named "paht"`},
		{strings.Replace(minimal, `  path = "data"`, "", 1), "kmipd.hcl:11,1-8: storage.path is required"}, // the badger backend's
		{strings.Replace(minimal, "storage {\n  path = \"data\"\n}\n", "", 1), "missing storage block"},
		{"top = 1\n" + minimal, "kmipd.hcl:1,1-4: Unsupported argument"},
		{minimal + "log \"x\" {\n}\n", "Extraneous label for log"},
		{minimal + "kek {\n  cache_ttl = \n", "kmipd.hcl:"},
		{minimal + "kek {\n  inner {\n  }\n}\n", "kmipd.hcl:15,3-8: Unsupported block type"},
	}
	// One run reports structural and value errors together, in file order.
	src := strings.Replace(minimal, `"ca.crt"`, "\"ca.crt\"\n  read_timeout = \"x\"", 1) + "bogus {\n}\n"
	_, err := ParseConfig([]byte(src), "kmipd.hcl")
	if err == nil || !strings.Contains(err.Error(), "kmipd.hcl:5,3-21: listener.read_timeout does not parse as a duration: time: invalid duration \"x\"") ||
		!strings.Contains(err.Error(), "\nkmipd.hcl:15,1-6: Unsupported block type") {
		t.Errorf("combined errors: %v", err)
	}
	for _, tc := range cases {
		_, err := ParseConfig([]byte(tc.src), "kmipd.hcl")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want %q, got %v\n%s", tc.want, err, tc.src)
		}
	}
}

// TestLimits: inputs that would crash or stall hcl's parser are refused first.
func TestLimits(t *testing.T) {
	deep := strings.Replace(minimal, `"server.crt"`, strings.Repeat("(", 30000)+`"x"`+strings.Repeat(")", 30000), 1)
	if _, err := ParseConfig([]byte(deep), "kmipd.hcl"); err == nil || !strings.Contains(err.Error(), "kmipd.hcl:2,83-83: brackets nested more than") {
		t.Errorf("deep nesting: %.200v", err)
	}
	big := minimal + strings.Repeat("# padding\n", maxConfigSize/10)
	if _, err := ParseConfig([]byte(big), "kmipd.hcl"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: %v", err)
	}
	path := filepath.Join(t.TempDir(), "kmipd.hcl")
	if err := os.WriteFile(path, []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: %v", err)
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "absent.hcl")); err == nil {
		t.Error("missing file loaded")
	}
}

func TestResolvePIN(t *testing.T) {
	const secret = "s3cr3t-1234"
	dir := t.TempDir()
	pinFile := filepath.Join(dir, "pin")
	if err := os.WriteFile(pinFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KMIPD_TEST_PIN", secret)
	for _, spec := range []string{secret, "env:KMIPD_TEST_PIN", "file:" + pinFile} {
		c := &Config{HSM: HSMConfig{PIN: Secret(spec)}}
		if pin, err := c.ResolvePIN(); err != nil || pin != secret {
			t.Errorf("%s: %v", spec, err)
		}
	}
	// Relative file: paths resolve against the config file's directory.
	src := strings.Replace(minimal, `"env:KMIPD_HSM_PIN"`, `"file:pin"`, 1)
	c, err := ParseConfig([]byte(src), filepath.Join(dir, "kmipd.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if pin, err := c.ResolvePIN(); err != nil || pin != secret {
		t.Errorf("relative file: %v", err)
	}
	for _, spec := range []string{"env:KMIPD_TEST_UNSET_PIN", "file:" + filepath.Join(dir, "absent"), ""} {
		c := &Config{HSM: HSMConfig{PIN: Secret(spec)}}
		if _, err := c.ResolvePIN(); err == nil {
			t.Errorf("%q: resolved", spec)
		}
	}

	// A literal PIN never shows through fmt, String or errors.
	src = strings.Replace(minimal, `"env:KMIPD_HSM_PIN"`, `"`+secret+`"`, 1)
	if c, err = ParseConfig([]byte(src), "kmipd.hcl"); err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprintf("%v %+v %#v %s %q %x %v %+v %#v", c, c, c, c, c, c, *c, *c, *c)
	if txt, _ := c.HSM.PIN.MarshalText(); bytes.Contains(txt, []byte(secret)) || strings.Contains(out, secret) {
		t.Errorf("PIN leaked: %s", out)
	}
	for _, bad := range []string{
		strings.Replace(src, "token_label", "slot = 1\n  token_label", 1),
		strings.Replace(src, secret, `s3cr3t\q-1234`, 1), // hcl quotes the bad escape's text
		strings.Replace(src, `"`+secret+`"`, `"${`+secret+`}"`, 1),
		strings.Replace(src, `"`+secret+`"`, secret, 1),
	} {
		_, err := ParseConfig([]byte(bad), "kmipd.hcl")
		if err == nil || strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "\\q") {
			t.Errorf("error leaked or missing: %v", err)
		}
	}
}

func TestDevConfigRoundTrip(t *testing.T) {
	dir := t.TempDir()
	c := DevConfig(dir, "127.0.0.1:0", "/usr/lib/softhsm/libsofthsm2.so", 3)
	if c.HSM.MaxSessions != 3 || c.HSM.TokenLabel != DevTokenLabel || c.Listener.Address != "127.0.0.1:0" {
		t.Errorf("dev config: %+v", c)
	}
	if c.Listener.CertFile != filepath.Join(dir, DevPKIDir, "server.crt") || string(c.HSM.PIN) != "file:"+filepath.Join(dir, DevPINFile) {
		t.Errorf("dev paths: %s %s", c.Listener.CertFile, string(c.HSM.PIN))
	}
	roundTrip(t, c, filepath.Join(dir, DevConfigFile))

	// Every other shape WriteHCL renders: slot, serial, telemetry, odd strings.
	slot := uint(7)
	c.HSM.TokenLabel, c.HSM.Slot = "", &slot
	c.Telemetry = &TelemetryConfig{Address: "[::1]:9696"}
	c.Listener.MaxMessageSize, c.Listener.IdleTimeout, c.KEK.CacheTTL = 1000, 90*time.Second, 25*time.Hour
	c.KMIP.LeaseTime, c.KMIP.Asynchronous = 90*time.Minute, false
	c.HSM.PIN = Secret("a\"b\\c${x}%{y}\n\x01é")
	c.Listener.MinTLSVersion, c.Listener.CheckCredentials, c.Storage.SyncWrites = tls.VersionTLS13, true, false
	c.Listener.CredentialsFile = "/etc/kmipd/credentials"
	roundTrip(t, c, filepath.Join(dir, DevConfigFile))
	c.HSM.Slot, c.HSM.TokenSerial = nil, "0123abcd"
	roundTrip(t, c, "elsewhere/kmipd.hcl") // absolute paths: the file's location does not matter

	if d := DevConfig(dir, "", "m.so", 1); d.HSM.MaxSessions != 4 || d.Listener.Address != "0.0.0.0:5696" {
		t.Errorf("dev defaults: %+v", d)
	}
}

func roundTrip(t *testing.T, c *Config, name string) {
	t.Helper()
	var buf bytes.Buffer
	if err := c.WriteHCL(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := ParseConfig(buf.Bytes(), name)
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("round trip:\n got %#v\nwant %#v\n%s", *got, *c, buf.String())
	}
}

func FuzzParseConfig(f *testing.F) {
	if ex, err := os.ReadFile(examplePath); err == nil {
		f.Add(ex)
	}
	f.Add([]byte(minimal))
	f.Add([]byte(minimal + "kek {\n cache_ttl = \"1h\"\n cache_size = 1e3\n}\ntelemetry {}\n"))
	f.Add([]byte(strings.Replace(minimal, `token_label = "kmipd"`, "slot = 3\n  max_sessions = \"2\"", 1)))
	f.Add([]byte("listener {\n  address = \"${1 + 1}\"\n"))
	f.Add([]byte("hsm { pin = [for x in [1] : x] }"))
	f.Add([]byte(minimal + "log {\n level = null\n}\n"))
	f.Add([]byte(minimal + "kek {\n object_cache_bytes = \"1MiB\"\n}\nobjects {}\n"))
	f.Add([]byte{0xff, '{', '\n'})
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := ParseConfig(src, "fuzz.hcl")
		if err != nil {
			return
		}
		// Whatever parses must render and parse back to the same thing.
		var buf bytes.Buffer
		if err := c.WriteHCL(&buf); err != nil {
			t.Fatal(err)
		}
		got, err := ParseConfig(buf.Bytes(), "fuzz.hcl")
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, buf.String())
		}
		c.Warnings = nil // deprecated keys are written under their new names
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip differs\n%s", buf.String())
		}
	})
}

func TestCheckCredentialsNeedsFile(t *testing.T) {
	src, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(src), "check_credentials = false", "check_credentials = true", 1)
	_, err = ParseConfig([]byte(bad), "kmipd.hcl")
	if err == nil || !strings.Contains(err.Error(), "credentials_file") || !strings.Contains(err.Error(), "kmipd.hcl:") {
		t.Fatalf("err = %v, want a positioned credentials_file error", err)
	}
	good := strings.Replace(bad, `# credentials_file = "/etc/kmipd/credentials"`, `credentials_file = "/etc/kmipd/credentials"`, 1)
	c, err := ParseConfig([]byte(good), "kmipd.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Listener.CheckCredentials || c.Listener.CredentialsFile != "/etc/kmipd/credentials" {
		t.Fatalf("listener = %+v", c.Listener)
	}
}

func TestLoadCredentials(t *testing.T) {
	p := filepath.Join(t.TempDir(), "creds")
	if err := os.WriteFile(p, []byte("# comment\nbarbican:s3cret:with:colons\n\nops:pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := loadCredentials(p)
	if err != nil {
		t.Fatal(err)
	}
	if m["barbican"] != "s3cret:with:colons" || m["ops"] != "pw" || len(m) != 2 {
		t.Fatalf("creds = %v", len(m))
	}
	if err := os.WriteFile(p, []byte("nopassword\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadCredentials(p); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Fatalf("err = %v, want a line-numbered error", err)
	}
}
