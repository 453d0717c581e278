package crash_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/certs"
	"github.com/kmipd/kmipd/conformance"
	"github.com/kmipd/kmipd/testkit"
	"github.com/kmipd/kmipd/tests/hostile"
)

// devServer is `kmipd dev` on one folder, started again and again on it.
// testkit.StartDev makes a fresh folder per server, and a crash test is
// all about the same folder surviving, so this keeps its own process.
type devServer struct {
	t    *testing.T
	bin  string
	dir  string
	addr string
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

func newDevServer(t *testing.T, dir string) *devServer {
	return &devServer{t: t, bin: testkit.BuildKmipd(t), dir: dir}
}

// spawn starts children from one OS thread that never exits: Pdeathsig
// fires when the forking thread ends, and it must fire only when this test
// binary dies (a go test timeout), so no kmipd outlives it.
var (
	spawnOnce sync.Once
	spawnCh   chan func()
)

func spawn(fn func()) {
	spawnOnce.Do(func() {
		spawnCh = make(chan func())
		go func() {
			runtime.LockOSThread()
			for f := range spawnCh {
				f()
			}
		}()
	})
	done := make(chan struct{})
	spawnCh <- func() { fn(); close(done) }
	<-done
}

// start launches kmipd dev on a fresh port and waits until it answers.
func (s *devServer) start() {
	t := s.t
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	l.Close()
	if s.log, err = os.OpenFile(filepath.Join(s.dir, "..", "kmipd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(s.log, "=== start on %s\n", s.addr)
	s.cmd = exec.Command(s.bin, "dev", "-dir", s.dir, "-addr", s.addr, "-telemetry-addr", "off", "-log-level", "info")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0 halt_on_error=1")
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	spawn(func() { err = s.cmd.Start() })
	if err != nil {
		t.Fatalf("start kmipd: %v", err)
	}
	s.done = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-s.done:
			t.Fatalf("kmipd exited during start-up:\n%s", s.logTail())
		default:
		}
		// The first start creates the PKI; until then there is no client
		// certificate to dial with.
		if cfg, err := s.tryClientTLS(certs.ClientCertFile, certs.ClientKeyFile); err == nil {
			if c, err := s.dial(cfg); err == nil {
				_, err = c.RoundTrip(hostile.Request(hostile.Item(kmip14.OperationDiscoverVersions)))
				c.Close()
				if err == nil {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			s.kill()
			t.Fatalf("kmipd not serving after 60s:\n%s", s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends kmipd with SIGKILL, as a power cut or an OOM kill would.
func (s *devServer) kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.log.Close()
	s.cmd = nil
}

func (s *devServer) pki() string { return filepath.Join(s.dir, "pki") }

func (s *devServer) clientTLS(certFile, keyFile string) *tls.Config {
	cfg, err := s.tryClientTLS(certFile, keyFile)
	if err != nil {
		s.t.Fatalf("client TLS: %v", err)
	}
	return cfg
}

func (s *devServer) tryClientTLS(certFile, keyFile string) (*tls.Config, error) {
	cfg, err := conformance.TLSConfig(filepath.Join(s.pki(), certs.CACertFile),
		filepath.Join(s.pki(), certFile), filepath.Join(s.pki(), keyFile))
	if err != nil {
		return nil, err
	}
	cfg.ServerName = "localhost"
	return cfg, nil
}

func (s *devServer) dial(cfg *tls.Config) (*hostile.Conn, error) {
	c, err := hostile.DialAddr(s.addr, cfg)
	if err != nil {
		return nil, err
	}
	c.Timeout = 20 * time.Second
	return c, nil
}

func (s *devServer) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "..", "kmipd.log"))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// newIdentity issues a client certificate from the dev CA into the PKI
// folder: a new owner, whose first request creates its pKEK.
func (s *devServer) newIdentity(name string) *tls.Config {
	s.t.Helper()
	if err := certs.Issue(s.pki(), name, certs.Options{}); err != nil {
		s.t.Fatalf("issue %s: %v", name, err)
	}
	return s.clientTLS(name+".crt", name+".key")
}
