"""Fixtures for the kmipd interop suites (real PyKMIP 0.10 and Barbican 15).

Which server is tested is chosen by environment variables:

KMIPD_INTEROP_SERVER  ``kmipd`` (default) or ``pykmip``.
    kmipd:  runs ``$KMIPD_BIN dev -dir TMP -addr 127.0.0.1:PORT``; without
            KMIPD_BIN the binary is built first (``go build ./cmd/kmipd``,
            offline: GOPROXY=off, GOTOOLCHAIN=local).
    pykmip: runs /usr/bin/pykmip-server with a PKI generated here (ECDSA
            P-256, like kmipd's) and a temporary SQLite database.  It is the
            reference: apart from its known deviations (marked xfail/skip
            for pykmip only), a test that fails against it is a test bug.
KMIPD_INTEROP_ADDR    HOST:PORT of an already running server; then
KMIPD_INTEROP_PKI     must name a directory holding ca.crt, client.crt and
                      client.key, and optionally other.crt/other.key for the
                      second-identity test (without them, and with KMIPD_BIN
                      set, ``kmipd certs issue -dir PKI -name other`` makes
                      them; that needs ca.key in PKI).  KMIPD_INTEROP_SERVER
                      still says what kind of server it is.
KMIPD_INTEROP_KEEP    if set, temporary directories are not removed.

Everything talks to 127.0.0.1 only; nothing needs the network.
"""

import collections
import datetime
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import pytest

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.oid import NameOID

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO_ROOT, "scripts"))
try:
    import freeports
finally:
    sys.path.pop(0)
START_TIMEOUT = 60.0
BUILD_TIMEOUT = 900.0
PYKMIP_SERVER = "/usr/bin/pykmip-server"

# What the suites get: everything a KMIP client needs to reach the server.
KmipServer = collections.namedtuple("KmipServer", "host port ca cert key")


def server_kind():
    kind = os.environ.get("KMIPD_INTEROP_SERVER", "kmipd").strip().lower()
    if kind not in ("kmipd", "pykmip"):
        raise pytest.UsageError(
            "KMIPD_INTEROP_SERVER must be 'kmipd' or 'pykmip', not %r" % kind)
    return kind


def pytest_report_header(config):
    addr = os.environ.get("KMIPD_INTEROP_ADDR")
    where = ("already running at %s" % addr) if addr else "started by the suite"
    return "kmip interop: server=%s (%s)" % (server_kind(), where)


# --------------------------------------------------------------------------
# PKI for the pykmip reference server (kmipd dev makes its own).
# --------------------------------------------------------------------------

def _write_key(path, key, mode):
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def _write_cert(path, cert):
    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def _cert(subject_cn, key, issuer_name, issuer_key, ca=False, eku=None,
          san=None):
    now = datetime.datetime.utcnow()
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                     subject_cn)]))
         .issuer_name(issuer_name or x509.Name(
             [x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=2))
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(
             key.public_key()), critical=False))
    if ca:
        b = (b.add_extension(x509.BasicConstraints(ca=True, path_length=0),
                             critical=True)
             .add_extension(x509.KeyUsage(
                 digital_signature=True, content_commitment=False,
                 key_encipherment=False, data_encipherment=False,
                 key_agreement=False, key_cert_sign=True, crl_sign=True,
                 encipher_only=False, decipher_only=False), critical=True))
    else:
        b = (b.add_extension(x509.BasicConstraints(ca=False, path_length=None),
                             critical=True)
             .add_extension(x509.KeyUsage(
                 digital_signature=True, content_commitment=False,
                 key_encipherment=False, data_encipherment=False,
                 key_agreement=True, key_cert_sign=False, crl_sign=False,
                 encipher_only=False, decipher_only=False), critical=True)
             .add_extension(x509.ExtendedKeyUsage(eku), critical=False))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return b.sign(issuer_key or key, hashes.SHA256())


