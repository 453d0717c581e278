package daemon

import (
	"crypto/tls"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"

	"github.com/kmipd/kmipd/audit"
	"github.com/kmipd/kmipd/kmipops"
)

// Limits that keep hcl's parser out of trouble: it recurses once per nesting
// level (100k parentheses exhaust the goroutine stack, a fatal error) and
// heredocs parse in quadratic time. Real configurations are a few KiB, depth 2.
const (
	maxConfigSize    = 64 << 10
	maxConfigNesting = 64
)

// LoadConfig reads and parses the file at path.
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	src, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return ParseConfig(src, path)
}

// checkShape enforces the size and nesting limits, counting brackets crudely
// (inside strings and comments too): the limit is far above any real file.
func checkShape(src []byte, filename string) error {
	if len(src) > maxConfigSize {
		return fmt.Errorf("%s: configuration file is larger than %d bytes", filename, maxConfigSize)
	}
	depth, pos := 0, hcl.Pos{Line: 1, Column: 1}
	for i, b := range src {
		switch b {
		case '(', '[', '{':
			if depth++; depth > maxConfigNesting {
				pos.Byte = i
				rng := hcl.Range{Filename: filename, Start: pos, End: pos}
				return &ConfigError{Diags: hcl.Diagnostics{{Severity: hcl.DiagError,
					Summary: fmt.Sprintf("brackets nested more than %d deep", maxConfigNesting), Subject: &rng}}}
			}
		case ')', ']', '}':
			depth = max(depth-1, 0)
		case '\n':
			pos.Line, pos.Column = pos.Line+1, 0
		}
		pos.Column++
	}
	return nil
}

// schema lists every block and key; "!" marks a required key. A block
// named "a.b" is a block b nested in block a. Keys are kept as
// *hcl.Attribute so each value is checked with a message that names the key
// and points at its line; hcl itself rejects unknown keys and blocks.
var schema = []struct {
	block    string
	required bool
	keys     []string
}{
	{"listener", true, []string{"address", "!cert_file", "!key_file", "!client_ca_file", "min_tls_version",
		"max_message_size", "read_timeout", "idle_timeout", "write_timeout", "request_timeout", "max_connections", "check_credentials", "credentials_file"}},
	{"hsm", true, []string{"!module", "token_label", "token_serial", "slot", "!pin", "max_sessions", "min_idle",
		"session_wait_timeout", "idle_timeout", "mkek_label", "hmac_label", "cluster_max_sessions"}},
	{"storage", true, append([]string{"backend"}, badgerKeys...)}, // path: required by badger (decodeStorage)
	{"storage.postgres", false, []string{"url", "password", "max_conns"}},
	{"kek", false, []string{"cache_ttl", "cache_size", "object_cache_bytes"}}, // object_cache_bytes: deprecated, see objectCache
	{"objects", false, []string{"cache_bytes"}},
	{"kmip", false, []string{"lease_time", "max_derive_iterations", "max_derive_bytes", "asynchronous",
		"credentials", "credential_hash_iterations", "default_object_group", "assign_default_group"}},
	{"log", false, []string{"level", "format"}},
	{"telemetry", false, []string{"address"}},
	{"audit", false, []string{"!file"}},
	{"admin", false, []string{"!socket"}},
	{"certify", false, []string{"!ca_cert", "!ca_key", "validity", "ext_key_usage"}},
}

