package cluster

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kmipd/kmipd/daemon"
	"github.com/kmipd/kmipd/testkit"
)

// nsReplica is a `kmipd serve` process in a network namespace, configured
// as `kmipd dev -cluster` configures its replicas.
type nsReplica struct {
	pid             int
	addr, telemetry string
	out             *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startNSReplica starts one more replica of the dev cluster in dir, inside
// ns: replica-0's configuration, listening on the namespace's client
// address and reaching PostgreSQL at the host end of its database link.
func startNSReplica(t *testing.T, ns *netns, dir, pgURL, cappedState string) *nsReplica {
	t.Helper()
	c, err := daemon.LoadConfig(filepath.Join(dir, "replica-0.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(pgURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = net.JoinHostPort(ns.dbHost.Addr().String(), u.Port())
	c.Storage.Postgres.URL = daemon.Secret(u.String())
	host := ns.cliNS.Addr().String()
	r := &nsReplica{addr: net.JoinHostPort(host, "5696"), telemetry: net.JoinHostPort(host, "5697"), out: &lockedBuffer{}}
	c.Listener.Address = r.addr
	c.Telemetry = &daemon.TelemetryConfig{Address: r.telemetry}
	c.Audit = &daemon.AuditConfig{File: filepath.Join(dir, "audit-ns.log")}
	c.Admin = &daemon.AdminConfig{Socket: filepath.Join(dir, "admin-ns.sock")}
	var buf bytes.Buffer
	if err := c.WriteHCL(&buf); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "replica-ns.hcl")
	if err := os.WriteFile(cfg, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := ns.command(testkit.BuildKmipd(t), "serve", "-config", cfg)
	// As dev runs its replicas: its SoftHSM configuration and the capped
	// module's shared state.
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+filepath.Join(dir, "softhsm2.conf"), "CAPPED_STATE="+cappedState)
	cmd.Stdout, cmd.Stderr = r.out, r.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.pid = cmd.Process.Pid // ip netns exec execs kmipd in place
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(time.Minute)
	for !r.ready() {
		select {
		case <-exited:
			t.Fatalf("the replica in the namespace exited:\n%s", r.out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica in the namespace is not ready after a minute:\n%s", r.out.String())
		}
	}
	return r
}

func (r *nsReplica) ready() bool {
	hc := &http.Client{Timeout: time.Second}
	resp, err := hc.Get("http://" + r.telemetry + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// leaseExpiry is when the budget row of the replica process pid expires,
// by the database's clock (this machine's), or false if it has none.
func leaseExpiry(ctx context.Context, t *testing.T, pgURL string, pid int) (time.Time, bool) {
	t.Helper()
	c, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var exp time.Time
	err = c.QueryRow(ctx, "SELECT expires_at FROM kmipd_hsm_budget WHERE replica LIKE $1", "%-"+strconv.Itoa(pid)).Scan(&exp)
	if err == pgx.ErrNoRows {
		return time.Time{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return exp, true
}

// TestReplicaProcessCutFromPostgres: three replica processes, one of them
// in a network namespace whose only path to PostgreSQL the test cuts under
// load. The cut replica acknowledges no write begun after the cut and
// closes every HSM session it had (as the HSM counts them, per process)
// before its lease in the database ends; the two others serve on with no
// error, take over its share, and the HSM never holds more than the
// budget nor refuses a session. Healed, the replica serves again.
func TestReplicaProcessCutFromPostgres(t *testing.T) {
	const budget = 6
	ns := newNetns(t)
	info, dir, ctl := startDevClusterWith(t, devOptions{budget: budget, replicas: 2, args: []string{"-pg-listen", ns.dbHost.String()}})
	cut := startNSReplica(t, ns, dir, info.PostgresURL, ctl.Path())
	pki := loadDevPKI(t, dir)
	owners := pki.owners("cut", 3)
	addrs := []string{info.Replicas[0].Addr, info.Replicas[1].Addr, cut.addr}
	const victim = 2
	var workers []loadWorker
	for r, addr := range addrs {
		for o := range owners {
			timeout := 30 * time.Second
			if r == victim {
				timeout = 3 * time.Second // its requests hang once it is cut
			}
			workers = append(workers, loadWorker{replica: r, owner: o, cl: pki.client(addr, owners[o], timeout), reconnect: o == 0})
		}
	}
	l := startProcLoad(workers, 0)
	defer l.stop()
	time.Sleep(3 * time.Second)
	l.mu.Lock()
	servedBefore := l.ok[victim]
	l.mu.Unlock()
	if servedBefore == 0 {
		t.Fatalf("the replica in the namespace served nothing before the cut: %v\n%s", l.failed[victim], cut.out.String())
	}
	if ctl.Stats().Procs[cut.pid] == 0 {
		t.Fatalf("the replica in the namespace holds no HSM session before the cut: %v", ctl.Stats().Procs)
	}

	// The cut is in force once ip returns (on a busy machine that takes a
	// while): times are measured from then.
	began := time.Now()
	if err := ns.cut(); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	defer func() { _ = ns.heal() }()
	t.Logf("ip took %.2f s to take the link down", cutAt.Sub(began).Seconds())
	if r := ns.hostRoute(); !strings.Contains(r, "dev "+ns.dbLink+" ") {
		t.Fatalf("while cut, this machine routes to the namespace by %q, not the host end %s", r, ns.dbLink)
	}

	// The HSM's own count of the cut process's sessions, and its lease in
	// the database (read by the test over 127.0.0.1, which is not cut).
	ctx := ctxT(t)
	var closedAt, expires time.Time
	deadline := cutAt.Add(30 * time.Second)
	for closedAt.IsZero() && time.Now().Before(deadline) {
		if ctl.Stats().Procs[cut.pid] == 0 {
			closedAt = time.Now()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if closedAt.IsZero() {
		t.Fatalf("the cut replica still holds %d HSM sessions 30 s after the cut", ctl.Stats().Procs[cut.pid])
	}
	exp, ok := leaseExpiry(ctx, t, info.PostgresURL, cut.pid)
	if !ok {
		t.Fatalf("the cut replica's lease row was gone when its sessions closed (%.2f s after the cut): reclaimed before it let go",
			closedAt.Sub(cutAt).Seconds())
	}
	expires = exp
	t.Logf("cut replica: HSM sessions all closed %.2f s after the cut; its lease ends %.2f s after the cut (%.2f s later)",
		closedAt.Sub(cutAt).Seconds(), expires.Sub(cutAt).Seconds(), expires.Sub(closedAt).Seconds())
	if !closedAt.Before(expires) {
		t.Errorf("the cut replica closed its HSM sessions %.2f s after its lease ended", closedAt.Sub(expires).Seconds())
	}
	if cut.ready() {
		t.Error("the cut replica still reports ready (/readyz) after losing its share")
	}

	// The others take its share over once its row has expired (plus the
	// margin); keep the load on until then and a little after.
	var takenAt time.Time
	for time.Now().Before(cutAt.Add(40 * time.Second)) {
		if _, ok := leaseExpiry(ctx, t, info.PostgresURL, cut.pid); !ok {
			takenAt = time.Now()
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if takenAt.IsZero() {
		t.Fatal("the cut replica's lease row was not reclaimed within 40 s")
	}
	t.Logf("its lease row was reclaimed %.2f s after the cut", takenAt.Sub(cutAt).Seconds())
	time.Sleep(2 * time.Second)
	l.stop()

	l.mu.Lock()
	for r := range victim {
		if l.nfail[r] > 0 {
			t.Errorf("replica %d: %d failed requests, e.g. %v", r, l.nfail[r], l.failed[r])
		}
		if l.ok[r] == 0 {
			t.Errorf("replica %d served nothing", r)
		}
	}
	var lateAcks []string
	for _, a := range l.acks {
		if a.replica == victim && a.start.After(cutAt) {
			lateAcks = append(lateAcks, fmt.Sprintf("%s (begun %.2f s after the cut)", a.id, a.start.Sub(cutAt).Seconds()))
		}
	}
	t.Logf("served %v, failed %v (the cut replica's failures are expected)", l.ok, l.nfail)
	l.mu.Unlock()
	if len(lateAcks) > 0 {
		t.Errorf("the cut replica acknowledged %d Creates begun after the cut: %v", len(lateAcks), lateAcks)
	}
	st := ctl.Stats()
	t.Logf("HSM: peak %d of %d, refused opens %d", st.Peak, budget, st.Refusals)
	if st.Peak > budget || st.Refusals != 0 {
		t.Errorf("HSM peak %d (budget %d), %d refused opens", st.Peak, budget, st.Refusals)
	}

	// Healed, it renews again, logs back in and serves.
	if err := ns.heal(); err != nil {
		t.Fatal(err)
	}
	healedAt := time.Now()
	cl := pki.client(cut.addr, owners[1], 10*time.Second)
	for {
		if _, err := cl.Create(ctx, aes); err == nil && cut.ready() {
			break
		} else if time.Since(healedAt) > 60*time.Second {
			t.Fatalf("the replica serves no Create 60 s after the link came back: %v\n%s", err, cut.out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("healed: the replica served a Create again %.2f s after the link came back", time.Since(healedAt).Seconds())
}
