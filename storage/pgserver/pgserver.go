// Package pgserver runs a private PostgreSQL server from the Debian
// postgresql package's binaries (/usr/lib/postgresql/*/bin): initdb and
// pg_ctl on a folder, listening on 127.0.0.1 and a free port, with fsync on.
// `kmipd dev -cluster` keeps one under DIR/pg; storage/pgtest starts
// throw-away ones for tests.
//
// When running as root the server runs as the postgres user, since initdb
// refuses root: the folder is handed to that user, and every folder above it
// must let that user through.
package pgserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// binGlob is where Debian and Ubuntu's postgresql packages install the
// server binaries, one directory per major version.
const binGlob = "/usr/lib/postgresql/*/bin"

// ErrNotInstalled is returned when no PostgreSQL server binaries are found.
var ErrNotInstalled = errors.New("PostgreSQL server binaries not installed (no " + binGlob + "/initdb); install the postgresql package")

// BinDir finds the newest installed major version's binaries.
func BinDir() (string, error) {
	dirs, _ := filepath.Glob(binGlob)
	var ok []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			ok = append(ok, d)
		}
	}
	if len(ok) == 0 {
		return "", ErrNotInstalled
	}
	// Numeric order: 9 < 10 < 15 < 17.
	sort.Slice(ok, func(i, j int) bool { return majorOf(ok[i]) < majorOf(ok[j]) })
	return ok[len(ok)-1], nil
}

func majorOf(bin string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
	return n
}

// Server is a PostgreSQL data folder and, once started, its server.
type Server struct {
	dir  string // root: data/, sock/, log
	bin  string
	port int
	cred *runAs   // nil: run as the current user
	conf []string // further postgresql.auto.conf lines (replication.go, listen.go)
	// listen are the addresses besides 127.0.0.1 (ListenAlso)
	listen []string
}

// Init prepares dir for a server: it runs initdb on dir/data unless that
// already holds a cluster, so a folder is reused across runs.
func Init(dir string) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	cred, err := serverUser()
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bin: bin, cred: cred}
	if _, err := os.Stat(filepath.Join(s.data(), "PG_VERSION")); err == nil {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	for _, d := range []string{s.data(), s.sock()} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, err
		}
	}
	if err := s.cred.own(s.dir, s.data(), s.sock()); err != nil {
		return nil, err
	}
	// --no-sync skips only initdb's own final sync; the server itself runs
	// with fsync on.
	err = s.run(filepath.Join(s.bin, "initdb"), "-D", s.data(), "--auth=trust", "--username=postgres",
		"--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	if err != nil {
		_ = os.RemoveAll(s.data())
	}
	return s, err
}

// Dir is the server's root folder.
func (s *Server) Dir() string { return s.dir }

func (s *Server) data() string { return filepath.Join(s.dir, "data") }
func (s *Server) sock() string { return filepath.Join(s.dir, "sock") }
func (s *Server) logFile() string {
	return filepath.Join(s.dir, "log")
}

// Start starts the server on a free port of 127.0.0.1, trying a few: a
// free port found by listening can be taken before the server binds it. A
// server left running on the folder (its owner was killed) is stopped first.
func (s *Server) Start() error {
	if _, err := os.Stat(filepath.Join(s.data(), "postmaster.pid")); err == nil {
		_ = s.ctl("stop", "-m", "fast", "-w", "-t", "30")
	}
	var err error
	for range 3 {
		if s.port, err = freePort(); err != nil {
			continue
		}
		if err = s.configure(); err != nil {
			return err
		}
		if err = s.ctl("start", "-w", "-t", "60", "-l", s.logFile()); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%w\n%s", err, s.LogTail())
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
	for _, l := range s.conf {
		conf += l + "\n"
	}
	path := filepath.Join(s.data(), "postgresql.auto.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return err
	}
	return s.cred.own(path)
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is the server's address with database db, as the superuser.
func (s *Server) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: s.Addr(),
		Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// Exec runs sql as the superuser on database db.
func (s *Server) Exec(ctx context.Context, db, sql string, args ...any) error {
	c, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// EnsureDatabase creates database name (an identifier) unless it exists.
func (s *Server) EnsureDatabase(ctx context.Context, name string) error {
	c, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	var exists bool
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	_, err = c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}

// Restart stops the server (fast: open sessions are disconnected) and
// starts it again on the same port and data.
func (s *Server) Restart() error {
	if err := s.ctl("restart", "-m", "fast", "-w", "-t", "60", "-l", s.logFile()); err != nil {
		return fmt.Errorf("%w\n%s", err, s.LogTail())
	}
	return nil
}

// Stop stops the server, fast, and immediately if that fails.
func (s *Server) Stop() error {
	err := s.ctl("stop", "-m", "fast", "-w", "-t", "60")
	if err != nil {
		err = fmt.Errorf("%w\n%s", err, s.LogTail())
		_ = s.ctl("stop", "-m", "immediate", "-w", "-t", "10")
	}
	return err
}

func (s *Server) ctl(args ...string) error {
	return s.run(filepath.Join(s.bin, "pg_ctl"), append([]string{"-D", s.data()}, args...)...)
}

// run runs a PostgreSQL binary as the server's user. pg_ctl start leaves
// the server running after it returns, detached from our pipes (-l).
func (s *Server) run(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
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

// LogTail is the end of the server's log.
func (s *Server) LogTail() string {
	b, _ := os.ReadFile(s.logFile())
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
