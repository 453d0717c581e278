package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/kmipd/kmipd/daemon"
	"github.com/kmipd/kmipd/storage/pgserver"
)

// ClusterFile is what `kmipd dev -cluster N` writes into DIR once every
// replica is ready.
const ClusterFile = "cluster.json"

// clusterInfo is DIR/cluster.json.
type clusterInfo struct {
	Replicas    []replicaInfo `json:"replicas"`
	PostgresURL string        `json:"postgres_url"`
}

type replicaInfo struct {
	Addr      string `json:"addr"`
	PID       int    `json:"pid"`
	Telemetry string `json:"telemetry"`
}

// devReplica is one `kmipd serve` child of the dev cluster.
type devReplica struct {
	info   replicaInfo
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // set before exited closes
}

// devClusterOptions are dev -cluster's further flags.
type devClusterOptions struct {
	logLevel    string
	pgListen    string        // ADDR/PREFIX: PostgreSQL also listens on ADDR, trusting PREFIX
	kekCacheTTL time.Duration // 0: the default
}

// runDevCluster runs n replicas of kmipd as child processes sharing one
// private PostgreSQL (DIR/pg), one SoftHSM token and the dev PKI, with
// maxSessions as the cluster-wide HSM session budget. KMIP listens on
// PORT..PORT+n-1 and telemetry on PORT+n..PORT+2n-1. A replica that dies
// is not restarted; ctx ending stops them all, then PostgreSQL.
func runDevCluster(ctx context.Context, n int, dir, addr, module string, maxSessions int, o devClusterOptions, stdout, stderr io.Writer) (err error) {
	host, portStr, err := net.SplitHostPort(addr)
	port, perr := strconv.Atoi(portStr)
	if err != nil || perr != nil || port <= 0 || port+2*n > 65536 {
		return fmt.Errorf("dev -cluster: -addr %q needs a fixed port with room for %d ports after it", addr, 2*n)
	}
	if maxSessions < n {
		return fmt.Errorf("dev -cluster: -max-sessions %d is the cluster-wide budget: it must be at least the number of replicas (%d), each keeping its login session", maxSessions, n)
	}
	var listen netip.Prefix
	if o.pgListen != "" {
		if listen, err = netip.ParsePrefix(o.pgListen); err != nil {
			return fmt.Errorf("dev -cluster: -pg-listen %q: want ADDR/PREFIX, e.g. 10.200.0.1/30", o.pgListen)
		}
	}
	c, err := prepareDev(ctx, dir, addr, module, max(maxSessions, 2), 0, "off", o.logLevel)
	if err != nil {
		return err
	}
	if o.kekCacheTTL > 0 {
		c.KEK.CacheTTL = o.kekCacheTTL
	}
	dir = filepath.Dir(c.Storage.Path)
	if os.Geteuid() == 0 {
		// PostgreSQL runs as the postgres user, which must reach DIR/pg.
		if err := os.Chmod(dir, 0o711); err != nil {
			return err
		}
	}
	pg, err := pgserver.Init(filepath.Join(dir, "pg"))
	if err != nil {
		return fmt.Errorf("dev -cluster: PostgreSQL: %w", err)
	}
	// Where a request's time goes in PostgreSQL (CREATE EXTENSION
	// pg_stat_statements; scripts/bench-cluster.py reads it). Its cost is
	// negligible next to a commit's fsync.
	pg.Set("shared_preload_libraries", "pg_stat_statements")
	pg.Set("track_wal_io_timing", "on")
	if listen.IsValid() {
		if err := pg.ListenAlso(listen.Addr(), listen); err != nil {
			return fmt.Errorf("dev -cluster: -pg-listen: %w", err)
		}
	}
	if err := pg.Start(); err != nil {
		return fmt.Errorf("dev -cluster: starting PostgreSQL: %w", err)
	}
	defer func() {
		if serr := pg.Stop(); serr != nil {
			fmt.Fprintf(stderr, "kmipd dev: stopping PostgreSQL: %v\n", serr)
		}
	}()
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	err = pg.EnsureDatabase(actx, "kmipd")
	cancel()
	if err != nil {
		return fmt.Errorf("dev -cluster: creating the database: %w", err)
	}
	info := clusterInfo{PostgresURL: pg.URL("kmipd")}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	var replicas []*devReplica
	defer func() { stopReplicas(replicas, stderr) }()
	for i := range n {
		rc := *c
		rc.Listener.Address = net.JoinHostPort(host, strconv.Itoa(port+i))
		rc.Telemetry = &daemon.TelemetryConfig{Address: net.JoinHostPort(host, strconv.Itoa(port+n+i))}
		rc.Storage = daemon.StorageConfig{Backend: daemon.BackendPostgres, Postgres: &daemon.PostgresConfig{URL: daemon.Secret(info.PostgresURL)}}
		rc.HSM.MaxSessions = max(maxSessions, 2) // each replica's cap on its share
		rc.HSM.ClusterMaxSessions = maxSessions
		rc.Audit = &daemon.AuditConfig{File: filepath.Join(dir, fmt.Sprintf("audit-%d.log", i))}
		rc.Admin = &daemon.AdminConfig{Socket: filepath.Join(dir, fmt.Sprintf("admin-%d.sock", i))}
		cfgPath := filepath.Join(dir, fmt.Sprintf("replica-%d.hcl", i))
		var buf bytes.Buffer
		if err := rc.WriteHCL(&buf); err != nil {
			return err
		}
		if err := os.WriteFile(cfgPath, buf.Bytes(), 0o600); err != nil {
			return err
		}
		r, err := startReplica(self, cfgPath, filepath.Join(dir, fmt.Sprintf("replica-%d.log", i)))
		if err != nil {
			return fmt.Errorf("dev -cluster: replica %d: %w", i, err)
		}
		r.info.Addr, r.info.Telemetry = rc.Listener.Address, rc.Telemetry.Address
		replicas = append(replicas, r)
		info.Replicas = append(info.Replicas, r.info)
	}
	for i, r := range replicas {
		if err := waitReplicaReady(ctx, r, time.Minute); err != nil {
			logPath := filepath.Join(dir, fmt.Sprintf("replica-%d.log", i))
			return fmt.Errorf("dev -cluster: replica %d (log %s): %w%s", i, logPath, err, logTail(logPath, 20))
		}
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ClusterFile), append(b, '\n'), 0o600); err != nil {
		return err
	}
	printClusterBanner(stdout, dir, c, info, maxSessions)

	exits := make(chan int, len(replicas))
	for i, r := range replicas {
		go func() { <-r.exited; exits <- i }()
	}
	for alive := len(replicas); alive > 0; alive-- {
		select {
		case <-ctx.Done():
			return nil
		case i := <-exits:
			fmt.Fprintf(stderr, "kmipd dev: replica %d (pid %d) exited: %v; not restarted\n", i, replicas[i].info.PID, replicas[i].err)
		}
	}
	return errors.New("dev -cluster: every replica has exited")
}

