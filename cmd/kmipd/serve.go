package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/daemon"
)

func cmdServe(ctx context.Context, args []string, stderr io.Writer) error {
	c, err := loadConfigFlag("serve", "serve -config FILE", args, stderr)
	if err != nil {
		return err
	}
	return serveConfig(ctx, c, stderr)
}

// serveConfig builds kmipd from c and serves until ctx ends; SIGHUP reloads
// the TLS certificates.
func serveConfig(ctx context.Context, c *daemon.Config, logOut io.Writer) error {
	log := daemon.NewLogger(c.Log, logOut)
	d, err := daemon.Build(ctx, c, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := d.Close(); err != nil {
			log.Error("shutting down", "error", err)
		}
	}()
	// Registered before serving: SIGHUP's default action ends the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go reloadOnHangup(ctx, hup, d, log)
	log.Info("serving KMIP", "address", c.Listener.Address, "max_sessions", c.HSM.MaxSessions)
	return d.ListenAndServe(ctx)
}

func reloadOnHangup(ctx context.Context, hup <-chan os.Signal, d *daemon.Daemon, log hclog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := d.ReopenAudit(); err != nil {
				log.Error("audit log reopen failed; still writing the old file", "error", err)
			}
			if err := d.ReloadTLS(); err != nil {
				log.Error("certificate reload failed; keeping the old ones", "error", err)
				continue
			}
			log.Info("certificates reloaded")
		}
	}
}
