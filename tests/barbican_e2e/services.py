"""The parts of the Barbican end-to-end run, each a process this module starts
and stops: MariaDB, kmipd, and Barbican's API under gunicorn; plus the capped
PKCS#11 test module (hsm/testmodule) they share as "the HSM".

Everything listens on 127.0.0.1 or on a unix socket in a temporary directory.
Every process runs in its own process group; stop() sends SIGTERM to that
group, then SIGKILL; PR_SET_PDEATHSIG kills it if this process dies first.
"""

import ctypes
import fcntl
import getpass
import os
import signal
import struct
import subprocess
import sys
import time
import urllib.request

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO_ROOT, "scripts"))
try:
    import freeports
finally:
    sys.path.pop(0)
PYTHON = "/usr/bin/python3"  # Debian's: Barbican and PyKMIP live there
SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"


class E2EError(Exception):
    """A part did not start or did not behave; the message has its log tail."""


def free_ports(n):
    """n consecutive loopback ports, free now, below the ephemeral range."""
    return freeports.free_ports(n)


_libc = ctypes.CDLL(None, use_errno=True)


def _child_setup():
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def tail(path, n=3000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - n))
            return f.read().decode("utf-8", "replace")
    except OSError as e:
        return "<%s: %s>" % (path, e)


class Proc(object):
    """One started process (and its process group), logging to NAME.log."""

    def __init__(self, name, argv, logdir, env=None, cwd=None):
        self.name, self.argv = name, argv
        self.log = os.path.join(logdir, name + ".log")
        self._logf = open(self.log, "ab")
        self.p = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._logf,
            stderr=subprocess.STDOUT, env=env, cwd=cwd or logdir,
            start_new_session=True, preexec_fn=_child_setup)

    def alive(self):
        return self.p.poll() is None

    def describe(self, extra=()):
        parts = ["$ " + " ".join(self.argv), "--- %s (tail) ---" % self.log,
                 tail(self.log)]
        for p in extra:
            parts += ["--- %s (tail) ---" % p, tail(p)]
        return "\n".join(parts)

    def stop(self, timeout=15):
        if self.p.poll() is None:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 15)):
                try:
                    os.killpg(self.p.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.p.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        else:
            # The leader is gone; its group may not be (gunicorn workers).
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._logf.close()


def run(argv, env=None, cwd=None, timeout=120, what=None):
    r = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout, preexec_fn=_child_setup)
    if r.returncode != 0:
        raise E2EError("%s failed (status %d):\n$ %s\n%s" % (
            what or argv[0], r.returncode, " ".join(argv),
            r.stdout.decode("utf-8", "replace")[-3000:]))
    return r.stdout.decode("utf-8", "replace")


def wait_until(what, check, timeout, proc=None, extra_logs=()):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise E2EError("%s: %s exited with status %s\n%s" % (
                what, proc.name, proc.p.returncode, proc.describe(extra_logs)))
        try:
            if check():
                return
        except Exception as e:  # noqa: BLE001 - reported if we time out
            last = e
        time.sleep(0.2)
    raise E2EError("%s: not within %.0fs (last: %r)\n%s" % (
        what, timeout, last, proc.describe(extra_logs) if proc else ""))


# ---------------------------------------------------------------- MariaDB

class MariaDB(object):
    """mariadbd on a unix socket only (--skip-networking), data in a temp dir.

    The usual Barbican database; Barbican 15 keeps secrets' bytes in Text
    columns, which PyMySQL writes and reads back as they were written.
    """

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "mariadb")
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "mysqld.sock")
        self.proc = None

    def start(self, timeout=60):
        os.makedirs(self.dir)
        user = getpass.getuser()
        run(["mariadb-install-db", "--no-defaults", "--datadir=" + self.data,
             "--user=" + user, "--auth-root-authentication-method=normal",
             "--skip-test-db"], cwd=self.dir, what="mariadb-install-db")
        # fsync per commit is not what this run measures: flush once a second.
        self.proc = Proc("mariadbd", [
            "mariadbd", "--no-defaults", "--user=" + user,
            "--datadir=" + self.data, "--socket=" + self.sock,
            "--skip-networking", "--skip-name-resolve",
            "--pid-file=" + os.path.join(self.dir, "mariadbd.pid"),
            "--tmpdir=" + self.dir, "--max-connections=1000",
            "--innodb-buffer-pool-size=64M", "--innodb-use-native-aio=0",
            "--innodb-flush-log-at-trx-commit=2",
            "--character-set-server=utf8mb4"], self.dir)
        wait_until("MariaDB", lambda: self._connect().close() or True,
                   timeout, self.proc)

    def _connect(self, db=None):
        import pymysql
        return pymysql.connect(unix_socket=self.sock, user="root", database=db,
                               connect_timeout=5)

    def create_database(self, name):
        """A fresh database and its SQLAlchemy URL (PyMySQL over the socket)."""
        c = self._connect()
        try:
            with c.cursor() as cur:
                cur.execute("CREATE DATABASE `%s` CHARACTER SET utf8mb4" % name)
        finally:
            c.close()
        return "mysql+pymysql://root@localhost/%s?unix_socket=%s&charset=utf8mb4" % (
            name, self.sock)

    def stop(self):
        if self.proc:
            self.proc.stop(timeout=30)


