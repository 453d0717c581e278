// Package daemon builds a kmipd from its configuration. It parses and checks
// kmipd.hcl (LoadConfig, ParseConfig, DevConfig, WriteHCL) and wires the parts
// in one place (Build): the HSM session pool (under a cluster-wide session
// budget when replicas share PostgreSQL), the Badger or PostgreSQL store,
// the kek keyring, the kmipops processor, the mutual-TLS server and telemetry.
// cmd/kmipd and the in-process test harnesses both build through it, so
// nothing is wired twice.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kmipd/kmipd/admin"
	"github.com/kmipd/kmipd/audit"
	"github.com/kmipd/kmipd/certs"
	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/hsm/sessionbudget"
	"github.com/kmipd/kmipd/kek"
	"github.com/kmipd/kmipd/kmipops"
	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/server"
)

// The keyring seals kmipd's objects, and reports its pKEK generations so the
// object repository can keep objects it has opened (kmipops/object/cache.go).
var (
	_ object.Sealer         = (*kek.Keyring)(nil)
	_ object.KeyGenerations = (*kek.Keyring)(nil)
	_ kmipops.Issuer        = (*certs.Issuer)(nil)
)

// Hooks let a test build a kmipd around parts it holds. The zero value builds
// what `kmipd serve` runs.
type Hooks struct {
	// HSM, if set, is used instead of opening cfg.HSM (whose keys are then
	// not read); the caller closes it, so it may outlive several builds.
	HSM *hsm.HSM
	// Server, if set, adjusts the listener configuration Build derived from
	// cfg, e.g. server.Config.HandshakeTimeout, which has no key in the file.
	Server func(*server.Config)
	// Processor, if set, adjusts the processor's options (a deterministic
	// Rand, a clock).
	Processor func(*kmipops.Options)
	// Replica names this replica in the HSM session budget (default
	// host-pid): replicas in one test process need distinct names.
	Replica string
	// Store, if set, is used instead of opening cfg.Storage (benchmarks
	// measure kmipd on storage.NewMemory against its real store); the
	// daemon closes it.
	Store Store
}

// Daemon is a built kmipd: the HSM and the store are open, nothing listens
// yet. Serve or ListenAndServe it, then Close it.
type Daemon struct {
	cfg       *Config
	log       hclog.Logger
	hsm       *hsm.HSM
	ownHSM    bool                  // opened by Build, so closed by Close
	budget    *sessionbudget.Client // nil: no hsm.cluster_max_sessions
	store     Store
	keyring   *kek.Keyring
	processor *kmipops.Processor
	metrics   *server.Metrics
	server    *server.Server
	telemetry *http.Server  // nil: no telemetry block
	audit     *audit.Sink   // nil: no audit block
	admin     *admin.Server // nil: no admin block
	issuer    *certs.Issuer // nil: no certify block
	telOnce   sync.Once
}

// NewLogger is the root logger the log block asks for, writing to w. Build
// hands each part a sub-logger named after its package.
func NewLogger(c LogConfig, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "kmipd",
		Level:      hclog.LevelFromString(c.Level),
		Output:     w,
		JSONFormat: c.Format == "json",
	})
}

// HSMOptions translates the hsm block into the hsm package's Config,
// resolving the PIN.
func (c *Config) HSMOptions() (hsm.Config, error) {
	pin, err := c.ResolvePIN()
	if err != nil {
		return hsm.Config{}, err
	}
	return hsm.Config{
		ModulePath:  c.HSM.Module,
		TokenLabel:  c.HSM.TokenLabel,
		TokenSerial: c.HSM.TokenSerial,
		Slot:        c.HSM.Slot,
		PIN:         pin,
		MaxSessions: c.HSM.MaxSessions,
		MinIdle:     c.HSM.MinIdle,
		WaitTimeout: c.HSM.SessionWaitTimeout,
		IdleTimeout: c.HSM.IdleTimeout,
		MKEKLabel:   c.HSM.MKEKLabel,
		HMACLabel:   c.HSM.HMACLabel,
	}, nil
}

// LogWarnings logs each of c.Warnings, with its position, through
// log.Named("config").
func (c *Config) LogWarnings(log hclog.Logger) {
	for _, w := range c.Warnings {
		log.Named("config").Warn(diagString(w))
	}
}

// Build opens the HSM and the store and wires the server; nothing listens
// yet. It logs the configuration's warnings (deprecated keys) first.
func Build(ctx context.Context, c *Config, log hclog.Logger) (*Daemon, error) {
	return BuildWith(ctx, c, log, Hooks{})
}

