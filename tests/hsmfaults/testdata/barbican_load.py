"""One Barbican-like worker process: THREADS threads of PyKMIP 0.10 clients.

Usage: barbican_load.py HOST PORT CA CERT KEY CONF THREADS SECONDS

Each thread owns a ProxyKmipClient (PyKMIP clients are not thread-safe, and
Barbican's workers each hold their own). A round opens a mutual-TLS 1.2
connection, as Barbican's kmip_plugin does per call, and on it creates an
AES-256 key and gets it, registers a secret and gets it back (comparing the
bytes), destroys both, and closes. All threads start together and stop at
the same deadline. One JSON line on stdout reports the counts and the first
errors; the exit status is 0 unless the script itself broke.
"""

import json
import logging
import os
import sys
import threading
import time
import traceback

from kmip.core import enums
from kmip.pie import client as pie_client
from kmip.pie import objects

logging.disable(logging.CRITICAL)  # PyKMIP logs every connection

host, port, ca, cert, key, conf = sys.argv[1:7]
threads, seconds = int(sys.argv[7]), float(sys.argv[8])

lock = threading.Lock()
totals = {"requests": 0, "failures": 0, "connections": 0, "errors": []}
start = threading.Barrier(threads + 1)
deadline = [0.0]


def count(ok, what=None):
    with lock:
        totals["requests"] += 1
        if not ok:
            totals["failures"] += 1
            if len(totals["errors"]) < 10:
                totals["errors"].append(what)


def call(name, fn, *args):
    try:
        v = fn(*args)
    except Exception as e:  # every failure counts, whatever its kind
        count(False, "%s: %s: %s" % (name, type(e).__name__, e))
        return None, False
    count(True)
    return v, True


def worker():
    c = pie_client.ProxyKmipClient(
        hostname=host, port=int(port), cert=cert, key=key, ca=ca,
        ssl_version="PROTOCOL_TLSv1_2", config_file=conf)
    start.wait()
    while time.time() < deadline[0]:
        try:
            c.open()
        except Exception as e:
            count(False, "open: %s: %s" % (type(e).__name__, e))
            continue
        with lock:
            totals["connections"] += 1
        try:
            uid, ok = call("create", c.create,
                           enums.CryptographicAlgorithm.AES, 256)
            if ok:
                k, ok = call("get key", c.get, uid)
                if ok and len(k.value) != 32:
                    count(False, "get key: %d bytes" % len(k.value))
            secret = os.urandom(24)
            sid, ok = call("register", c.register, objects.SecretData(
                secret, enums.SecretDataType.PASSWORD))
            if ok:
                s, ok = call("get secret", c.get, sid)
                if ok and s.value != secret:
                    count(False, "get secret: wrong bytes")
            for u in (uid, sid):
                if u is not None:
                    call("destroy", c.destroy, u)
        finally:
            c.close()


def main():
    ts = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    deadline[0] = time.time() + seconds
    start.wait()
    for t in ts:
        t.join(seconds + 120)
    with lock:
        totals["stuck_threads"] = sum(1 for t in ts if t.is_alive())
        print(json.dumps(totals), flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(2)