// structure checks blocks and keys against schema and returns each present
// block's attributes by (dotted) name, and where each block begins.
func structure(body hcl.Body) (map[string]hcl.Attributes, map[string]hcl.Range, hcl.Diagnostics) {
	out, at := map[string]hcl.Attributes{}, map[string]hcl.Range{}
	var diags hcl.Diagnostics
	// children returns the schema of the blocks nested in parent ("" for
	// the file), with their keys.
	children := func(parent string) ([]hcl.BlockHeaderSchema, map[string][]string) {
		var hs []hcl.BlockHeaderSchema
		keys := map[string][]string{}
		for _, s := range schema {
			name, ok := strings.CutPrefix(s.block, parent)
			if !ok || strings.Contains(name, ".") {
				continue
			}
			hs = append(hs, hcl.BlockHeaderSchema{Type: name})
			keys[name] = s.keys
		}
		return hs, keys
	}
	var walk func(prefix string, blocks hcl.Blocks, keys map[string][]string)
	walk = func(prefix string, blocks hcl.Blocks, keys map[string][]string) {
		first := map[string]*hcl.Block{}
		for _, blk := range blocks {
			name := prefix + blk.Type
			if prev := first[blk.Type]; prev != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "duplicate " + name + " block",
					Detail: "the first is at " + prev.DefRange.String(), Subject: blk.DefRange.Ptr()})
				continue
			}
			first[blk.Type], at[name] = blk, blk.DefRange
			nested, nestedKeys := children(name + ".")
			bs := &hcl.BodySchema{Blocks: nested}
			for _, k := range keys[blk.Type] {
				key, req := strings.CutPrefix(k, "!")
				bs.Attributes = append(bs.Attributes, hcl.AttributeSchema{Name: key, Required: req})
			}
			c, ds := blk.Body.Content(bs)
			diags = append(diags, ds...)
			out[name] = c.Attributes
			walk(name+".", c.Blocks, nestedKeys)
		}
	}
	top, keys := children("")
	content, ds := body.Content(&hcl.BodySchema{Blocks: top})
	diags = append(diags, ds...)
	walk("", content.Blocks, keys)
	for _, s := range schema {
		if _, ok := at[s.block]; s.required && !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "missing " + s.block + " block",
				Detail: "a " + s.block + " block is required", Subject: body.MissingItemRange().Ptr()})
		}
	}
	return out, at, diags
}