# ---------------------------------------------------------------- the HSM

# Offsets in the state file: capped_state.h (mirrored by control.go).
_ST = {"magic": 0x00, "version": 0x04, "cap": 0x08, "refuse": 0x0C,
       "open": 0x10, "peak": 0x14, "token_present": 0x1C, "calls": 0x30,
       "refusals": 0x58, "delay_us": 0x78}
_ST64 = ("calls", "refusals")
_STATE_MAGIC, _STATE_VERSION, _STATE_SIZE = 0x50414343, 1, 4096
CKR_DEVICE_MEMORY = 0x31


def build_capped_module(outdir):
    """Compiles hsm/testmodule/capped.c as its Build (build.go) does."""
    src = os.path.join(REPO_ROOT, "hsm", "testmodule")
    so = os.path.join(outdir, "libcapped.so")
    run(["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-o", so,
         "capped.c", "-Iinclude", "-ldl", "-lpthread"], cwd=src,
        what="building the capped PKCS#11 module")
    return so


class CappedHSM(object):
    """One "HSM": a state file of the capped module over SoftHSM2 -- a cap on
    sessions across every process, CKR_DEVICE_MEMORY beyond it, and a delay on
    every call -- plus the SoftHSM configuration its token lives in (for
    p11_crypto; kmipd dev writes its own)."""

    def __init__(self, so, workdir, cap, delay_us, refuse=CKR_DEVICE_MEMORY):
        self.so = so
        self.dir = os.path.join(workdir, "hsm")
        os.makedirs(os.path.join(self.dir, "tokens"))
        self.state = os.path.join(self.dir, "capped.state")
        self.softhsm_conf = os.path.join(self.dir, "softhsm2.conf")
        with open(self.softhsm_conf, "w") as f:
            f.write("directories.tokendir = %s\nobjectstore.backend = file\n"
                    "log.level = ERROR\nslots.removable = false\n"
                    % os.path.join(self.dir, "tokens"))
        buf = bytearray(_STATE_SIZE)
        for k, v in (("cap", cap), ("refuse", refuse), ("token_present", 1),
                     ("delay_us", delay_us), ("version", _STATE_VERSION),
                     ("magic", _STATE_MAGIC)):
            struct.pack_into("<I", buf, _ST[k], v)
        with open(self.state, "wb") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # the lock the module initialises under
            f.write(buf)

    def env(self):
        return {"CAPPED_STATE": self.state, "CAPPED_REAL_MODULE": SOFTHSM,
                "SOFTHSM2_CONF": self.softhsm_conf}

    def stats(self):
        with open(self.state, "rb") as f:
            b = f.read(0x80)
        out = {}
        for k, off in _ST.items():
            fmt = "<Q" if k in _ST64 else "<I"
            out[k] = struct.unpack_from(fmt, b, off)[0]
        return out

    def reset_peak(self):
        """The peak becomes the sessions open now (after setup steps)."""
        with open(self.state, "r+b") as f:
            f.seek(_ST["open"])
            now = f.read(4)
            f.seek(_ST["peak"])
            f.write(now)


# ---------------------------------------------------------------- kmipd

class Kmipd(object):
    """`kmipd dev` over the capped module."""

    def __init__(self, binary, workdir, hsm, max_sessions):
        self.bin, self.hsm, self.max_sessions = binary, hsm, max_sessions
        self.dir = os.path.join(workdir, "kmipd")
        self.pki = os.path.join(self.dir, "pki")
        kport, tport = free_ports(2)
        self.addr = ("127.0.0.1", kport)
        self.telemetry = "127.0.0.1:%d" % tport
        self.proc = None

    def start(self, timeout=90):
        env = dict(os.environ, **self.hsm.env())
        env.pop("SOFTHSM2_CONF")  # kmipd dev points SoftHSM at its own folder
        self.proc = Proc("kmipd", [
            self.bin, "dev", "-dir", self.dir,
            "-addr", "%s:%d" % self.addr, "-telemetry-addr", self.telemetry,
            "-hsm-module", self.hsm.so, "-max-sessions", str(self.max_sessions),
            "-log-level", "warn"], os.path.dirname(self.dir), env=env)

        def ready():
            with urllib.request.urlopen("http://%s/readyz" % self.telemetry,
                                        timeout=2) as r:
                return r.status == 200
        wait_until("kmipd", ready, timeout, self.proc)

    def metric(self, name):
        """The value of an unlabelled metric on /metrics, or None."""
        with urllib.request.urlopen("http://%s/metrics" % self.telemetry,
                                    timeout=5) as r:
            text = r.read().decode()
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == name:
                return float(parts[1])
        return None

    def stop(self):
        if self.proc:
            self.proc.stop()
