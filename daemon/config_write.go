package daemon

import (
	"crypto/tls"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// WriteHCL renders c as a complete kmipd.hcl that ParseConfig reads back to
// an equal Config, but for Warnings: deprecated keys are written under their
// new names. A literal PIN is written as is: the file is the secret's
// home then, so keep it private (DevConfig uses file: instead).
func (c *Config) WriteHCL(w io.Writer) error {
	var b strings.Builder
	q := hclQuote
	tlsv := map[uint16]string{tls.VersionTLS12: "1.2", tls.VersionTLS13: "1.3"}[c.Listener.MinTLSVersion]
	l, h := &c.Listener, &c.HSM
	fmt.Fprintf(&b, `# kmipd configuration; see config.example.hcl for every key.

listener {
  address           = %s
  cert_file         = %s
  key_file          = %s
  client_ca_file    = %s # clients must present a certificate signed by this CA
  min_tls_version   = %s
  max_message_size  = %s
  read_timeout      = %s
  idle_timeout      = %s
  write_timeout     = %s
  request_timeout   = %s
  max_connections   = %d
  check_credentials = %t
%s}

hsm {
  module               = %s
`, q(l.Address), q(l.CertFile), q(l.KeyFile), q(l.ClientCAFile), q(tlsv), q(formatSize(l.MaxMessageSize)),
		q(formatDuration(l.ReadTimeout)), q(formatDuration(l.IdleTimeout)), q(formatDuration(l.WriteTimeout)), q(formatDuration(l.RequestTimeout)),
		l.MaxConnections, l.CheckCredentials, credentialsLine(l.CredentialsFile, q), q(h.Module))
	switch {
	case h.Slot != nil:
		fmt.Fprintf(&b, "  slot                 = %d\n", *h.Slot)
	case h.TokenSerial != "":
		fmt.Fprintf(&b, "  token_serial         = %s\n", q(h.TokenSerial))
	default:
		fmt.Fprintf(&b, "  token_label          = %s\n", q(h.TokenLabel))
	}
	fmt.Fprintf(&b, `  pin                  = %s # literal, env:NAME or file:PATH
  max_sessions         = %d # every PKCS#11 session, the login session included
  min_idle             = %d
  session_wait_timeout = %s
  idle_timeout         = %s
  mkek_label           = %s
  hmac_label           = %s
%s}

%s
kek {
  cache_ttl  = %s
  cache_size = %d
}

objects {
  cache_bytes = %s # opened objects kept while their pKEK is cached; 0: off
}

kmip {
  lease_time   = %s # the Lease Time of every cryptographic object
  asynchronous = %t # Locate, Archive, Recover pending until polled, if the client accepts
}

log {
  level  = %s # trace | debug | info | warn | error
  format = %s # text | json
}
`, q(string(h.PIN)), h.MaxSessions, h.MinIdle, q(formatDuration(h.SessionWaitTimeout)), q(formatDuration(h.IdleTimeout)),
		q(h.MKEKLabel), q(h.HMACLabel), clusterLine(h.ClusterMaxSessions), storageBlock(c.Storage, q),
		q(formatDuration(c.KEK.CacheTTL)), c.KEK.CacheSize, q(formatSize(c.Objects.CacheBytes)), q(formatDuration(c.KMIP.LeaseTime)), c.KMIP.Asynchronous, q(c.Log.Level), q(c.Log.Format))
	if c.Telemetry != nil {
		fmt.Fprintf(&b, "\ntelemetry {\n  address = %s # /metrics, /healthz, /readyz\n}\n", q(c.Telemetry.Address))
	}
	if c.Audit != nil {
		fmt.Fprintf(&b, "\naudit {\n  file = %s # hash-chained JSON lines; check with kmipd audit verify FILE\n}\n", q(c.Audit.File))
	}
	if c.Admin != nil {
		fmt.Fprintf(&b, "\nadmin {\n  socket = %s # kmipd admin -config FILE talks to this (mode 0600)\n}\n", q(c.Admin.Socket))
	}
	if ct := c.Certify; ct != nil {
		eku := make([]string, len(ct.ExtKeyUsage))
		for i, u := range ct.ExtKeyUsage {
			eku[i] = q(u)
		}
		fmt.Fprintf(&b, `
certify {
  ca_cert       = %s # the issuing CA of KMIP Certify and ReCertify (PEM)
  ca_key        = %s # its private key (PEM, unencrypted): keep it private
  validity      = %s
  ext_key_usage = [%s]
}
`, q(ct.CACert), q(ct.CAKey), q(formatDuration(ct.Validity)), strings.Join(eku, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// hclQuote renders s as an HCL string literal, escaping template introducers
// ("${", "%{") as well as quotes, backslashes and non-printing runes.
func hclQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case (r == '$' || r == '%') && strings.HasPrefix(s[i+1:], "{"):
			b.WriteRune(r)
			b.WriteRune(r)
		case !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\U%08x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// formatDuration drops the zero tails of time.Duration.String ("2m0s" -> "2m").
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func formatSize(n int64) string {
	for _, u := range sizeUnits[:3] { // binary units only
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// clusterLine renders cluster_max_sessions only when set.
func clusterLine(n int) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf("  cluster_max_sessions = %d # summed over every replica sharing the PostgreSQL store\n", n)
}

// storageBlock renders the storage block of either backend.
func storageBlock(s StorageConfig, q func(string) string) string {
	if s.Backend != BackendPostgres || s.Postgres == nil {
		return fmt.Sprintf("storage {\n  backend     = %s\n  path        = %s\n  sync_writes = %t\n}\n",
			q(BackendBadger), q(s.Path), s.SyncWrites)
	}
	p := s.Postgres
	var b strings.Builder
	fmt.Fprintf(&b, "storage {\n  backend = %s\n  postgres {\n    url       = %s # literal, env:NAME or file:PATH\n",
		q(BackendPostgres), q(string(p.URL)))
	if p.Password != "" {
		fmt.Fprintf(&b, "    password  = %s # replaces the url's; literal, env:NAME or file:PATH\n", q(string(p.Password)))
	}
	if p.MaxConns > 0 {
		fmt.Fprintf(&b, "    max_conns = %d # connections of this replica\n", p.MaxConns)
	}
	b.WriteString("  }\n}\n")
	return b.String()
}

// credentialsLine renders credentials_file only when set, so the dev config
// stays free of a key it does not use.
func credentialsLine(path string, q func(string) string) string {
	if path == "" {
		return ""
	}
	return "  credentials_file  = " + q(path) + "\n"
}