// BuildWith is Build with the parts and adjustments h names.
func BuildWith(ctx context.Context, c *Config, log hclog.Logger, h Hooks) (_ *Daemon, err error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	// d is not the named result: every early return sets that to nil, and
	// the cleanup below must still see what was opened.
	d := &Daemon{cfg: c, log: log, hsm: h.HSM, ownHSM: h.HSM == nil}
	defer func() {
		if err != nil {
			_ = d.Close() // the build error says what went wrong
		}
	}()
	c.LogWarnings(log)
	if c.Audit != nil {
		// Opened first: a kmipd that cannot keep its audit trail does not start.
		if d.audit, err = audit.OpenTarget(c.Audit.File, audit.Options{}, log.Named("audit")); err != nil {
			return nil, fmt.Errorf("opening the audit log: %w", err)
		}
	}
	if d.ownHSM {
		// Under a session budget this migrates the PostgreSQL schema,
		// which holds the budget's leases, before the store opens.
		if err := d.openHSM(ctx, c, h.Replica); err != nil {
			return nil, err
		}
	}
	if d.store = h.Store; d.store == nil {
		if d.store, err = openStore(ctx, c, log.Named("storage")); err != nil {
			return nil, fmt.Errorf("opening the store: %w", err)
		}
	}
	d.keyring = kek.New(d.hsm, d.store, kek.Config{CacheTTL: c.KEK.CacheTTL, CacheSize: c.KEK.CacheSize}, log.Named("kek"))
	if err := d.loadMaster(ctx); err != nil {
		return nil, err
	}
	if err := d.loadRotation(ctx); err != nil {
		return nil, err
	}
	d.metrics = server.NewMetrics()
	collectors := []prometheus.Collector{d.hsm.Collector(), d.store.Collector()}
	if d.budget != nil {
		collectors = append(collectors, d.budget.Collector())
	}
	for _, c := range collectors {
		if err := d.metrics.Register(c); err != nil {
			return nil, err
		}
	}
	opts := kmipops.Options{CheckCredentials: c.Listener.CheckCredentials, Observer: d.metrics, LeaseTime: c.KMIP.LeaseTime,
		ObjectCacheBytes: int(c.Objects.CacheBytes), MaxDeriveIterations: c.KMIP.MaxDeriveIterations, MaxDeriveBytes: c.KMIP.MaxDeriveBytes,
		IgnoreCredentials: c.KMIP.Credentials == "ignore", CredentialIterations: c.KMIP.CredentialHashIterations,
		DefaultObjectGroup: c.KMIP.DefaultObjectGroup,
		AssignDefaultGroup: c.KMIP.AssignDefaultGroup}
	if opts.ObjectCacheBytes == 0 {
		opts.ObjectCacheBytes = -1 // kmipd.hcl's 0 means off; kmipops' 0 means the default
	}
	if !c.KMIP.Asynchronous {
		opts.AsyncOperations = []kmip14.Operation{} // nil would mean the default ones
	}
	if c.Listener.CheckCredentials {
		if opts.Credentials, err = loadCredentials(c.Listener.CredentialsFile); err != nil {
			return nil, err
		}
	}
	if d.audit != nil { // a nil *audit.Sink in the interface would not be nil
		opts.Audit = d.audit
	}
	if c.Certify != nil {
		if d.issuer, err = loadIssuer(c.Certify); err != nil {
			return nil, err
		}
		opts.Issuer = d.issuer
	}
	if h.Processor != nil {
		h.Processor(&opts)
	}
	d.processor = kmipops.NewProcessor(d.store, d.keyring, opts, log.Named("kmipops"))
	if err := d.metrics.Register(newIndexCollector(d.processor)); err != nil {
		return nil, err
	}
	tlsConf, err := tlsConfig(c.Listener)
	if err != nil {
		return nil, err
	}
	sc := server.Config{
		Address:        c.Listener.Address,
		TLS:            tlsConf,
		MaxMessageSize: c.Listener.MaxMessageSize,
		ReadTimeout:    c.Listener.ReadTimeout,
		IdleTimeout:    c.Listener.IdleTimeout,
		WriteTimeout:   c.Listener.WriteTimeout,
		RequestTimeout: c.Listener.RequestTimeout,
		MaxConns:       c.Listener.MaxConnections,
		Metrics:        d.metrics,
	}
	if h.Server != nil {
		h.Server(&sc)
	}
	d.server = server.New(sc, d.processor, log) // it names its logger "server"
	if c.Admin != nil {
		if err := d.startAdmin(); err != nil {
			return nil, err
		}
	}
	if c.Telemetry != nil && c.Telemetry.Address != "" {
		// TelemetryServer names its logger "telemetry" itself.
		d.telemetry = server.TelemetryServer(c.Telemetry.Address, d.metrics, d.ready, log)
	}
	return d, nil
}

