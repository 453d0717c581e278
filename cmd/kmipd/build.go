package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/kek"
	"github.com/kmipd/kmipd/kmipops"
	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/server"
	"github.com/kmipd/kmipd/storage"
)

// The keyring seals kmipd's objects, and reports its pKEK generations so the
// object repository can keep objects it has opened (kmipops/object/cache.go).
var (
	_ object.Sealer         = (*kek.Keyring)(nil)
	_ object.KeyGenerations = (*kek.Keyring)(nil)
)

// runtime is everything Build opened; Close releases it in reverse order.
type runtime struct {
	log       hclog.Logger
	hsm       *hsm.HSM
	store     *storage.Badger
	keyring   *kek.Keyring
	processor *kmipops.Processor
	metrics   *server.Metrics
	server    *server.Server
	telemetry *http.Server
}

func newLogger(c LogConfig, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "kmipd",
		Level:      hclog.LevelFromString(c.Level),
		Output:     w,
		JSONFormat: c.Format == "json",
	})
}

// hsmConfig translates the file's hsm block into the hsm package's Config.
func hsmConfig(c *Config) (hsm.Config, error) {
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

// Build opens the HSM and the store and wires the server; nothing listens yet.
func Build(ctx context.Context, c *Config, log hclog.Logger) (_ *runtime, err error) {
	// rt is not the named result: every early return sets that to nil, and
	// the cleanup below must still see what was opened.
	rt := &runtime{log: log}
	defer func() {
		if err != nil {
			rt.Close()
		}
	}()
	hc, err := hsmConfig(c)
	if err != nil {
		return nil, err
	}
	if rt.hsm, err = hsm.Open(ctx, hc, log.Named("hsm")); err != nil {
		return nil, fmt.Errorf("opening the HSM: %w", err)
	}
	sync := c.Storage.SyncWrites
	if rt.store, err = storage.OpenBadger(c.Storage.Path, storage.BadgerOptions{SyncWrites: &sync}, log.Named("storage")); err != nil {
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	rt.keyring = kek.New(rt.hsm, rt.store, kek.Config{CacheTTL: c.KEK.CacheTTL, CacheSize: c.KEK.CacheSize}, log.Named("kek"))
	rt.metrics = server.NewMetrics()
	for _, c := range []prometheus.Collector{rt.hsm.Collector(), rt.store.Collector()} {
		if err := rt.metrics.Register(c); err != nil {
			return nil, err
		}
	}
	opts := kmipops.Options{CheckCredentials: c.Listener.CheckCredentials, Observer: rt.metrics, LeaseTime: c.KMIP.LeaseTime,
		ObjectCacheBytes: int(c.KEK.ObjectCacheBytes)}
	if opts.ObjectCacheBytes == 0 {
		opts.ObjectCacheBytes = -1 // kmipd.hcl's 0 means off; kmipops' 0 means the default
	}
	if c.Listener.CheckCredentials {
		if opts.Credentials, err = loadCredentials(c.Listener.CredentialsFile); err != nil {
			return nil, err
		}
	}
	rt.processor = kmipops.NewProcessor(rt.store, rt.keyring, opts, log.Named("kmip"))
	tlsConf, err := server.TLSConfig(c.Listener.CertFile, c.Listener.KeyFile, c.Listener.ClientCAFile, c.Listener.MinTLSVersion)
	if err != nil {
		return nil, err
	}
	rt.server = server.New(server.Config{
		Address:        c.Listener.Address,
		TLS:            tlsConf,
		MaxMessageSize: c.Listener.MaxMessageSize,
		ReadTimeout:    c.Listener.ReadTimeout,
		IdleTimeout:    c.Listener.IdleTimeout,
		WriteTimeout:   c.Listener.WriteTimeout,
		RequestTimeout: c.Listener.RequestTimeout,
		MaxConns:       c.Listener.MaxConnections,
		Metrics:        rt.metrics,
	}, rt.processor, log)
	if c.Telemetry != nil && c.Telemetry.Address != "" {
		rt.telemetry = server.TelemetryServer(c.Telemetry.Address, rt.metrics, rt.hsm.Ready, log.Named("telemetry"))
	}
	return rt, nil
}

// Serve runs until ctx ends; SIGHUP reloads the TLS certificates.
func (rt *runtime) Serve(ctx context.Context, c *Config) error {
	if rt.telemetry != nil {
		go func() {
			if err := rt.telemetry.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				rt.log.Error("telemetry listener failed", "error", err)
			}
		}()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				t, err := server.TLSConfig(c.Listener.CertFile, c.Listener.KeyFile, c.Listener.ClientCAFile, c.Listener.MinTLSVersion)
				if err != nil {
					rt.log.Error("certificate reload failed; keeping the old ones", "error", err)
					continue
				}
				rt.server.SetTLSConfig(t)
				rt.log.Info("certificates reloaded")
			}
		}
	}()
	return rt.server.ListenAndServe(ctx)
}

func (rt *runtime) Close() {
	if rt.telemetry != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = rt.telemetry.Shutdown(sctx)
		cancel()
	}
	if rt.store != nil {
		if err := rt.store.Close(); err != nil {
			rt.log.Error("closing the store", "error", err)
		}
	}
	if rt.hsm != nil {
		if err := rt.hsm.Close(); err != nil {
			rt.log.Error("closing the HSM", "error", err)
		}
	}
}

func cmdServe(ctx context.Context, args []string, stderr io.Writer) error {
	c, err := loadConfigFlag("serve", "serve -config FILE", args, stderr)
	if err != nil {
		return err
	}
	return serveConfig(ctx, c, stderr)
}

func serveConfig(ctx context.Context, c *Config, logOut io.Writer) error {
	log := newLogger(c.Log, logOut)
	rt, err := Build(ctx, c, log)
	if err != nil {
		return err
	}
	defer rt.Close()
	log.Info("serving KMIP", "address", c.Listener.Address, "max_sessions", c.HSM.MaxSessions)
	return rt.Serve(ctx, c)
}

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
