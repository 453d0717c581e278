// Package pgtest runs real PostgreSQL servers for tests (storage/pgserver:
// the Debian binaries, initdb and pg_ctl) in temporary directories,
// listening on 127.0.0.1 and a free port, with fsync on.
//
// One server serves a whole test binary and every test gets its own
// database, so tests stay fast and independent:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
//	url := pgtest.Database(t) // a fresh database on the shared server
//
// A test that restarts or stops its server starts a private one with New.
// When running as root (CI), the server runs as the postgres user, since
// initdb refuses root.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmipd/kmipd/storage/pgserver"
)

// Server is one running PostgreSQL instance.
type Server struct {
	*pgserver.Server

	mu      sync.Mutex
	stopped bool
}

var (
	mainActive atomic.Bool
	sharedOnce sync.Once
	shared     *Server
	sharedErr  error
	dbCounter  atomic.Uint64
)

// Main runs the tests and then stops the shared server, if a test started
// one. Call it from TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	mainActive.Store(true)
	code := m.Run()
	if shared != nil {
		if err := shared.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stop shared server: %v\n", err)
		}
	}
	return code
}

// Shared returns the test binary's server, starting it on first use. It
// skips the test when PostgreSQL is not installed. The package's TestMain
// must call Main, which stops the server when the tests are done.
func Shared(t testing.TB) *Server {
	t.Helper()
	skipUnlessInstalled(t)
	if !mainActive.Load() {
		t.Fatal("pgtest: the shared server needs TestMain to call pgtest.Main(m), which stops it; or use pgtest.New")
	}
	sharedOnce.Do(func() { shared, sharedErr = start() })
	if sharedErr != nil {
		t.Fatalf("pgtest: start shared server: %v", sharedErr)
	}
	return shared
}

// Database creates a fresh database on the shared server and returns its
// URL; the database is dropped when the test ends.
func Database(t testing.TB) string {
	t.Helper()
	return Shared(t).Database(t)
}

// New starts a private server for t, stopped when t ends: for tests that
// restart or stop it.
func New(t testing.TB) *Server {
	t.Helper()
	skipUnlessInstalled(t)
	s, err := start()
	if err != nil {
		t.Fatalf("pgtest: start server: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("pgtest: stop server: %v", err)
		}
	})
	return s
}

func skipUnlessInstalled(t testing.TB) {
	t.Helper()
	if _, err := pgserver.BinDir(); err != nil {
		t.Skipf("%v to run these tests", err)
	}
}

// start runs initdb in a fresh temporary directory and starts the server.
func start() (*Server, error) {
	dir, err := os.MkdirTemp("", "kmipd-pgtest-")
	if err != nil {
		return nil, err
	}
	ps, err := pgserver.Init(dir)
	if err == nil {
		err = ps.Start()
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return &Server{Server: ps}, nil
}

// Database creates a fresh database for t and returns its URL; it is
// dropped when t ends.
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("kmipd_test_%d_%d", os.Getpid(), dbCounter.Add(1))
	if err := s.admin(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		s.mu.Lock()
		stopped := s.stopped
		s.mu.Unlock()
		if stopped {
			return
		}
		// FORCE ends sessions a failed test left open.
		if err := s.admin(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s.URL(name)
}

// admin runs one statement on the postgres database.
func (s *Server) admin(ctx context.Context, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return s.Exec(ctx, "postgres", sql)
}

// Stop stops the server and removes its directory. It is idempotent.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	err := s.Server.Stop()
	if rmErr := os.RemoveAll(s.Dir()); err == nil {
		err = rmErr
	}
	return err
}