def make_pki(pki_dir, clients=("client",)):
    """CA, server and client certificates, all ECDSA P-256 like kmipd's.

    PyKMIP's server (auth_suite TLS1.2) accepts ECDSA certificates: its
    default TLS 1.2 suite list includes ECDHE-ECDSA-AES128-GCM-SHA256.  It
    also requires the clientAuth EKU on client certificates and takes the
    client identity from the certificate's common name.
    """
    os.makedirs(pki_dir, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("kmipd interop test CA", ca_key, None, None, ca=True)
    _write_cert(os.path.join(pki_dir, "ca.crt"), ca)
    _write_key(os.path.join(pki_dir, "ca.key"), ca_key, 0o400)

    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv = _cert("127.0.0.1", srv_key, ca.subject, ca_key,
                eku=[ExtendedKeyUsageOID.SERVER_AUTH],
                san=[x509.DNSName("localhost"),
                     x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    _write_cert(os.path.join(pki_dir, "server.crt"), srv)
    _write_key(os.path.join(pki_dir, "server.key"), srv_key, 0o400)

    for name in clients:
        k = ec.generate_private_key(ec.SECP256R1())
        c = _cert(name, k, ca.subject, ca_key,
                  eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
        _write_cert(os.path.join(pki_dir, name + ".crt"), c)
        # Barbican's kmip_plugin insists on exactly 0400.
        _write_key(os.path.join(pki_dir, name + ".key"), k, 0o400)


# --------------------------------------------------------------------------
# Process handling
# --------------------------------------------------------------------------

def free_port():
    """A loopback port, free now, below the ephemeral range (scripts/freeports.py)."""
    return freeports.free_ports(1)[0]


def _tail(path, n=4000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - n))
            return f.read().decode("utf-8", "replace")
    except OSError as e:
        return "<%s unreadable: %s>" % (path, e)


def _listing(top, depth=2):
    """'dir has: a, b/, b/c' -- for failure messages about missing files."""
    found = []
    for root, dirs, files in os.walk(top):
        rel = os.path.relpath(root, top)
        level = 0 if rel == "." else rel.count(os.sep) + 1
        if level >= depth:
            dirs[:] = []
        for n in sorted(dirs):
            found.append(os.path.normpath(os.path.join(rel, n)) + "/")
        for n in sorted(files):
            found.append(os.path.normpath(os.path.join(rel, n)))
    return "%s has: %s" % (top, ", ".join(sorted(found)) or "nothing")


def tls_handshake(host, port, ca, cert, key, timeout=5.0):
    """One mutual-TLS 1.2 handshake, the protocol Barbican is set to use."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    with socket.create_connection((host, port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            return tls.version(), tls.cipher()


class ServerProcess(object):
    def __init__(self, argv, workdir, name, env=None):
        self.name = name
        self.argv = argv
        self.out_path = os.path.join(workdir, name + ".stdout.log")
        self.err_path = os.path.join(workdir, name + ".stderr.log")
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(
            argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=self._out,
            stderr=self._err, env=env, start_new_session=True)
        self.extra_logs = []

    def logs(self):
        parts = ["$ " + " ".join(self.argv),
                 "--- stderr (tail) ---", _tail(self.err_path),
                 "--- stdout (tail) ---", _tail(self.out_path)]
        for p in self.extra_logs:
            parts += ["--- %s (tail) ---" % p, _tail(p)]
        return "\n".join(parts)

    def wait_ready(self, host, port, pki, timeout=START_TIMEOUT):
        ca, cert, key = (os.path.join(pki, n)
                         for n in ("ca.crt", "client.crt", "client.key"))
        deadline = time.monotonic() + timeout
        last = "nothing tried yet"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                pytest.fail("%s exited with status %s before serving on %s:%d"
                            "\n%s" % (self.name, rc, host, port, self.logs()),
                            pytrace=False)
            if all(os.path.exists(p) for p in (ca, cert, key)):
                try:
                    tls_handshake(host, port, ca, cert, key)
                    return
                except (OSError, ssl.SSLError) as e:
                    last = "%s: %s" % (type(e).__name__, e)
            else:
                last = ("PKI files not there yet in %s (expected ca.crt, "
                        "client.crt, client.key); %s" % (pki, _listing(
                            os.path.dirname(pki))))
            time.sleep(0.25)
        self.stop()
        pytest.fail("%s did not accept a TLS 1.2 mutual-TLS connection on "
                    "%s:%d within %.0fs (last: %s)\n%s"
                    % (self.name, host, port, timeout, last, self.logs()),
                    pytrace=False)

    def stop(self):
        if self.proc.poll() is None:
            # Only the process we started (and its own process group).
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=15)
        self._out.close()
        self._err.close()


def _build_kmipd(outdir):
    os.makedirs(os.path.join(outdir, "bin"), exist_ok=True)
    out = os.path.join(outdir, "bin", "kmipd")
    env = dict(os.environ)
    # The suite must not need the network: use the module cache only.
    env.setdefault("GOPROXY", "off")
    env.setdefault("GOTOOLCHAIN", "local")
    env.setdefault("GOFLAGS", "-mod=readonly")
    try:
        r = subprocess.run(["go", "build", "-o", out, "./cmd/kmipd"],
                           cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT)
    except FileNotFoundError:
        pytest.fail("`go` is not on PATH; set KMIPD_BIN to a built kmipd",
                    pytrace=False)
    if r.returncode != 0:
        pytest.fail("go build ./cmd/kmipd failed (status %d):\n%s"
                    % (r.returncode, r.stdout.decode("utf-8", "replace")),
                    pytrace=False)
    return out


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------

class _Ctx(object):
    """Session-wide facts the tests may need besides the 5-tuple."""
    kind = None
    pki_dir = None
    kmipd_bin = None
    process = None
    workdir = None


@pytest.fixture(scope="session")
def interop_workdir():
    d = tempfile.mkdtemp(prefix="kmipd-interop-")
    yield d
    if not os.environ.get("KMIPD_INTEROP_KEEP"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def kmip_server_ctx(interop_workdir):
    ctx = _Ctx()
    ctx.kind = server_kind()
    ctx.workdir = interop_workdir
    host = "127.0.0.1"

    addr = os.environ.get("KMIPD_INTEROP_ADDR")
    if addr:
        pki = os.environ.get("KMIPD_INTEROP_PKI")
        if not pki:
            pytest.fail("KMIPD_INTEROP_ADDR needs KMIPD_INTEROP_PKI "
                        "(dir with ca.crt, client.crt, client.key)",
                        pytrace=False)
        host, _, port = addr.rpartition(":")
        ctx.pki_dir = os.path.abspath(pki)
        ctx.kmipd_bin = os.environ.get("KMIPD_BIN")
        ctx.server = KmipServer(host, int(port),
                                os.path.join(ctx.pki_dir, "ca.crt"),
                                os.path.join(ctx.pki_dir, "client.crt"),
                                os.path.join(ctx.pki_dir, "client.key"))
        try:
            tls_handshake(*ctx.server)
        except (OSError, ssl.SSLError) as e:
            pytest.fail("no TLS 1.2 server at %s: %s" % (addr, e),
                        pytrace=False)
        yield ctx
        return

    port = free_port()
    if ctx.kind == "pykmip":
        ctx.pki_dir = os.path.join(interop_workdir, "pki")
        make_pki(ctx.pki_dir, clients=("client", "other"))
        policy_dir = os.path.join(interop_workdir, "policies")
        os.makedirs(policy_dir)
        conf = os.path.join(interop_workdir, "pykmip-server.conf")
        with open(conf, "w") as f:
            f.write("[server]\n"
                    "hostname=%s\nport=%d\n"
                    "certificate_path=%s\nkey_path=%s\nca_path=%s\n"
                    "auth_suite=TLS1.2\npolicy_path=%s\n"
                    "enable_tls_client_auth=True\nlogging_level=DEBUG\n"
                    "database_path=%s\n"
                    % (host, port,
                       os.path.join(ctx.pki_dir, "server.crt"),
                       os.path.join(ctx.pki_dir, "server.key"),
                       os.path.join(ctx.pki_dir, "ca.crt"),
                       policy_dir,
                       os.path.join(interop_workdir, "pykmip.sqlite")))
        log = os.path.join(interop_workdir, "pykmip-server.log")
        proc = ServerProcess(["/usr/bin/python3", PYKMIP_SERVER,
                              "-f", conf, "-l", log],
                             interop_workdir, "pykmip-server")
        proc.extra_logs.append(log)
    else:
        ctx.kmipd_bin = os.environ.get("KMIPD_BIN") or _build_kmipd(
            interop_workdir)
        data = os.path.join(interop_workdir, "kmipd-dev")
        ctx.pki_dir = os.path.join(data, "pki")
        proc = ServerProcess([ctx.kmipd_bin, "dev", "-dir", data,
                              "-addr", "%s:%d" % (host, port)],
                             interop_workdir, "kmipd")
    ctx.process = proc
    try:
        proc.wait_ready(host, port, ctx.pki_dir)
        ctx.server = KmipServer(host, port,
                                os.path.join(ctx.pki_dir, "ca.crt"),
                                os.path.join(ctx.pki_dir, "client.crt"),
                                os.path.join(ctx.pki_dir, "client.key"))
        yield ctx
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def kmip_server(kmip_server_ctx):
    """(host, port, ca, cert, key) of the server under test."""
    return kmip_server_ctx.server


@pytest.fixture(scope="session")
def kind(kmip_server_ctx):
    """'kmipd' or 'pykmip'."""
    return kmip_server_ctx.kind


@pytest.fixture(scope="session")
def second_identity(kmip_server_ctx):
    """(cert, key) of a second client certificate with its own key."""
    ctx = kmip_server_ctx
    pki = ctx.pki_dir
    cert, key = os.path.join(pki, "other.crt"), os.path.join(pki, "other.key")
    if os.path.exists(cert) and os.path.exists(key):
        return cert, key
    if ctx.kind != "kmipd" or not ctx.kmipd_bin:
        pytest.skip("no second client identity available for this server")
    argv = [ctx.kmipd_bin, "certs", "issue", "-dir", pki, "-name", "other"]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    out = r.stdout.decode("utf-8", "replace")
    if r.returncode != 0:
        pytest.fail("$ %s\nexited %d:\n%s" % (" ".join(argv), r.returncode,
                                               out), pytrace=False)
    if not (os.path.exists(cert) and os.path.exists(key)):
        pytest.fail("$ %s\nsucceeded but did not create %s and %s; %s has: "
                    "%s\n%s" % (" ".join(argv), cert, key, pki,
                                sorted(os.listdir(pki)), out), pytrace=False)
    return cert, key


@pytest.fixture(scope="session")
def threadsafe_plugin_site(interop_workdir):
    """A directory holding deploy/barbican/kmipd_barbican as pip installs it
    (offline), dist-info and entry points included: for PYTHONPATH."""
    sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "barbican_e2e"))
    try:
        from barbican_api import install_threadsafe_plugin
        from services import E2EError
    finally:
        sys.path.pop(0)
    try:
        return install_threadsafe_plugin(
            os.path.join(interop_workdir, "kmipd_barbican-site"))
    except E2EError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def empty_client_config(interop_workdir):
    """An empty PyKMIP client config, so /etc/pykmip/pykmip.conf is not read."""
    path = os.path.join(interop_workdir, "pykmip-client.conf")
    open(path, "w").close()
    return path


@pytest.fixture
def server_logs(kmip_server_ctx):
    """Callable giving the server's log tail, for failure messages."""
    def logs():
        if kmip_server_ctx.process is None:
            return "(server not started by the suite)"
        return kmip_server_ctx.process.logs()
    return logs