// ParseConfig parses src; filename is used in messages and relative paths are
// resolved against its directory.
func ParseConfig(src []byte, filename string) (*Config, error) {
	if err := checkShape(src, filename); err != nil {
		return nil, err
	}
	// A fresh parser each time: hclparse caches files by name.
	file, diags := hclparse.NewParser().ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, configError(diags)
	}
	// Structural errors do not stop here, so one run reports bad values too.
	blocks, at, diags := structure(file.Body)
	base := filepath.Dir(filename)
	if abs, err := filepath.Abs(base); err == nil {
		base = abs
	}
	d := &decoder{base: base, diags: diags}
	c := defaultConfig()

	l, rl := &c.Listener, blocks["listener"]
	d.str(rl["address"], "listener.address", &l.Address, checkHostPort)
	d.path(rl["cert_file"], "listener.cert_file", &l.CertFile)
	d.path(rl["key_file"], "listener.key_file", &l.KeyFile)
	d.path(rl["client_ca_file"], "listener.client_ca_file", &l.ClientCAFile)
	var tlsv string
	if d.str(rl["min_tls_version"], "listener.min_tls_version", &tlsv, oneOf("1.2", "1.3")) {
		l.MinTLSVersion = map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}[tlsv]
	}
	d.size(rl["max_message_size"], "listener.max_message_size", &l.MaxMessageSize, 1, 1<<30)
	d.duration(rl["read_timeout"], "listener.read_timeout", &l.ReadTimeout)
	d.duration(rl["idle_timeout"], "listener.idle_timeout", &l.IdleTimeout)
	d.duration(rl["write_timeout"], "listener.write_timeout", &l.WriteTimeout)
	d.duration(rl["request_timeout"], "listener.request_timeout", &l.RequestTimeout)
	d.integer(rl["max_connections"], "listener.max_connections", &l.MaxConnections, 1, math.MaxInt32)
	d.boolean(rl["check_credentials"], "listener.check_credentials", &l.CheckCredentials)
	d.path(rl["credentials_file"], "listener.credentials_file", &l.CredentialsFile)
	// check_credentials defaults to false, so when it is true the key is present.
	if a := rl["check_credentials"]; l.CheckCredentials && l.CredentialsFile == "" && a != nil {
		d.errf(a.Range, "listener.check_credentials needs listener.credentials_file",
			"checking KMIP credentials needs a file of user:password lines to check them against")
	}

	h, rh := &c.HSM, blocks["hsm"]
	if d.str(rh["module"], "hsm.module", &h.Module, nonEmpty) && strings.ContainsRune(h.Module, filepath.Separator) {
		h.Module = d.resolve(h.Module) // a bare library name is left to the dynamic loader's search path
	}
	selectors := 0
	for _, a := range []*hcl.Attribute{rh["token_label"], rh["token_serial"], rh["slot"]} {
		if a != nil {
			selectors++
		}
	}
	d.str(rh["token_label"], "hsm.token_label", &h.TokenLabel, nonEmpty)
	d.str(rh["token_serial"], "hsm.token_serial", &h.TokenSerial, nonEmpty)
	var slot int
	if d.integer(rh["slot"], "hsm.slot", &slot, 0, math.MaxInt64) {
		u := uint(slot)
		h.Slot = &u
	}
	if _, ok := blocks["hsm"]; ok && selectors != 1 {
		rng := at["hsm"]
		for _, a := range []*hcl.Attribute{rh["slot"], rh["token_serial"], rh["token_label"]} {
			if a != nil {
				rng = a.Range
			}
		}
		d.errf(rng, "hsm needs exactly one of token_label, token_serial or slot", "found %d", selectors)
	}
	var pin string
	if d.str(rh["pin"], "hsm.pin", &pin, checkPIN) {
		if p, ok := strings.CutPrefix(pin, "file:"); ok {
			pin = "file:" + d.resolve(p)
		}
		h.PIN = Secret(pin)
	}
	d.integer(rh["max_sessions"], "hsm.max_sessions", &h.MaxSessions, 2, 1<<16)
	if d.integer(rh["min_idle"], "hsm.min_idle", &h.MinIdle, 0, 1<<16) && h.MinIdle >= h.MaxSessions {
		d.errf(rh["min_idle"].Range, "hsm.min_idle must be less than max_sessions", "the login session counts towards max_sessions (%d)", h.MaxSessions)
	}
	d.duration(rh["session_wait_timeout"], "hsm.session_wait_timeout", &h.SessionWaitTimeout)
	d.duration(rh["idle_timeout"], "hsm.idle_timeout", &h.IdleTimeout)
	d.str(rh["mkek_label"], "hsm.mkek_label", &h.MKEKLabel, nonEmpty)
	if d.str(rh["hmac_label"], "hsm.hmac_label", &h.HMACLabel, nonEmpty) && h.HMACLabel == h.MKEKLabel {
		d.errf(rh["hmac_label"].Range, "hsm.hmac_label must differ from mkek_label", "")
	}

	d.decodeStorage(&c, blocks, at)
	if k := blocks["kek"]; k != nil {
		d.duration(k["cache_ttl"], "kek.cache_ttl", &c.KEK.CacheTTL)
		d.integer(k["cache_size"], "kek.cache_size", &c.KEK.CacheSize, 1, math.MaxInt32)
	}
	d.objectCache(blocks["objects"]["cache_bytes"], blocks["kek"]["object_cache_bytes"], &c.Objects.CacheBytes)
	if k := blocks["kmip"]; k != nil {
		d.duration(k["lease_time"], "kmip.lease_time", &c.KMIP.LeaseTime)
		if a := k["lease_time"]; a != nil && (c.KMIP.LeaseTime%time.Second != 0 || c.KMIP.LeaseTime > kmipops.MaxLeaseTime) {
			d.errf(a.Range, "kmip.lease_time must be whole seconds, at most 4294967295s",
				"a KMIP Lease Time is a 32-bit count of seconds")
		}
		// A KMIP Iteration Count is a 32-bit integer; a derived length is a
		// Cryptographic Length in bits, and has to fit in a response.
		d.integer(k["max_derive_iterations"], "kmip.max_derive_iterations", &c.KMIP.MaxDeriveIterations, 1, math.MaxInt32)
		d.integer(k["max_derive_bytes"], "kmip.max_derive_bytes", &c.KMIP.MaxDeriveBytes, 1, 1<<20)
		d.boolean(k["asynchronous"], "kmip.asynchronous", &c.KMIP.Asynchronous)
		d.str(k["credentials"], "kmip.credentials", &c.KMIP.Credentials, oneOf("bind", "ignore"))
		d.integer(k["credential_hash_iterations"], "kmip.credential_hash_iterations", &c.KMIP.CredentialHashIterations, 1000, 100_000_000)
		d.boolean(k["assign_default_group"], "kmip.assign_default_group", &c.KMIP.AssignDefaultGroup)
		d.str(k["default_object_group"], "kmip.default_object_group", &c.KMIP.DefaultObjectGroup, func(s string) error {
			if len(s) > 255 {
				return fmt.Errorf("is longer than 255 bytes")
			}
			return nil
		})
	}
	if lg := blocks["log"]; lg != nil {
		d.str(lg["level"], "log.level", &c.Log.Level, oneOf("trace", "debug", "info", "warn", "error"))
		d.str(lg["format"], "log.format", &c.Log.Format, oneOf("text", "json"))
	}
	if t, ok := blocks["telemetry"]; ok {
		c.Telemetry = &TelemetryConfig{Address: defaultTelemetryAddress}
		d.str(t["address"], "telemetry.address", &c.Telemetry.Address, checkHostPort)
	}
	if a, ok := blocks["audit"]; ok {
		c.Audit = &AuditConfig{}
		if d.str(a["file"], "audit.file", &c.Audit.File, nonEmpty) && c.Audit.File != audit.Stderr {
			c.Audit.File = d.resolve(c.Audit.File)
		}
	}
	if a, ok := blocks["admin"]; ok {
		c.Admin = &AdminConfig{}
		d.path(a["socket"], "admin.socket", &c.Admin.Socket)
	}
	if b, ok := blocks["certify"]; ok {
		c.Certify = defaultCertify()
		d.path(b["ca_cert"], "certify.ca_cert", &c.Certify.CACert)
		d.path(b["ca_key"], "certify.ca_key", &c.Certify.CAKey)
		d.duration(b["validity"], "certify.validity", &c.Certify.Validity)
		d.extKeyUsage(b["ext_key_usage"], "certify.ext_key_usage", &c.Certify.ExtKeyUsage)
	}
	if d.diags.HasErrors() {
		return nil, configError(d.diags)
	}
	c.Warnings = warnings(d.diags)
	return &c, nil
}

