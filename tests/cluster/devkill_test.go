package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kmipd/kmipd/certs"
	"github.com/kmipd/kmipd/hsm/testmodule"
	"github.com/kmipd/kmipd/kmipclient"
	"github.com/kmipd/kmipd/testkit"
)

// devCluster is the cluster.json `kmipd dev -cluster` writes.
type devCluster struct {
	Replicas []struct {
		Addr      string `json:"addr"`
		PID       int    `json:"pid"`
		Telemetry string `json:"telemetry"`
	} `json:"replicas"`
	PostgresURL string `json:"postgres_url"`
}

// devOptions configures startDevClusterWith.
type devOptions struct {
	budget   int      // -max-sessions, the cluster-wide budget, and the capped module's cap
	replicas int      // -cluster (default 3)
	args     []string // further `kmipd dev` flags
	env      []string // further environment (CAPPED_DELAY_US=...)
}

// startDevCluster runs `kmipd dev -cluster 3` over the capped module (an
// HSM-wide cap of budget sessions) and returns its cluster.json, its folder
// and the capped HSM's control.
func startDevCluster(t *testing.T, budget int) (devCluster, string, *testmodule.Control) {
	t.Helper()
	return startDevClusterWith(t, devOptions{budget: budget})
}

// startDevClusterWith is startDevCluster with o.
func startDevClusterWith(t *testing.T, o devOptions) (devCluster, string, *testmodule.Control) {
	t.Helper()
	if o.replicas == 0 {
		o.replicas = 3
	}
	budget := o.budget
	bin := testkit.BuildKmipd(t)
	so := testmodule.Build(t)
	// Not t.TempDir: as root, PostgreSQL runs as the postgres user, which
	// must be able to reach DIR/pg through every folder above it.
	dir, err := os.MkdirTemp("", "kmipd-devcluster-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "capped.state")
	base := testkit.FreePorts(t, 2*o.replicas)
	args := append([]string{"dev", "-cluster", strconv.Itoa(o.replicas), "-dir", filepath.Join(dir, "dev"), "-addr", "127.0.0.1:" + strconv.Itoa(base),
		"-hsm-module", so, "-max-sessions", strconv.Itoa(budget), "-log-level", "warn"}, o.args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), "CAPPED_STATE="+state, "CAPPED_MAX_SESSIONS="+strconv.Itoa(budget), "CAPPED_REFUSE=CKR_DEVICE_MEMORY"), o.env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var info devCluster
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("kmipd dev did not stop on SIGINT:\n%s", out.String())
		}
		for _, r := range info.Replicas { // none may outlive dev
			if syscall.Kill(r.PID, 0) == nil {
				t.Errorf("replica pid %d outlived kmipd dev", r.PID)
				_ = syscall.Kill(r.PID, syscall.SIGKILL)
			}
		}
	})
	deadline := time.Now().Add(3 * time.Minute)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "dev", "cluster.json"))
		if err == nil && json.Unmarshal(b, &info) == nil {
			break
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("kmipd dev exited: %v\n%s", err, out.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no cluster.json after 3 minutes:\n%s", out.String())
		}
	}
	if len(info.Replicas) != o.replicas || info.PostgresURL == "" {
		t.Fatalf("cluster.json: %+v", info)
	}
	ctl, err := testmodule.OpenControl(state)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	return info, filepath.Join(dir, "dev"), ctl
}

// TestDevClusterSurvivesSIGKILL: under load on every replica, one replica
// is SIGKILLed. The clients of the other two see no error, the HSM never
// holds more sessions than the budget, and every object acknowledged before
// the kill, on any replica, reads back byte for byte through the survivors.
func TestDevClusterSurvivesSIGKILL(t *testing.T) {
	const budget, owners, perWorker = 6, 3, 5000 // perWorker bounds the load; stop ends it sooner
	info, dir, ctl := startDevCluster(t, budget)
	pki := filepath.Join(dir, "pki")
	ca, err := certs.LoadCA(pki, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]tls.Certificate, owners)
	for i := range ids {
		is, err := ca.IssueClient(fmt.Sprintf("load-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = is.TLS()
	}
	client := func(replica int, id tls.Certificate) *kmipclient.Client {
		cl, err := kmipclient.New(kmipclient.Config{Addr: info.Replicas[replica].Addr, Timeout: 20 * time.Second,
			TLS: &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{id}, MinVersion: tls.VersionTLS12}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cl.Close() })
		return cl
	}

	type acked struct {
		owner    int
		id       string
		material []byte
	}
	var (
		mu          sync.Mutex
		beforeKill  []acked
		killed      bool
		survivorErr []error
		served      [3]int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for replica := range 3 {
		for owner := range owners {
			cl := client(replica, ids[owner])
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := context.Background()
				for range perWorker {
					select {
					case <-stop:
						return
					default:
					}
					id, err := cl.Create(ctx, aes)
					var o *kmipclient.Object
					if err == nil {
						o, err = cl.Get(ctx, id, 0)
					}
					mu.Lock()
					switch {
					case err != nil && replica != 0:
						survivorErr = append(survivorErr, fmt.Errorf("replica %d: %w", replica, err))
					case err == nil && !killed:
						beforeKill = append(beforeKill, acked{owner, id, o.Material})
					}
					if err == nil {
						served[replica]++
					}
					mu.Unlock()
					if err != nil && replica == 0 {
						return // the victim's clients: errors are expected
					}
				}
			}()
		}
	}
	// Let every replica serve, then kill replica 0 without warning.
	time.Sleep(2 * time.Second)
	mu.Lock()
	killed = true
	mu.Unlock()
	if err := syscall.Kill(info.Replicas[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Past the victim's lease (10 s) and margin, so its share has moved.
	time.Sleep(15 * time.Second)
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("served %v; %d objects acknowledged before the kill; HSM peak %d of %d", served, len(beforeKill), ctl.Peak(), budget)
	for _, err := range survivorErr {
		t.Error(err)
	}
	if peak := ctl.Peak(); peak > budget {
		t.Errorf("the HSM held %d sessions at once, budget %d", peak, budget)
	}
	if served[0] == 0 || served[1] == 0 || served[2] == 0 || len(beforeKill) == 0 {
		t.Fatalf("the load did not reach every replica: %v", served)
	}
	readers := [][]*kmipclient.Client{}
	for replica := 1; replica < 3; replica++ {
		var cls []*kmipclient.Client
		for owner := range owners {
			cls = append(cls, client(replica, ids[owner]))
		}
		readers = append(readers, cls)
	}
	ctx := context.Background()
	for _, a := range beforeKill {
		for r, cls := range readers {
			o, err := cls[a.owner].Get(ctx, a.id, 0)
			if err != nil {
				t.Fatalf("replica %d cannot read %s, acknowledged before the kill: %v", r+1, a.id, err)
			}
			if !bytes.Equal(o.Material, a.material) {
				t.Fatalf("replica %d reads %s differently", r+1, a.id)
			}
		}
	}
}
