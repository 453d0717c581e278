package daemon

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/kmipd/kmipd/certs"
	"github.com/kmipd/kmipd/kmipops"
	"github.com/kmipd/kmipd/kmipops/credential"
	"github.com/kmipd/kmipd/storage"
)

// Config is the parsed, validated kmipd.hcl with defaults applied. It is plain
// data: opening the HSM, store and listener is Build's job.
type Config struct {
	Listener  ListenerConfig
	HSM       HSMConfig
	Storage   StorageConfig
	KEK       KEKConfig
	Objects   ObjectsConfig
	KMIP      KMIPConfig
	Log       LogConfig
	Telemetry *TelemetryConfig // nil: no telemetry listener
	Audit     *AuditConfig     // nil: no audit log
	Admin     *AdminConfig     // nil: no admin socket
	Certify   *CertifyConfig   // nil: KMIP Certify and ReCertify are not offered

	// Warnings are what the file should change but kmipd still accepts
	// (deprecated keys), each with its position. Build logs them; a Config
	// written by WriteHCL never has any.
	Warnings hcl.Diagnostics
}

type ListenerConfig struct {
	Address                                string
	CertFile, KeyFile, ClientCAFile        string
	MinTLSVersion                          uint16 // tls.VersionTLS12 or tls.VersionTLS13
	MaxMessageSize                         int64  // bytes
	ReadTimeout, IdleTimeout, WriteTimeout time.Duration
	RequestTimeout                         time.Duration // work one request may cause
	MaxConnections                         int
	CheckCredentials                       bool
	CredentialsFile                        string // "user:password" lines; required when CheckCredentials
}

type HSMConfig struct {
	Module                          string
	TokenLabel, TokenSerial         string // exactly one of these and Slot is set
	Slot                            *uint
	PIN                             Secret // literal, "env:NAME" or "file:PATH"; see ResolvePIN
	MaxSessions, MinIdle            int    // MaxSessions counts the login session too
	SessionWaitTimeout, IdleTimeout time.Duration
	MKEKLabel, HMACLabel            string
	// ClusterMaxSessions, when positive, is the budget of sessions every
	// replica sharing the PostgreSQL store holds on this HSM between them
	// (hsm/sessionbudget); MaxSessions then caps this replica's share.
	ClusterMaxSessions int
}

// Storage backends.
const (
	BackendBadger   = "badger"
	BackendPostgres = "postgres"
)

// StorageConfig is the storage block: Badger in Path (one kmipd), or the
// PostgreSQL database of Postgres (replicas sharing it).
type StorageConfig struct {
	Backend    string // BackendBadger (default) or BackendPostgres
	Path       string // badger only
	SyncWrites bool   // badger only
	Postgres   *PostgresConfig
	Badger     BadgerMemory // badger only
}

// BadgerMemory bounds the Badger store's memory (storage.BadgerOptions):
// every figure is set (defaults applied); CacheBytes and BlockCacheBytes 0
// turn that cache off.
type BadgerMemory struct {
	CacheBytes      int64 // sealed values kept for repeated reads
	BlockCacheBytes int64
	IndexCacheBytes int64 // indexes of encrypted tables (storage.BadgerOptions)
	MemTableBytes   int64
	NumMemtables    int
}

// DefaultBadgerMemory is the storage block's default: with the other
// caches' defaults it keeps kmipd under 512 MiB of anonymous memory at a
// million objects (README, Performance).
var DefaultBadgerMemory = BadgerMemory{
	CacheBytes:      storage.DefaultCacheBytes,
	BlockCacheBytes: storage.DefaultBlockCacheBytes,
	IndexCacheBytes: storage.DefaultIndexCacheBytes,
	MemTableBytes:   storage.DefaultMemTableBytes,
	NumMemtables:    storage.DefaultNumMemtables,
}

// Options is m as storage.BadgerOptions' fields.
func (m BadgerMemory) Options(o storage.BadgerOptions) storage.BadgerOptions {
	off := func(v int64) int64 {
		if v == 0 {
			return -1
		}
		return v
	}
	o.CacheBytes = int(off(m.CacheBytes))
	o.BlockCacheBytes = off(m.BlockCacheBytes)
	o.IndexCacheBytes = m.IndexCacheBytes
	o.MemTableBytes = m.MemTableBytes
	o.NumMemtables = m.NumMemtables
	return o
}

// PostgresConfig is storage.postgres. URL and Password are secrets: each is
// a literal, "env:NAME" or "file:PATH" (see PostgresURL).
type PostgresConfig struct {
	URL      Secret
	Password Secret // "": the URL's own (or libpq's PGPASSWORD, passfile)
	MaxConns int    // per replica; 0: storage's default
}

