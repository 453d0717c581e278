package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/certs"
	"github.com/kmipd/kmipd/daemon"
	"github.com/kmipd/kmipd/hsm"
)

const defaultSoftHSM = "/usr/lib/softhsm/libsofthsm2.so"

// cmdDev runs kmipd on its embedded default: a SoftHSM token, a dev PKI and a
// Badger store in one folder, created on first start and reused afterwards.
func cmdDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dev", "dev [-dir DIR] [-addr HOST:PORT] [-hsm-module PATH] [-max-sessions N] [-hsm-idle-timeout D] [-kek-cache-ttl D] [-cluster N [-pg-listen ADDR/PREFIX]]", stderr)
	dir := fs.String("dir", "./kmipd-dev", "folder holding the token, PKI, store and kmipd.hcl")
	addr := fs.String("addr", "127.0.0.1:5696", "KMIP listen address")
	module := fs.String("hsm-module", defaultSoftHSM, "PKCS#11 module")
	maxSessions := fs.Int("max-sessions", 4, "hard cap on HSM sessions, the login session included")
	telemetry := fs.String("telemetry-addr", "", "telemetry listen address (default: KMIP port + 1 on the same host; \"off\" disables)")
	logLevel := fs.String("log-level", "info", "trace, debug, info, warn or error")
	auditLog := fs.String("audit", "on", "the audit log, DIR/audit.log: on or off")
	// Tests of the idle reaper need seconds, not the 30s default.
	idleTimeout := fs.Duration("hsm-idle-timeout", 0, "close an idle HSM session beyond min_idle after this (default 30s)")
	cluster := fs.Int("cluster", 0, "run N replicas on a private PostgreSQL (DIR/pg) sharing the HSM; -max-sessions is then the cluster-wide budget")
	pgListen := fs.String("pg-listen", "", "with -cluster: PostgreSQL also listens on this ADDR/PREFIX and trusts clients in PREFIX (e.g. a veth into a network namespace)")
	kekTTL := fs.Duration("kek-cache-ttl", 0, "keep an unwrapped pKEK this long (default 15m; short makes the HSM work, for load tests)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cluster < 0 || *cluster > 16 {
		fmt.Fprintln(stderr, "-cluster must be between 0 and 16")
		return errUsage
	}
	if *cluster > 0 {
		return runDevCluster(ctx, *cluster, *dir, *addr, *module, *maxSessions, devClusterOptions{
			logLevel: *logLevel, pgListen: *pgListen, kekCacheTTL: *kekTTL}, stdout, stderr)
	}
	if *idleTimeout < 0 {
		fmt.Fprintln(stderr, "-hsm-idle-timeout must not be negative")
		return errUsage
	}
	if *auditLog != "on" && *auditLog != "off" {
		fmt.Fprintln(stderr, "-audit must be on or off")
		return errUsage
	}
	c, err := prepareDev(ctx, *dir, *addr, *module, *maxSessions, *idleTimeout, *telemetry, *logLevel)
	if err != nil {
		return err
	}
	if *kekTTL > 0 {
		c.KEK.CacheTTL = *kekTTL
	}
	if *auditLog == "off" {
		c.Audit = nil // for measuring what it costs (make bench BENCH_AUDIT=off)
	}
	printDevBanner(stdout, c)
	return serveConfig(ctx, c, stderr)
}