func startReplica(self, cfgPath, logPath string) (*devReplica, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "serve", "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a terminal's Ctrl-C reaches dev, which stops
	// the replicas in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	r := &devReplica{cmd: cmd, exited: make(chan struct{}), info: replicaInfo{PID: cmd.Process.Pid}}
	go func() {
		r.err = cmd.Wait()
		logf.Close()
		close(r.exited)
	}()
	return r, nil
}

// logTail is the last n lines of a replica's log, indented under the error
// that names it: the folder holding the log may be gone by the time someone
// reads the error (a test's temporary folder).
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	lines = lines[max(0, len(lines)-n):]
	return "\n    " + string(bytes.Join(lines, []byte("\n    ")))
}

// waitReplicaReady polls the replica's /readyz.
func waitReplicaReady(ctx context.Context, r *devReplica, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := hc.Get("http://" + r.info.Telemetry + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-r.exited:
			return fmt.Errorf("exited before it was ready: %v", r.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v", timeout)
		}
	}
}

// stopReplicas sends SIGTERM to every live replica, and SIGKILL to one
// that has not stopped within 15 s.
func stopReplicas(rs []*devReplica, stderr io.Writer) {
	for _, r := range rs {
		_ = r.cmd.Process.Signal(syscall.SIGTERM) // fails harmlessly on one that exited
	}
	for i, r := range rs {
		select {
		case <-r.exited:
		case <-time.After(15 * time.Second):
			fmt.Fprintf(stderr, "kmipd dev: replica %d did not stop; killing it\n", i)
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
	}
}

func printClusterBanner(w io.Writer, dir string, c *daemon.Config, info clusterInfo, budget int) {
	pki := filepath.Dir(c.Listener.CertFile)
	fmt.Fprintf(w, "kmipd dev: a cluster of %d replicas sharing PostgreSQL and one HSM token (%d HSM sessions between them)\n", len(info.Replicas), budget)
	for i, r := range info.Replicas {
		fmt.Fprintf(w, "  replica %d: KMIP %s, telemetry http://%s, pid %d, config %s\n", i, r.Addr, r.Telemetry, r.PID,
			filepath.Join(dir, fmt.Sprintf("replica-%d.hcl", i)))
	}
	fmt.Fprintf(w, `  postgres:    %s
  cluster:     %s
  client cert: %s, key %s, CA %s

HAProxy (TCP; health from /readyz):
frontend kmip
    mode tcp
    bind :5696
    default_backend kmipd
backend kmipd
    mode tcp
    balance leastconn
    option httpchk GET /readyz
    http-check expect status 200
`, info.PostgresURL, filepath.Join(dir, ClusterFile), filepath.Join(pki, "client.crt"), filepath.Join(pki, "client.key"), filepath.Join(pki, "ca.crt"))
	for i, r := range info.Replicas {
		_, tport, _ := net.SplitHostPort(r.Telemetry)
		fmt.Fprintf(w, "    server kmipd%d %s check port %s inter 2s fall 2 rise 2\n", i, r.Addr, tport)
	}
	fmt.Fprintln(w)
}