// KEKConfig tunes the pKEK cache (kek.Config).
type KEKConfig struct {
	CacheTTL  time.Duration
	CacheSize int
}

// ObjectsConfig tunes the object layer (kmipops): CacheBytes bounds the
// objects kept opened under cached pKEKs (kmipops.Options.ObjectCacheBytes;
// 0 turns the cache off).
type ObjectsConfig struct {
	CacheBytes int64
}

// KMIPConfig is protocol policy (kmipops.Options): LeaseTime is the longest
// lease granted on a cryptographic object, reported in its Lease Time
// attribute; MaxDeriveIterations and MaxDeriveBytes bound one Derive Key
// (PBKDF2's iterations × output blocks; the derived length in bytes);
// Asynchronous lets kmipd answer kmipops.DefaultAsyncOperations
// asynchronously to clients that accept it. Credentials is "bind" (a KMIP
// Credential names an identity under the TLS client, its password bound on
// first use with CredentialHashIterations of PBKDF2) or "ignore";
// DefaultObjectGroup names the group whose Fresh members the server makes
// on demand ("": none), AssignDefaultGroup puts objects made without a
// group into it.
type KMIPConfig struct {
	LeaseTime                time.Duration
	MaxDeriveIterations      int
	MaxDeriveBytes           int
	Asynchronous             bool
	Credentials              string
	CredentialHashIterations int
	DefaultObjectGroup       string
	AssignDefaultGroup       bool
}

type LogConfig struct{ Level, Format string } // trace|debug|info|warn|error; text|json

type TelemetryConfig struct{ Address string }

// AuditConfig is the audit block: where the hash-chained audit log goes, a
// path or "stderr" (audit.Stderr).
type AuditConfig struct{ File string }

// AdminConfig is the admin block: the Unix socket `kmipd admin` talks to
// (daemon/admin.go), guarded by its file mode (0600) alone.
type AdminConfig struct{ Socket string }

// CertifyConfig is the issuing CA behind KMIP Certify and ReCertify
// (certs.Issuer): its PEM certificate and key, how long the certificates it
// issues are valid, and their extended key usages (certs.ParseExtKeyUsage
// names; nil: none).
type CertifyConfig struct {
	CACert, CAKey string
	Validity      time.Duration
	ExtKeyUsage   []string
}

// defaultExtKeyUsage is certify.ext_key_usage's default: what KMIP clients
// certify keys for is, mostly, authenticating to a server as a client.
var defaultExtKeyUsage = []string{"client_auth"}

func defaultCertify() *CertifyConfig {
	return &CertifyConfig{Validity: certs.DefaultIssueValidity, ExtKeyUsage: append([]string(nil), defaultExtKeyUsage...)}
}

// Secret holds the PIN specification. Every fmt verb, and text marshalling,
// prints a placeholder so a logged Config never leaks a literal PIN.
type Secret string

const redacted = "[redacted]"

func (Secret) String() string                { return redacted }
func (Secret) GoString() string              { return redacted }
func (Secret) Format(f fmt.State, _ rune)    { _, _ = f.Write([]byte(redacted)) }
func (Secret) MarshalText() ([]byte, error)  { return []byte(redacted), nil }
func (c *Config) String() string             { return c.summary() }
func (c *Config) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.summary())) }

func (c *Config) summary() string {
	tok := "label=" + c.HSM.TokenLabel
	if c.HSM.TokenSerial != "" {
		tok = "serial=" + c.HSM.TokenSerial
	} else if c.HSM.Slot != nil {
		tok = "slot=" + strconv.FormatUint(uint64(*c.HSM.Slot), 10)
	}
	st := c.Storage.Path
	if c.Storage.Backend == BackendPostgres {
		st = "postgres (url " + redacted + ")"
	}
	return fmt.Sprintf("kmipd config: listener %s, hsm %s (%s, pin %s, %d sessions), storage %s",
		c.Listener.Address, c.HSM.Module, tok, redacted, c.HSM.MaxSessions, st)
}

const (
	DevTokenLabel = "kmipd-dev"
	DevPINFile    = "hsm.pin" // dev mode writes a random PIN here before opening the HSM
	DevConfigFile = "kmipd.hcl"
	DevPKIDir     = "pki" // certs.Init output, so clients find ca.crt, client.crt, client.key here
	DevAdminSock  = "admin.sock"
)

