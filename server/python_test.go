package server

import (
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// pythonPath is Debian's Python, which carries the PyKMIP 0.10 package; the
// python3 first on PATH may be another build without it.
const pythonPath = "/usr/bin/python3"

// pyClient connects the way PyKMIP 0.10 can: "context" is the brief's
// SSLContext(PROTOCOL_TLSv1_2) with OpenSSL's default ciphers; "wrap" is
// exactly kmip_client.KMIPProxy (ssl.wrap_socket, no cipher string);
// "tls12suite" restricts ciphers to PyKMIP's TLS12AuthenticationSuite list.
const pyClient = `
import socket, ssl, sys, warnings
warnings.simplefilter("ignore")
host, port, ca, cert, key, mode, req = sys.argv[1:]
sock = socket.create_connection((host, int(port)), timeout=10)
if mode == "wrap":
    s = ssl.wrap_socket(sock, keyfile=key, certfile=cert, cert_reqs=ssl.CERT_REQUIRED,
                        ssl_version=ssl.PROTOCOL_TLSv1_2, ca_certs=ca)
else:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLSv1_2)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(ca)
    if mode == "tls12suite":
        from kmip.services import auth
        ctx.set_ciphers(auth.TLS12AuthenticationSuite().ciphers)
    s = ctx.wrap_socket(sock)
s.sendall(bytes.fromhex(req))
def readn(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("short read")
        b += c
    return b
hdr = readn(8)
body = readn(int.from_bytes(hdr[4:8], "big"))
print(s.version(), s.cipher()[0], (hdr + body).hex())
`

func TestPythonHandshake(t *testing.T) {
	if _, err := os.Stat(pythonPath); err != nil {
		t.Skipf("%s not installed: cannot test the PyKMIP-style handshake (%v)", pythonPath, err)
	}
	hasPyKMIP := exec.Command(pythonPath, "-c", "import kmip.services.auth").Run() == nil
	for _, rsaServer := range []bool{false, true} {
		name := "ecdsa server"
		if rsaServer {
			name = "rsa server"
		}
		t.Run(name, func(t *testing.T) {
			e := startServer(t, envOpt{rsaServer: rsaServer})
			certFile, keyFile := e.client.files(t, e.dir, "client")
			caFile := filepath.Join(e.dir, "ca.crt")
			host, port, _ := net.SplitHostPort(e.addr)
			for _, mode := range []string{"context", "wrap", "tls12suite"} {
				t.Run(mode, func(t *testing.T) {
					if mode == "tls12suite" && !hasPyKMIP {
						t.Skip("PyKMIP not importable by " + pythonPath)
					}
					out, err := exec.Command(pythonPath, "-c", pyClient, host, port, caFile, certFile, keyFile,
						mode, hex.EncodeToString(request(3))).CombinedOutput()
					if err != nil {
						t.Fatalf("python client: %v\n%s", err, out)
					}
					f := strings.Fields(string(out))
					if len(f) != 3 || f[0] != "TLSv1.2" {
						t.Fatalf("python output: %s", out)
					}
					b, err := hex.DecodeString(f[2])
					if err != nil {
						t.Fatal(err)
					}
					resp, err := tree.Decode(b, tree.DefaultLimits)
					if err != nil {
						t.Fatal(err)
					}
					if bc := batchCount(t, resp); bc != 3 {
						t.Fatalf("batch count = %d", bc)
					}
					t.Logf("%s %s", f[0], f[1])
				})
			}
		})
	}
}
