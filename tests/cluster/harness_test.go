// Package cluster tests kmipd replicas that share one PostgreSQL database and
// one HSM token under one cluster-wide session budget: what one replica
// writes, every other serves at once.
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/certs"
	"github.com/kmipd/kmipd/daemon"
	"github.com/kmipd/kmipd/hsm/hsmtest"
	"github.com/kmipd/kmipd/kmipclient"
	"github.com/kmipd/kmipd/storage/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// replica is one in-process kmipd of a cluster.
type replica struct {
	d     *daemon.Daemon
	addr  string
	admin string // its admin socket
}

// cluster is n replicas on one fresh database and one fresh SoftHSM token,
// cluster_max_sessions = budget, each with max_sessions = budget.
type cluster struct {
	t        *testing.T
	replicas []*replica
	ca       *certs.CA
	pool     *x509.CertPool
	url      string
}

func startCluster(t *testing.T, n, budget int) *cluster {
	t.Helper()
	return startClusterOn(t, pgtest.Database(t), n, budget)
}

// startClusterOn is startCluster on the database at url.
func startClusterOn(t *testing.T, url string, n, budget int) *cluster {
	t.Helper()
	hc := hsmtest.SoftHSM(t)
	dir := t.TempDir()
	pki := filepath.Join(dir, daemon.DevPKIDir)
	if err := certs.Init(pki, certs.Options{}); err != nil {
		t.Fatal(err)
	}
	ca, err := certs.LoadCA(pki, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, ca: ca, pool: ca.Pool(), url: url}
	for i := range n {
		cfg := daemon.DevConfig(dir, "127.0.0.1:0", hc.ModulePath, budget)
		cfg.HSM.TokenLabel, cfg.HSM.PIN = hc.TokenLabel, daemon.Secret(hc.PIN)
		cfg.Storage = daemon.StorageConfig{Backend: daemon.BackendPostgres, Postgres: &daemon.PostgresConfig{URL: daemon.Secret(url), MaxConns: 8}}
		cfg.HSM.ClusterMaxSessions = budget
		cfg.Audit = nil
		cfg.Admin = &daemon.AdminConfig{Socket: filepath.Join(dir, fmt.Sprintf("admin-%d.sock", i))}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		d, err := daemon.BuildWith(ctx, cfg, hclog.NewNullLogger(), daemon.Hooks{Replica: fmt.Sprintf("r%d", i)})
		cancel()
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		sctx, stop := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- d.Serve(sctx, l) }()
		t.Cleanup(func() {
			stop()
			if err := <-served; err != nil {
				t.Errorf("replica %d serve: %v", i, err)
			}
			if err := d.Close(); err != nil {
				t.Errorf("replica %d close: %v", i, err)
			}
		})
		c.replicas = append(c.replicas, &replica{d: d, addr: l.Addr().String(), admin: cfg.Admin.Socket})
	}
	return c
}

// identity issues a client certificate: each name is a distinct owner.
func (c *cluster) identity(name string) tls.Certificate {
	c.t.Helper()
	is, err := c.ca.IssueClient(name)
	if err != nil {
		c.t.Fatal(err)
	}
	return is.TLS()
}

// client connects to replica i as id.
func (c *cluster) client(i int, id tls.Certificate) *kmipclient.Client {
	c.t.Helper()
	cl, err := kmipclient.New(kmipclient.Config{Addr: c.replicas[i].addr, Timeout: 30 * time.Second,
		TLS: &tls.Config{RootCAs: c.pool, ServerName: "localhost", Certificates: []tls.Certificate{id}, MinVersion: tls.VersionTLS12}})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// clients connects to every replica as id.
func (c *cluster) clients(id tls.Certificate) []*kmipclient.Client {
	out := make([]*kmipclient.Client, len(c.replicas))
	for i := range c.replicas {
		out[i] = c.client(i, id)
	}
	return out
}
