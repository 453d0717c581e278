package certs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// File names written by Init.
const (
	CACertFile     = "ca.crt"
	CAKeyFile      = "ca.key"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
	ClientCertFile = "client.crt"
	ClientKeyFile  = "client.key"
)

// File modes. Client keys are 0400 because Barbican's KMIP plugin refuses a
// client key file with any other mode; the server and CA keys stay writable by
// the owner so operators can rotate them in place.
const (
	certMode      fs.FileMode = 0o644
	ownerKeyMode  fs.FileMode = 0o600
	clientKeyMode fs.FileMode = 0o400
	dirMode       fs.FileMode = 0o700
)

var initFiles = []string{CACertFile, CAKeyFile, ServerCertFile, ServerKeyFile, ClientCertFile, ClientKeyFile}

var validName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// Init creates a CA, a server certificate and a first client certificate in
// dir, and the issuing CA of KMIP Certify (InitIssuer). It never overwrites:
// if all six files already exist it returns nil (so dev mode can call it on
// every start); if only some exist it returns an error naming them.
func Init(dir string, opts Options) error {
	if err := initTLS(dir, opts); err != nil {
		return err
	}
	return InitIssuer(dir, opts)
}

func initTLS(dir string, opts Options) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	var present []string
	for _, f := range initFiles {
		switch _, err := os.Lstat(filepath.Join(dir, f)); {
		case err == nil:
			present = append(present, f)
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("certs: %w", err)
		}
	}
	switch len(present) {
	case len(initFiles):
		return nil
	case 0:
	default:
		return fmt.Errorf("certs: %s already has %s; refusing to overwrite (remove them or use another directory)",
			dir, strings.Join(present, ", "))
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("certs: %w", err)
	}

	ca, err := NewCA(opts)
	if err != nil {
		return err
	}
	srv, err := ca.IssueServer(opts.Hosts)
	if err != nil {
		return err
	}
	cli, err := ca.IssueClient(opts.ClientName)
	if err != nil {
		return err
	}
	caKey, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	// Keys first, CA certificate last: an interrupted run leaves an
	// incomplete set, which the next Init reports instead of silently reusing.
	writes := []struct {
		name string
		data []byte
		mode fs.FileMode
	}{
		{CAKeyFile, caKey, ownerKeyMode},
		{ServerKeyFile, srv.KeyPEM, ownerKeyMode},
		{ServerCertFile, srv.CertPEM, certMode},
		{ClientKeyFile, cli.KeyPEM, clientKeyMode},
		{ClientCertFile, cli.CertPEM, certMode},
		{CACertFile, ca.CertPEM, certMode},
	}
	for _, w := range writes {
		if err := writeNew(filepath.Join(dir, w.name), w.data, w.mode); err != nil {
			return err
		}
	}
	return nil
}

// LoadCA reads ca.crt and ca.key from dir. opts sets the algorithm and
// validity of the certificates the returned CA will issue.
func LoadCA(dir string, opts Options) (*CA, error) {
	c, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	k, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	return ParseCA(c, k, opts)
}

// Issue creates another client certificate NAME.crt / NAME.key (CN = name)
// signed by the CA in dir. Existing files are never overwritten.
func Issue(dir, name string, opts Options) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	crt, key := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	for _, p := range []string{crt, key} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("certs: %s already exists; refusing to overwrite", p)
		}
	}
	ca, err := LoadCA(dir, opts)
	if err != nil {
		return err
	}
	cli, err := ca.IssueClient(name)
	if err != nil {
		return err
	}
	if err := writeNew(key, cli.KeyPEM, clientKeyMode); err != nil {
		return err
	}
	return writeNew(crt, cli.CertPEM, certMode)
}

// ValidateName reports whether name is usable as a client name and file stem.
func ValidateName(name string) error {
	if !validName.MatchString(name) || name == "." || name == ".." {
		return fmt.Errorf("certs: invalid client name %q (allowed: letters, digits, '.', '_', '-')", name)
	}
	switch name {
	case "ca", "server":
		return fmt.Errorf("certs: client name %q is reserved", name)
	}
	return nil
}

// writeNew creates path exclusively (O_EXCL: an existing file is never
// overwritten) and sets the exact mode, which the umask would otherwise narrow
// or the caller's expectations widen. A failed write removes the file.
func writeNew(path string, data []byte, mode fs.FileMode) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	defer func() {
		if err != nil {
			os.Remove(path)
		}
	}()
	_, werr := f.Write(data)
	if err := errors.Join(f.Chmod(mode), werr, f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("certs: writing %s: %w", path, err)
	}
	return nil
}