// prepareDev creates what is missing under dir and returns the config to serve.
// idleTimeout 0 keeps the default.
func prepareDev(ctx context.Context, dir, addr, module string, maxSessions int, idleTimeout time.Duration, telemetry, logLevel string) (*daemon.Config, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	dir = abs
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	pki := filepath.Join(dir, daemon.DevPKIDir)
	if err := certs.Init(pki, certs.Options{}); err != nil {
		return nil, fmt.Errorf("dev PKI: %w", err)
	}

	// SoftHSM reads its configuration once, at C_Initialize: point it at a
	// token folder inside dir before anything loads the module.
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return nil, err
	}
	shConf := filepath.Join(dir, "softhsm2.conf")
	conf := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(shConf, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	if err := os.Setenv("SOFTHSM2_CONF", shConf); err != nil {
		return nil, err
	}
	userPIN, err := secretFile(filepath.Join(dir, daemon.DevPINFile))
	if err != nil {
		return nil, err
	}
	soPIN, err := secretFile(filepath.Join(dir, "hsm.so-pin"))
	if err != nil {
		return nil, err
	}
	if err := hsm.InitToken(module, daemon.DevTokenLabel, soPIN, userPIN); err != nil {
		return nil, fmt.Errorf("initialising the SoftHSM token: %w", err)
	}

	c := daemon.DevConfig(dir, addr, module, maxSessions)
	c.Log.Level = logLevel
	if idleTimeout > 0 {
		c.HSM.IdleTimeout = idleTimeout
	}
	if telemetry == "" {
		telemetry = nextPort(addr)
	}
	if telemetry != "off" && telemetry != "" {
		c.Telemetry = &daemon.TelemetryConfig{Address: telemetry}
	}
	hc, err := c.HSMOptions()
	if err != nil {
		return nil, err
	}
	if _, err := hsm.InitMasterKeys(ctx, hc, hclog.NewNullLogger()); err != nil {
		return nil, fmt.Errorf("creating the master keys: %w", err)
	}
	var buf bytes.Buffer
	if err := c.WriteHCL(&buf); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, daemon.DevConfigFile), buf.Bytes(), 0o600); err != nil {
		return nil, err
	}
	return c, nil
}

// secretFile returns the secret in path, creating a random one on first use.
func secretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return string(bytes.TrimSpace(b)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	raw := make([]byte, 12)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	s := hex.EncodeToString(raw)
	return s, os.WriteFile(path, []byte(s+"\n"), 0o600)
}

// nextPort is host:port+1, the dev telemetry address beside the KMIP one.
func nextPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "off"
	}
	p, err := strconv.Atoi(port)
	if err != nil || p == 0 || p >= 65535 {
		return "off"
	}
	return net.JoinHostPort(host, strconv.Itoa(p+1))
}

func printDevBanner(w io.Writer, c *daemon.Config) {
	pki := filepath.Dir(c.Listener.CertFile)
	host, port, _ := net.SplitHostPort(c.Listener.Address)
	fmt.Fprintf(w, `kmipd dev: KMIP on %s (mutual TLS)
  config:      %s
  client cert: %s
  client key:  %s
  CA:          %s
  more clients: kmipd certs issue -dir %s -name NAME
  serve or check this folder without dev (SoftHSM finds its tokens through SOFTHSM2_CONF):
    SOFTHSM2_CONF=%s kmipd serve -config %s
`, c.Listener.Address, filepath.Join(filepath.Dir(pki), daemon.DevConfigFile),
		filepath.Join(pki, "client.crt"), filepath.Join(pki, "client.key"), filepath.Join(pki, "ca.crt"), pki,
		filepath.Join(filepath.Dir(pki), "softhsm2.conf"), filepath.Join(filepath.Dir(pki), daemon.DevConfigFile))
	if c.Telemetry != nil {
		fmt.Fprintf(w, "  telemetry:   http://%s/metrics /healthz /readyz\n", c.Telemetry.Address)
	}
	fmt.Fprintf(w, `
barbican.conf:
[secretstore]
enabled_secretstore_plugins = kmip_plugin

[kmip_plugin]
host = %s
port = %s
certfile = %s
keyfile = %s
ca_certs = %s
ssl_version = PROTOCOL_TLSv1_2
pkcs1_only = False

`, host, port, filepath.Join(pki, "client.crt"), filepath.Join(pki, "client.key"), filepath.Join(pki, "ca.crt"))
}