// objectCache decodes objects.cache_bytes. The key used to be
// kek.object_cache_bytes, which read as a property of the key hierarchy; but
// the cache holds opened objects and belongs to the object layer. The old key
// is still read, with a warning naming the new one; both at once is an error,
// since they could disagree.
func (d *decoder) objectCache(key, old *hcl.Attribute, dst *int64) {
	const max = 1 << 40
	switch {
	case key != nil && old != nil:
		d.errf(old.Range, "kek.object_cache_bytes and objects.cache_bytes are both set",
			"kek.object_cache_bytes is the deprecated name of objects.cache_bytes (at %s); keep only objects.cache_bytes", key.Range)
	case old != nil:
		d.size(old, "kek.object_cache_bytes", dst, 0, max)
		d.diags = append(d.diags, &hcl.Diagnostic{Severity: hcl.DiagWarning,
			Summary: "kek.object_cache_bytes is deprecated; use objects.cache_bytes",
			Detail:  "the cache of opened objects belongs to the object layer; move the key into an objects block",
			Subject: old.Range.Ptr()})
	default:
		d.size(key, "objects.cache_bytes", dst, 0, max)
	}
}

// warnings keeps the warnings of diags, in file order.
func warnings(diags hcl.Diagnostics) hcl.Diagnostics {
	var out hcl.Diagnostics
	for _, d := range diags {
		if d.Severity == hcl.DiagWarning {
			out = append(out, d)
		}
	}
	return out
}

func firstError(diags hcl.Diagnostics) string {
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			return d.Summary
		}
	}
	return ""
}

func configError(diags hcl.Diagnostics) error {
	var out hcl.Diagnostics
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			if d.Summary == "Invalid escape sequence" {
				// Its detail quotes source text, which may be a literal PIN.
				d = &hcl.Diagnostic{Severity: d.Severity, Summary: d.Summary, Subject: d.Subject}
			}
			out = append(out, d)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Subject, out[j].Subject
		return a != nil && b != nil && a.Start.Byte < b.Start.Byte
	})
	return &ConfigError{Diags: out}
}
