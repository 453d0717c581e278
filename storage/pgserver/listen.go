package pgserver

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// ListenAlso makes the server listen on addr as well as 127.0.0.1 and
// trust connections from the network from (pg_hba.conf): an address of this
// machine that a test owns, such as the host end of a veth pair into a
// network namespace, so a process in the namespace reaches PostgreSQL only
// over a link the test can cut. Call it before Start.
func (s *Server) ListenAlso(addr netip.Addr, from netip.Prefix) error {
	if !addr.IsValid() || !from.IsValid() {
		return fmt.Errorf("pgserver: listen address %v, clients %v", addr, from)
	}
	s.listen = append(s.listen, addr.String())
	// A later listen_addresses line overrides configure's first one.
	s.conf = append(s.conf, fmt.Sprintf("listen_addresses = '%s'", strings.Join(append([]string{"127.0.0.1"}, s.listen...), ",")))
	hba := filepath.Join(s.data(), "pg_hba.conf")
	b, err := os.ReadFile(hba)
	if err != nil {
		return err
	}
	entry := "host all all " + from.Masked().String() + " trust"
	if hasLine(string(b), entry) {
		return nil
	}
	return os.WriteFile(hba, append(b, "\n"+entry+"\n"...), 0o600)
}

// Set adds a setting to postgresql.auto.conf (a later one wins). Call it
// before Start.
func (s *Server) Set(name, value string) {
	s.conf = append(s.conf, fmt.Sprintf("%s = '%s'", name, strings.ReplaceAll(value, "'", "''")))
}