func defaultConfig() Config {
	return Config{
		Listener: ListenerConfig{
			Address: "0.0.0.0:5696", MinTLSVersion: tls.VersionTLS12, MaxMessageSize: 1 << 20,
			ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, WriteTimeout: 30 * time.Second,
			RequestTimeout: 30 * time.Second,
			MaxConnections: 10000,
		},
		HSM: HSMConfig{
			MaxSessions: 4, SessionWaitTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second,
			MKEKLabel: "kmipd-mkek", HMACLabel: "kmipd-hmac",
		},
		Storage: StorageConfig{Backend: BackendBadger, SyncWrites: true, Badger: DefaultBadgerMemory},
		KEK:     KEKConfig{CacheTTL: 15 * time.Minute, CacheSize: 10000},
		Objects: ObjectsConfig{CacheBytes: kmipops.DefaultObjectCacheBytes},
		KMIP: KMIPConfig{LeaseTime: kmipops.DefaultLeaseTime, Asynchronous: true,
			MaxDeriveIterations: kmipops.DefaultMaxDeriveIterations, MaxDeriveBytes: kmipops.DefaultMaxDeriveBytes,
			Credentials: "bind", CredentialHashIterations: credential.DefaultIterations, DefaultObjectGroup: kmipops.DefaultObjectGroup},
		Log: LogConfig{Level: "info", Format: "text"},
	}
}

const defaultTelemetryAddress = "127.0.0.1:9696"

// DevConfig is the configuration `kmipd dev` writes to DIR/kmipd.hcl: the
// certs.Init files in DIR/pki (the issuing CA of Certify among them), a SoftHSM token labelled DevTokenLabel whose PIN
// is in DIR/hsm.pin, Badger in DIR/data. dir is made absolute so the rendered
// file means the same wherever it is parsed from. maxSessions < 2 means the default.
func DevConfig(dir, addr, module string, maxSessions int) *Config {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	c := defaultConfig()
	if addr != "" {
		c.Listener.Address = addr
	}
	c.Listener.CertFile = filepath.Join(dir, DevPKIDir, certs.ServerCertFile)
	c.Listener.KeyFile = filepath.Join(dir, DevPKIDir, certs.ServerKeyFile)
	c.Listener.ClientCAFile = filepath.Join(dir, DevPKIDir, certs.CACertFile)
	c.HSM.Module = module
	c.HSM.TokenLabel = DevTokenLabel
	c.HSM.PIN = Secret("file:" + filepath.Join(dir, DevPINFile))
	if maxSessions >= 2 {
		c.HSM.MaxSessions = maxSessions
	}
	c.Storage.Path = filepath.Join(dir, "data")
	c.Audit = &AuditConfig{File: filepath.Join(dir, "audit.log")}
	c.Admin = &AdminConfig{Socket: filepath.Join(dir, DevAdminSock)}
	// certs.Init writes the issuing CA beside the TLS files.
	c.Certify = defaultCertify()
	c.Certify.CACert = filepath.Join(dir, DevPKIDir, certs.IssuerCertFile)
	c.Certify.CAKey = filepath.Join(dir, DevPKIDir, certs.IssuerKeyFile)
	return &c
}

// ResolvePIN returns the HSM user PIN: a literal, the value of environment
// variable NAME ("env:NAME"), or the contents of PATH without its trailing
// newline ("file:PATH"). Errors never contain the PIN.
func (c *Config) ResolvePIN() (string, error) {
	return resolveSecret("hsm.pin", c.HSM.PIN)
}

// resolveSecret reads a literal, "env:NAME" or "file:PATH" secret named key.
// Errors never contain the secret.
func resolveSecret(key string, s Secret) (string, error) {
	spec := string(s)
	v := spec
	switch {
	case strings.HasPrefix(spec, "env:"):
		name := spec[len("env:"):]
		e, ok := os.LookupEnv(name)
		if !ok {
			return "", fmt.Errorf("%s: environment variable %s is not set", key, name)
		}
		v = e
	case strings.HasPrefix(spec, "file:"):
		b, err := os.ReadFile(spec[len("file:"):])
		if err != nil {
			return "", fmt.Errorf("%s: reading the file: %w", key, err) // *PathError: path and errno only
		}
		v = strings.TrimRight(string(b), "\r\n")
	}
	if v == "" {
		return "", fmt.Errorf("%s: the value is empty", key)
	}
	return v, nil
}

// ConfigError carries every problem found in a file, each with its position.
type ConfigError struct{ Diags hcl.Diagnostics }

func (e *ConfigError) Unwrap() error { return e.Diags }

func (e *ConfigError) Error() string {
	lines := make([]string, 0, len(e.Diags))
	for _, d := range e.Diags {
		lines = append(lines, diagString(d))
	}
	return strings.Join(lines, "\n")
}

// diagString is "file:line,col-col: summary: detail".
func diagString(d *hcl.Diagnostic) string {
	s := d.Summary
	if d.Detail != "" {
		s += ": " + d.Detail
	}
	if d.Subject != nil {
		s = d.Subject.String() + ": " + s
	}
	return s
}
