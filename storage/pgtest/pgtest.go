// Package pgtest runs real PostgreSQL servers for tests: the Debian binaries
// (/usr/lib/postgresql/*/bin), initdb and pg_ctl in a temporary directory,
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
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// binGlob is where Debian and Ubuntu's postgresql packages install the
// server binaries, one directory per major version.
const binGlob = "/usr/lib/postgresql/*/bin"

// Server is one running PostgreSQL instance.
type Server struct {
	dir  string // temporary root: data/, sock/, log
	bin  string
	port int
	cred *runAs // nil: run as the current user

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
	bin := binDir(t)
	if !mainActive.Load() {
		t.Fatal("pgtest: the shared server needs TestMain to call pgtest.Main(m), which stops it; or use pgtest.New")
	}
	sharedOnce.Do(func() { shared, sharedErr = start(bin) })
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
	s, err := start(binDir(t))
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

// binDir finds the newest installed major version's binaries, or skips.
func binDir(t testing.TB) string {
	t.Helper()
	dirs, _ := filepath.Glob(binGlob)
	var ok []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			ok = append(ok, d)
		}
	}
	if len(ok) == 0 {
		t.Skipf("PostgreSQL server binaries not installed (no %s/initdb); install the postgresql package to run these tests", binGlob)
	}
	// Numeric order: 9 < 10 < 15 < 17.
	sort.Slice(ok, func(i, j int) bool { return majorOf(ok[i]) < majorOf(ok[j]) })
	return ok[len(ok)-1]
}

func majorOf(bin string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
	return n
}

// start runs initdb and starts the server, trying a few ports: a free port
// found by listening can be taken by someone else before the server binds it.
func start(bin string) (*Server, error) {
	cred, err := serverUser()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kmipd-pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bin: bin, cred: cred}
	if err := s.initdb(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if s.port, err = freePort(); err == nil {
			if err = s.configure(); err == nil {
				if err = s.ctl("start", "-w", "-t", "60", "-l", filepath.Join(dir, "log")); err == nil {
					return s, nil
				}
			}
		}
		if attempt == 2 {
			err = fmt.Errorf("%w\n%s", err, s.logTail())
			_ = os.RemoveAll(dir)
			return nil, err
		}
	}
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }
func (s *Server) sock() string { return filepath.Join(s.dir, "sock") }

func (s *Server) initdb() error {
	for _, d := range []string{s.data(), s.sock()} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
	}
	if err := s.cred.own(s.dir, s.data(), s.sock()); err != nil {
		return err
	}
	// --no-sync skips only initdb's own final sync of a throw-away
	// directory; the server itself runs with fsync on.
	return s.run(filepath.Join(s.bin, "initdb"), "-D", s.data(), "--auth=trust", "--username=postgres",
		"--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
}

// configure writes the settings into postgresql.auto.conf, so pg_ctl
// restart keeps them.
func (s *Server) configure() error {
	conf := fmt.Sprintf(`listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
fsync = on
synchronous_commit = on
shared_buffers = '32MB'
max_connections = 200
logging_collector = off
`, s.port, s.sock())
	path := filepath.Join(s.data(), "postgresql.auto.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return err
	}
	return s.cred.own(path)
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is the server's address with database db.
func (s *Server) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: s.Addr(),
		Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
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
	c, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// Exec runs sql as the superuser on database db of s (a test setting up a
// condition, e.g. terminating sessions).
func (s *Server) Exec(ctx context.Context, db, sql string, args ...any) error {
	c, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, sql, args...)
	return err
}

// Restart stops the server (fast: open sessions are disconnected) and
// starts it again on the same port and data.
func (s *Server) Restart() error {
	if err := s.ctl("restart", "-m", "fast", "-w", "-t", "60", "-l", filepath.Join(s.dir, "log")); err != nil {
		return fmt.Errorf("%w\n%s", err, s.logTail())
	}
	return nil
}

// Stop stops the server and removes its directory. It is idempotent.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	err := s.ctl("stop", "-m", "fast", "-w", "-t", "60")
	if err != nil {
		err = fmt.Errorf("%w\n%s", err, s.logTail())
		// Do not leave a server running on a directory we remove.
		_ = s.ctl("stop", "-m", "immediate", "-w", "-t", "10")
	}
	if rmErr := os.RemoveAll(s.dir); err == nil {
		err = rmErr
	}
	return err
}

func (s *Server) ctl(args ...string) error {
	return s.run(filepath.Join(s.bin, "pg_ctl"), append([]string{"-D", s.data()}, args...)...)
}

// run runs a PostgreSQL binary as the server's user. pg_ctl start leaves
// the server running after it returns, detached from our pipes (-l).
func (s *Server) run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	s.cred.apply(cmd)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %v: %w: %s", filepath.Base(name), args, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "log"))
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return "server log:\n" + string(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
