package daemon

// Tests of the optional blocks and the keys added after the first schema.

import (
	"bytes"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLeaseTimeConfig(t *testing.T) {
	c, err := ParseConfig([]byte(minimal+"kmip {\n  lease_time = \"90s\"\n}\n"), "kmipd.hcl")
	if err != nil || c.KMIP.LeaseTime != 90*time.Second {
		t.Fatalf("90s: %v", err)
	}
	for src, want := range map[string]string{
		`"1.5s"`:     "whole seconds",
		`"1193047h"`: "at most 4294967295s",
		`"0s"`:       "positive",
	} {
		_, err := ParseConfig([]byte(minimal+"kmip {\n  lease_time = "+src+"\n}\n"), "kmipd.hcl")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "kmip.lease_time") {
			t.Errorf("%s: err = %v, want %q", src, err, want)
		}
	}
}

func TestDeriveBoundsConfig(t *testing.T) {
	c, err := ParseConfig([]byte(minimal+"kmip {\n  max_derive_iterations = 100000\n  max_derive_bytes = 64\n}\n"), "kmipd.hcl")
	if err != nil || c.KMIP.MaxDeriveIterations != 100000 || c.KMIP.MaxDeriveBytes != 64 {
		t.Fatalf("bounds: %+v, %v", c, err)
	}
	if c.KMIP.LeaseTime != defaultConfig().KMIP.LeaseTime {
		t.Errorf("lease_time %v, want the default", c.KMIP.LeaseTime)
	}
	for src, want := range map[string]string{
		"max_derive_iterations = 0":   "kmip.max_derive_iterations must be between 1 and 2147483647",
		"max_derive_iterations = 1.5": "kmip.max_derive_iterations must be a whole number",
		"max_derive_bytes = 1048577":  "kmip.max_derive_bytes must be between 1 and 1048576",
		`max_derive_bytes = "4KiB"`:   "kmip.max_derive_bytes",
	} {
		_, err := ParseConfig([]byte(minimal+"kmip {\n  "+src+"\n}\n"), "kmipd.hcl")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", src, err, want)
		}
	}
}

// TestObjectCacheKeys: objects.cache_bytes is the key; the deprecated
// kek.object_cache_bytes still works, with a positioned warning naming the
// new key; both at once is a positioned error.
func TestObjectCacheKeys(t *testing.T) {
	c, err := ParseConfig([]byte(minimal+"objects {\n  cache_bytes = \"4MiB\"\n}\n"), "kmipd.hcl")
	if err != nil || c.Objects.CacheBytes != 4<<20 || len(c.Warnings) != 0 {
		t.Fatalf("new key: %v %+v %v", err, c, c.Warnings)
	}

	old := minimal + "kek {\n  cache_size = 5\n  object_cache_bytes = \"2MiB\"\n}\n"
	c, err = ParseConfig([]byte(old), "kmipd.hcl")
	if err != nil || c.Objects.CacheBytes != 2<<20 || c.KEK.CacheSize != 5 {
		t.Fatalf("deprecated key: %v %+v", err, c)
	}
	if len(c.Warnings) != 1 {
		t.Fatalf("deprecated key: %d warnings, want 1", len(c.Warnings))
	}
	const want = "kmipd.hcl:16,3-30: kek.object_cache_bytes is deprecated; use objects.cache_bytes"
	if got := diagString(c.Warnings[0]); !strings.HasPrefix(got, want) {
		t.Errorf("warning %q, want %q…", got, want)
	}
	// The warning reaches the operator through the config logger.
	var buf bytes.Buffer
	c.LogWarnings(NewLogger(LogConfig{Level: "info"}, &buf))
	if line := buf.String(); !strings.Contains(line, "[WARN]  kmipd.config: "+want) {
		t.Errorf("logged %q", line)
	}
	// A bad old value is still a bad value.
	if _, err := ParseConfig([]byte(strings.Replace(old, `"2MiB"`, `"lots"`, 1)), "kmipd.hcl"); err == nil ||
		!strings.Contains(err.Error(), "kmipd.hcl:16,3-30: kek.object_cache_bytes does not parse as a size") {
		t.Errorf("bad deprecated value: %v", err)
	}

	both := old + "objects {\n  cache_bytes = \"1MiB\"\n}\n"
	_, err = ParseConfig([]byte(both), "kmipd.hcl")
	if err == nil || !strings.Contains(err.Error(), "kmipd.hcl:16,3-30: kek.object_cache_bytes and objects.cache_bytes are both set") ||
		!strings.Contains(err.Error(), "(at kmipd.hcl:19,3-") {
		t.Errorf("both keys: %v", err)
	}
}