func tlsConfig(l ListenerConfig) (*tls.Config, error) {
	return server.TLSConfig(l.CertFile, l.KeyFile, l.ClientCAFile, l.MinTLSVersion)
}

// ListenAndServe listens on the listener block's address and serves KMIP,
// and telemetry if configured, until ctx ends.
func (d *Daemon) ListenAndServe(ctx context.Context) error {
	d.startTelemetry()
	return d.server.ListenAndServe(ctx)
}

// Serve serves KMIP on l (a test's 127.0.0.1:0, say), and telemetry if
// configured, until ctx ends; then it lets in-flight requests finish and
// returns nil.
func (d *Daemon) Serve(ctx context.Context, l net.Listener) error {
	d.startTelemetry()
	return d.server.Serve(ctx, l)
}

func (d *Daemon) startTelemetry() {
	if d.telemetry == nil {
		return
	}
	d.telOnce.Do(func() {
		go func() {
			if err := d.telemetry.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("telemetry listener failed", "error", err)
			}
		}()
	})
}

// loadIssuer loads the certify block's issuing CA.
func loadIssuer(c *CertifyConfig) (*certs.Issuer, error) {
	p := certs.Policy{Validity: c.Validity}
	for _, n := range c.ExtKeyUsage {
		u, ok := certs.ParseExtKeyUsage(n)
		if !ok {
			return nil, fmt.Errorf("certify: unknown extended key usage %q", n)
		}
		p.ExtKeyUsage = append(p.ExtKeyUsage, u)
	}
	iss, err := certs.LoadIssuer(c.CACert, c.CAKey, p)
	if err != nil {
		return nil, fmt.Errorf("certify: %w", err)
	}
	return iss, nil
}

// ReloadTLS reads the listener's certificate, key and client CA files again
// for new handshakes (SIGHUP), and the certify block's issuing CA for new
// certificates; on error the old ones stay in use.
func (d *Daemon) ReloadTLS() error {
	t, err := tlsConfig(d.cfg.Listener)
	if err != nil {
		return err
	}
	d.server.SetTLSConfig(t)
	if d.issuer != nil {
		if err := d.issuer.Reload(); err != nil {
			return fmt.Errorf("certify: %w", err)
		}
	}
	return nil
}

// ReopenAudit reopens the audit log file (SIGHUP, after logrotate moved it);
// the new file's first line links to the old file's last.
func (d *Daemon) ReopenAudit() error {
	if d.audit == nil {
		return nil
	}
	return d.audit.Reopen()
}

// Close stops telemetry and background index rebuilds, and closes the
// store, and the HSM (then its session budget) unless Hooks.HSM supplied
// it. Call it once serving has returned.
func (d *Daemon) Close() error {
	var errs []error
	if d.admin != nil {
		_ = d.admin.Close() // first: its handlers use the store and the HSM
	}
	if d.processor != nil {
		d.processor.Close() // background index rebuilds, before the store goes
	}
	if d.telemetry != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = d.telemetry.Shutdown(sctx)
		cancel()
	}
	if d.audit != nil {
		if err := d.audit.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the audit log: %w", err))
		}
	}
	if d.store != nil {
		if err := d.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the store: %w", err))
		}
	}
	if d.ownHSM && d.hsm != nil {
		if err := d.hsm.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the HSM: %w", err))
		}
	}
	// After the HSM: closing its pool releases the share the budget holds.
	if d.budget != nil {
		if err := d.budget.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the HSM session budget: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Addr is the KMIP address being served, or nil before serving started.
func (d *Daemon) Addr() net.Addr { return d.server.Addr() }

// HSM is the open HSM.
func (d *Daemon) HSM() *hsm.HSM { return d.hsm }

// Store is the open store.
func (d *Daemon) Store() Store { return d.store }

// Keyring is the key hierarchy.
func (d *Daemon) Keyring() *kek.Keyring { return d.keyring }

// Processor executes KMIP requests; tests drive it directly (fuzzing).
func (d *Daemon) Processor() *kmipops.Processor { return d.processor }

// Metrics is the private Prometheus registry /metrics serves.
func (d *Daemon) Metrics() *server.Metrics { return d.metrics }

// loadCredentials reads "username:password" lines for check_credentials.
// Errors name the file and line, never a password.
func loadCredentials(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("credentials file: %w", err)
	}
	creds := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		user, pass, ok := strings.Cut(line, ":")
		if !ok || user == "" || pass == "" {
			return nil, fmt.Errorf("%s:%d: want username:password", path, i+1)
		}
		creds[user] = pass
	}
	if len(creds) == 0 {
		return nil, fmt.Errorf("%s: no credentials", path)
	}
	return creds, nil
}
