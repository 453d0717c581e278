package daemon

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/hsm/sessionbudget"
	"github.com/kmipd/kmipd/storage"
)

// Store is the store Build opened: Badger, or PostgreSQL shared by replicas.
type Store interface {
	storage.Store
	Collector() prometheus.Collector
}

var (
	_ Store = (*storage.Badger)(nil)
	_ Store = (*storage.Postgres)(nil)
)

// openStore opens the storage block's backend.
func openStore(ctx context.Context, c *Config, log hclog.Logger) (Store, error) {
	if c.Storage.Backend != BackendPostgres {
		syncWrites := c.Storage.SyncWrites
		return storage.OpenBadger(c.Storage.Path, c.Storage.Badger.Options(storage.BadgerOptions{SyncWrites: &syncWrites}), log)
	}
	url, err := c.PostgresURL()
	if err != nil {
		return nil, err
	}
	return storage.OpenPostgres(ctx, storage.PostgresOptions{URL: url, MaxConns: int32(c.Storage.Postgres.MaxConns)}, log)
}

// openHSM opens the HSM, under the cluster-wide session budget when
// hsm.cluster_max_sessions is set: the budget's lease table lives in the
// store's database. replica names this replica among the live ones ("" is
// host-pid).
func (d *Daemon) openHSM(ctx context.Context, c *Config, replica string) error {
	hc, err := c.HSMOptions()
	if err != nil {
		return err
	}
	var opts []hsm.Option
	if c.HSM.ClusterMaxSessions > 0 {
		url, err := c.PostgresURL()
		if err != nil {
			return err
		}
		d.budget, err = sessionbudget.Open(ctx, sessionbudget.Options{URL: url, Sessions: c.HSM.ClusterMaxSessions,
			Replica: replica}, d.log.Named("budget"))
		if err != nil {
			return fmt.Errorf("opening the HSM session budget: %w", err)
		}
		opts = append(opts, hsm.WithBudget(d.budget))
	}
	if d.hsm, err = d.openHSMKeys(ctx, c, hc, opts); err != nil {
		return fmt.Errorf("opening the HSM: %w", err)
	}
	return nil
}

// ready is /readyz: the HSM hands out sessions and, under a session budget,
// this replica holds a share of it (a replica that lost its lease cannot
// serve anything that needs the HSM, so a balancer should send its clients
// elsewhere until the share is back).
func (d *Daemon) ready() bool {
	if !d.hsm.Ready() {
		return false
	}
	if d.budget == nil {
		return true
	}
	s := d.hsm.Stats()
	return !s.ShareLost && s.Share > 0
}
