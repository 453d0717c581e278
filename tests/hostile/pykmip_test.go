package hostile

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/certs"
	"github.com/kmipd/kmipd/conformance"
	"github.com/kmipd/kmipd/kmipmsg"
	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/testkit"
)

// pythonPath is Debian's Python, which has PyKMIP 0.10; the python3 first
// on PATH may be another build without it.
const pythonPath = "/usr/bin/python3"

// pykmipSession is what a Barbican-like client does, in every protocol
// version PyKMIP speaks.
const pykmipSession = `
import sys, warnings
warnings.simplefilter("ignore")
from kmip.core import enums
from kmip.pie import client, objects
host, port, cert, key, ca, conf = sys.argv[1:]
for v in (enums.KMIPVersion.KMIP_1_2, enums.KMIPVersion.KMIP_1_4):
    c = client.ProxyKmipClient(hostname=host, port=int(port), cert=cert, key=key, ca=ca,
                               ssl_version="PROTOCOL_TLSv1_2", config_file=conf, kmip_version=v)
    c.open()
    uid = c.create(enums.CryptographicAlgorithm.AES, 256, name="pykmip-corpus")
    c.get(uid)
    c.get_attributes(uid, ["Name", "State", "Cryptographic Length"])
    c.get_attribute_list(uid)
    c.activate(uid)
    c.locate(attributes=[c.attribute_factory.create_attribute(enums.AttributeType.NAME, "pykmip-corpus")])
    c.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, uid)
    c.destroy(uid)
    s = c.register(objects.SecretData(b"pykmip corpus secret", enums.SecretDataType.PASSWORD))
    c.get(s)
    k = c.register(objects.SymmetricKey(enums.CryptographicAlgorithm.AES, 128, b"0123456789abcdef"))
    c.get(k)
    pub, priv = c.create_key_pair(enums.CryptographicAlgorithm.RSA, 2048)
    c.get(priv)
    c.close()
print("ok")
`

// recorder is a TLS-terminating proxy: PyKMIP talks to it, it talks to
// kmipd, and it keeps the raw bytes of every request message.
type recorder struct {
	wg       sync.WaitGroup
	mu       sync.Mutex
	requests [][]byte
	errs     []error
}

func (r *recorder) serve(l net.Listener, upstream string, up *tls.Config) {
	defer r.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer c.Close()
			s, err := tls.Dial("tcp", upstream, up)
			if err != nil {
				r.mu.Lock()
				r.errs = append(r.errs, fmt.Errorf("proxy: dial kmipd: %w", err))
				r.mu.Unlock()
				return
			}
			defer s.Close()
			// Read(nil): each message gets its own buffer, as the recorder keeps them.
			fromClient := kmipmsg.Reader{R: c, Max: 16 << 20}
			fromServer := kmipmsg.Reader{R: s, Max: 16 << 20}
			for {
				req, err := fromClient.Read(nil)
				if err != nil {
					return
				}
				r.mu.Lock()
				r.requests = append(r.requests, req)
				r.mu.Unlock()
				if _, err := s.Write(req); err != nil {
					return
				}
				resp, err := fromServer.Read(nil)
				if err != nil {
					return
				}
				if _, err := c.Write(resp); err != nil {
					return
				}
			}
		}()
	}
}

// TestPyKMIPCorpus runs a real PyKMIP 0.10 session against kmipd dev
// through a recording proxy. The session must succeed (PyKMIP raises on any
// failed operation) and every request must decode within the server's
// limits. With
// KMIPD_UPDATE_CORPUS=1 the requests become fuzz seeds for FuzzDispatch
// here and FuzzDecode in kmipops/tree (which is how the checked-in seeds
// were made).
func TestPyKMIPCorpus(t *testing.T) {
	if _, err := os.Stat(pythonPath); err != nil {
		t.Skipf("%s not installed", pythonPath)
	}
	if err := exec.Command(pythonPath, "-c", "import kmip.pie.client").Run(); err != nil {
		t.Skipf("PyKMIP not importable by %s: %v", pythonPath, err)
	}
	d := testkit.StartDev(t, testkit.DevOptions{})
	pki := d.PKI()
	up, err := conformance.TLSConfig(d.CAFile(), filepath.Join(pki, certs.ClientCertFile), filepath.Join(pki, certs.ClientKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	up.ServerName = "localhost"
	srvCert, err := tls.LoadX509KeyPair(filepath.Join(pki, certs.ServerCertFile), filepath.Join(pki, certs.ServerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srvCert}})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	rec.wg.Add(1)
	go rec.serve(l, d.Addr, up)

	conf := filepath.Join(t.TempDir(), "pykmip.conf")
	os.WriteFile(conf, nil, 0o600)
	host, port, _ := net.SplitHostPort(l.Addr().String())
	cmd := exec.Command(pythonPath, "-c", pykmipSession, host, port,
		filepath.Join(pki, certs.ClientCertFile), filepath.Join(pki, certs.ClientKeyFile), d.CAFile(), conf)
	done := make(chan struct{})
	var out []byte
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
	}
	// PyKMIP has closed its connections; the proxy's goroutines end.
	l.Close()
	rec.wg.Wait()
	if err != nil {
		t.Fatalf("PyKMIP session: %v\n%s\nproxy errors: %v", err, out, rec.errs)
	}
	reqs := rec.requests
	if len(reqs) < 20 {
		t.Fatalf("captured only %d requests", len(reqs))
	}
	seen := map[string]bool{}
	for i, b := range reqs {
		n, err := tree.Decode(b, tree.DefaultLimits)
		if err != nil {
			t.Fatalf("PyKMIP request %d does not decode: %v", i, err)
		}
		op, _ := n.Path(kmip14.TagBatchItem, kmip14.TagOperation).EnumValue()
		v, _ := kmipmsg.ParseVersion(n.Path(kmip14.TagRequestHeader, kmip14.TagProtocolVersion))
		name := fmt.Sprintf("pykmip-%s-%s", v, kmip14.Operation(op))
		seen[name] = true
		if os.Getenv("KMIPD_UPDATE_CORPUS") != "" {
			for _, dir := range []string{"testdata/fuzz/FuzzDispatch", "../../kmipops/tree/testdata/fuzz/FuzzDecode"} {
				writeSeed(t, dir, name, b)
			}
		}
	}
	t.Logf("PyKMIP sent %d requests of %d kinds", len(reqs), len(seen))
}

// writeSeed stores b in Go's fuzz corpus format.
func writeSeed(t *testing.T, dir, name string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	path := filepath.Join(dir, name+"-"+hex.EncodeToString(sum[:4]))
	if err := os.WriteFile(path, []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)), 0o644); err != nil {
		t.Fatal(err)
	}
}
