package pgserver

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Streaming replication, for tests of a primary failing over to a standby:
// EnableReplication on the primary before its Start, Standby to clone it
// with pg_basebackup -R, Promote to make the standby the primary.

// EnableReplication lets standbys stream from s: WAL for replicas, WAL
// senders, and a replication entry for 127.0.0.1 in pg_hba.conf. With
// syncStandby not empty, a commit waits until the standby of that
// application_name has flushed it (synchronous_commit = on), so an
// acknowledged write survives the primary. Call it before Start.
func (s *Server) EnableReplication(syncStandby string) error {
	s.conf = append(s.conf, "wal_level = replica", "max_wal_senders = 4")
	if syncStandby != "" {
		s.conf = append(s.conf, fmt.Sprintf("synchronous_standby_names = '%s'", syncStandby))
	}
	hba := filepath.Join(s.data(), "pg_hba.conf")
	b, err := os.ReadFile(hba)
	if err != nil {
		return err
	}
	const entry = "host replication all 127.0.0.1/32 trust"
	if hasLine(string(b), entry) {
		return nil
	}
	return os.WriteFile(hba, append(b, "\n"+entry+"\n"...), 0o600)
}

func hasLine(text, line string) bool {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if strings.Join(strings.Fields(sc.Text()), " ") == line {
			return true
		}
	}
	return false
}

// Standby clones the running primary s into dir with pg_basebackup -R
// (standby.signal and primary_conninfo) and returns it unstarted: Start
// runs it on its own free port, streaming from s as application_name name
// (its cluster_name). The primary's synchronous_standby_names is dropped
// from the copy, so a promoted standby does not wait for itself.
func (s *Server) Standby(dir, name string) (*Server, error) {
	if s.port == 0 {
		return nil, errors.New("pgserver: the primary is not started")
	}
	st := &Server{dir: dir, bin: s.bin, cred: s.cred}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Mkdir(st.sock(), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	if err := st.cred.own(dir, st.sock()); err != nil {
		return nil, err
	}
	err := st.run(filepath.Join(st.bin, "pg_basebackup"), "-D", st.data(), "-R", "-X", "stream",
		"-c", "fast", "--no-sync", "-d", fmt.Sprintf("host=127.0.0.1 port=%d user=postgres", s.port))
	if err != nil {
		return nil, err
	}
	// Start rewrites postgresql.auto.conf: keep the primary_conninfo that
	// pg_basebackup -R wrote there.
	b, err := os.ReadFile(filepath.Join(st.data(), "postgresql.auto.conf"))
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		if strings.HasPrefix(strings.TrimSpace(sc.Text()), "primary_conninfo") {
			st.conf = append(st.conf, sc.Text())
		}
	}
	if len(st.conf) == 0 {
		return nil, errors.New("pgserver: pg_basebackup -R wrote no primary_conninfo")
	}
	st.conf = append(st.conf, fmt.Sprintf("cluster_name = '%s'", name), "hot_standby = on")
	return st, nil
}

// Promote ends s's recovery: the standby becomes a primary, taking writes.
func (s *Server) Promote() error {
	if err := s.ctl("promote", "-w", "-t", "60"); err != nil {
		return fmt.Errorf("%w\n%s", err, s.LogTail())
	}
	return nil
}

// Crash stops s at once (pg_ctl stop -m immediate): no shutdown
// checkpoint, sessions cut as if the machine had failed.
func (s *Server) Crash() error {
	return s.ctl("stop", "-m", "immediate", "-w", "-t", "30")
}