// TestCertifyConfig: the certify block's keys, defaults and errors, each
// pointing at its line.
func TestCertifyConfig(t *testing.T) {
	dir := t.TempDir()
	c, err := ParseConfig([]byte(minimal+"certify {\n  ca_cert = \"pki/issuer.crt\"\n  ca_key = \"/keys/issuer.key\"\n}\n"), filepath.Join(dir, "kmipd.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Certify; got == nil || got.CACert != filepath.Join(dir, "pki/issuer.crt") || got.CAKey != "/keys/issuer.key" ||
		got.Validity != 365*24*time.Hour || !reflect.DeepEqual(got.ExtKeyUsage, []string{"client_auth"}) {
		t.Errorf("certify defaults: %+v", got)
	}
	if c, err := ParseConfig([]byte(minimal), "kmipd.hcl"); err != nil || c.Certify != nil {
		t.Errorf("no certify block: %+v %v", c.Certify, err)
	}
	c, err = ParseConfig([]byte(minimal+"certify {\n  ca_cert = \"a\"\n  ca_key = \"b\"\n  validity = \"720h\"\n  ext_key_usage = [\"server_auth\", \"client_auth\"]\n}\n"), "kmipd.hcl")
	if err != nil || c.Certify.Validity != 720*time.Hour || !reflect.DeepEqual(c.Certify.ExtKeyUsage, []string{"server_auth", "client_auth"}) {
		t.Errorf("certify values: %+v %v", c.Certify, err)
	}
	c, err = ParseConfig([]byte(minimal+"certify {\n  ca_cert = \"a\"\n  ca_key = \"b\"\n  ext_key_usage = []\n}\n"), "kmipd.hcl")
	if err != nil || c.Certify.ExtKeyUsage != nil {
		t.Errorf("no extended key usage: %+v %v", c.Certify, err)
	}
	roundTrip(t, c, "kmipd.hcl")
	for kv, want := range map[string]string{
		`validity = "soon"`:                           "kmipd.hcl:17,3-20: certify.validity does not parse as a duration",
		`validity = "-1h"`:                            "certify.validity must be a positive duration",
		`ext_key_usage = ["client_auth", "teleport"]`: `kmipd.hcl:17,3-46: certify.ext_key_usage has an unknown extended key usage "teleport"`,
		`ext_key_usage = ["any", "any"]`:              `certify.ext_key_usage names "any" twice`,
		`ext_key_usage = "client_auth"`:               "certify.ext_key_usage must be a list of string",
		`ca_cert = ""`:                                "certify.ca_cert must not be empty",
	} {
		key := strings.Fields(kv)[0]
		body := "  ca_cert = \"a\"\n  ca_key = \"b\"\n"
		if key == "ca_cert" {
			body = "  ca_key = \"b\"\n"
		}
		_, err := ParseConfig([]byte(minimal+"certify {\n"+body+"  "+kv+"\n}\n"), "kmipd.hcl")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", kv, err, want)
		}
	}
	if _, err := ParseConfig([]byte(minimal+"certify {\n  ca_cert = \"a\"\n}\n"), "kmipd.hcl"); err == nil || !strings.Contains(err.Error(), `"ca_key" is required`) {
		t.Errorf("missing ca_key: %v", err)
	}
}

// kmip.asynchronous is on by default and can be turned off.
func TestAsynchronousConfig(t *testing.T) {
	c, err := ParseConfig([]byte(minimal), "kmipd.hcl")
	if err != nil || !c.KMIP.Asynchronous {
		t.Fatalf("default: %v, %v", err, c)
	}
	c, err = ParseConfig([]byte(minimal+"kmip {\n  asynchronous = false\n}\n"), "kmipd.hcl")
	if err != nil || c.KMIP.Asynchronous {
		t.Fatalf("false: %v", err)
	}
	if _, err := ParseConfig([]byte(minimal+"kmip {\n  asynchronous = \"sometimes\"\n}\n"), "kmipd.hcl"); err == nil || !strings.Contains(err.Error(), "kmip.asynchronous") {
		t.Fatalf("a non-boolean: %v", err)
	}
}
