// Package pykmip starts a real PyKMIP 0.10 server for tests. It lives apart
// from package conformance so production code does not carry test helpers.
package pykmip

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Server is the Debian package's entry point; it must run under the system
// Python, which has the python3-pykmip modules (a pyenv python3 does not).
const (
	Python = "/usr/bin/python3"
	Server = "/usr/bin/pykmip-server"
)

// StartPyKMIP starts pykmip-server on a free 127.0.0.1 port with fresh
// certificates and an empty SQLite database, waits until it accepts
// connections, and stops it when the test ends. It returns the address and
// the PEM files a client needs. The test is skipped when PyKMIP is missing.
func StartPyKMIP(t testing.TB) (addr, ca, cert, key string) {
	t.Helper()
	for _, f := range []string{Python, Server} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("PyKMIP not available: %v", err)
		}
	}
	dir := t.TempDir()
	ca, srvCert, srvKey, cert, key := writePKI(t, dir)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	l.Close()

	// PyKMIP 0.10's TLS1.2 suite offers ECDHE-ECDSA-AES128-GCM-SHA256, which
	// Go's client supports, so ECDSA P-256 certificates work.
	conf := fmt.Sprintf(`[server]
hostname=127.0.0.1
port=%s
certificate_path=%s
key_path=%s
ca_path=%s
auth_suite=TLS1.2
enable_tls_client_auth=True
policy_path=%s
database_path=%s
logging_level=INFO
`, port, srvCert, srvKey, ca, mkdir(t, filepath.Join(dir, "policies")), filepath.Join(dir, "pykmip.db"))
	confPath := filepath.Join(dir, "server.conf")
	must(t, os.WriteFile(confPath, []byte(conf), 0o600))
	logPath := filepath.Join(dir, "server.log")
	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	must(t, err)

	cmd := exec.Command(Python, Server, "-f", confPath, "-l", logPath)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = dir
	// PyKMIP forks multiprocessing helpers (a Manager, the policy monitor)
	// that outlive a killed parent: give the server its own process group and
	// stop the whole group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	must(t, cmd.Start())
	pgid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); out.Close() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-exited
		}
		// Helpers may linger briefly after the parent has gone.
		for i := 0; i < 50 && syscall.Kill(-pgid, 0) == nil; i++ {
			if i == 20 {
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr, ca, cert, key
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("pykmip-server exited early (%v):\n%s\n%s", err, readFile(filepath.Join(dir, "stdout.log")), readFile(logPath))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("pykmip-server did not listen on %s within 30s:\n%s", addr, readFile(logPath))
		}
	}
}

// LogPath is where StartPyKMIP's server log can be found, given the CA path
// it returned (all files share one folder).
func LogPath(ca string) string { return filepath.Join(filepath.Dir(ca), "server.log") }

func writePKI(t testing.TB, dir string) (ca, srvCert, srvKey, cliCert, cliKey string) {
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "conformance test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	must(t, err)
	ca = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)

	leaf := func(name string, serial int64, eku x509.ExtKeyUsage) (string, string) {
		k := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			// PyKMIP takes the client's identity from the common name.
			Subject:     pkix.Name{CommonName: name},
			NotBefore:   time.Now().Add(-time.Hour),
			NotAfter:    time.Now().Add(24 * time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{eku},
		}
		if eku == x509.ExtKeyUsageServerAuth {
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		must(t, err)
		kder, err := x509.MarshalPKCS8PrivateKey(k)
		must(t, err)
		return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writePEM(t, dir, name+"-key.pem", "PRIVATE KEY", kder)
	}
	// PyKMIP refuses client certificates without the clientAuth usage.
	srvCert, srvKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	cliCert, cliKey = leaf("conformance", 3, x509.ExtKeyUsageClientAuth)
	return ca, srvCert, srvKey, cliCert, cliKey
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	return k
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	p := filepath.Join(dir, name)
	must(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
	return p
}

func mkdir(t testing.TB, p string) string {
	must(t, os.MkdirAll(p, 0o700))
	return p
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
