"""Clients of Barbican's REST API: secrets stored, read back byte for byte and
deleted, and key orders; then whether the API still answers.

Every client is a thread with its own project (X-Project-Id) and checks that
each payload it reads is the one its project stored, so a response that
crossed into another project's request is counted. Loops are bounded in
cycles and in time; every request has a timeout.
"""

import base64
import collections
import http.client
import json
import os
import random
import re
import socket
import threading
import time
import uuid

# One HTTP request. Generous: on a 2-core machine shared with other work, a
# request queued behind 31 others on 8 sync workers took over 15 s to answer
# though nothing was wrong.
REQUEST_TIMEOUT = 30.0
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Tally(object):
    """Requests that answered as expected (ok) or not (failed); mismatched
    are payload reads that answered 200 with other bytes (also failed)."""

    def __init__(self):
        self.ok = self.failed = self.mismatched = self.cycles = 0
        self.reasons = collections.Counter()
        self.kept = []  # (project, secret id, payload) left stored on purpose

    def add(self, other):
        self.ok += other.ok
        self.failed += other.failed
        self.mismatched += other.mismatched
        self.cycles += other.cycles
        self.reasons.update(other.reasons)
        self.kept.extend(other.kept)

    def top_reasons(self, n=4):
        return "; ".join("%dx %s" % (c, r) for r, c in self.reasons.most_common(n))


class Client(object):
    def __init__(self, port, project, tally, deadline=None):
        self.port, self.project, self.t = port, project, tally
        self.deadline = deadline

    def expired(self):
        return self.deadline is not None and time.monotonic() >= self.deadline

    def call(self, method, path, body=None, accept="application/json",
             expect=(200,)):
        """(status, body) if the status is expected, else None (counted)."""
        route = _UUID.sub("{id}", path)
        headers = {"X-Project-Id": self.project, "Accept": accept,
                   "Connection": "close"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=REQUEST_TIMEOUT)
        try:
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            status, out = r.status, r.read()
        except socket.timeout:
            return self._fail("%s %s: no answer in %.0fs" % (method, route,
                                                             REQUEST_TIMEOUT))
        except (OSError, http.client.HTTPException) as e:
            return self._fail("%s %s: %s" % (method, route, type(e).__name__))
        finally:
            conn.close()
        if status not in expect:
            return self._fail("%s %s -> %d %s" % (method, route, status,
                                                  _describe(out)))
        self.t.ok += 1
        return status, out

    def _fail(self, reason):
        self.t.failed += 1
        self.t.reasons[reason] += 1
        return None

    def mismatch(self, what):
        """The last request, counted ok, returned other bytes than stored."""
        self.t.mismatched += 1
        self.reject(what)

    def reject(self, what):
        """The last request, counted ok, answered a failure in its body."""
        self.t.ok -= 1
        self._fail(what)

    # ---------------------------------------------------------- cycles

    def secret_cycle(self, rnd, keep=False):
        """Store, read the payload back, delete. False if a step failed."""
        if rnd.random() < 0.5:
            payload = os.urandom(32)
            body = {"secret_type": "symmetric", "algorithm": "aes",
                    "bit_length": 256, "mode": "cbc"}
        else:
            payload = os.urandom(rnd.randint(1, 240))
            body = {"secret_type": "opaque"}
        body.update(name="e2e", payload=base64.b64encode(payload).decode(),
                    payload_content_type="application/octet-stream",
                    payload_content_encoding="base64")
        r = self.call("POST", "/v1/secrets", body, expect=(201,))
        if r is None:
            return False
        sid = _ref_id(json.loads(r[1]).get("secret_ref", ""))
        if not self.read_back(sid, payload):
            return False
        if keep:
            self.t.kept.append((self.project, sid, payload))
            return True
        return self.step() and self.call("DELETE", "/v1/secrets/" + sid,
                                         expect=(204,)) is not None

    def read_back(self, sid, payload):
        if not self.step():
            return False
        r = self.call("GET", "/v1/secrets/%s/payload" % sid,
                      accept="application/octet-stream")
        if r is None:
            return False
        if r[1] != payload:
            self.mismatch("GET /v1/secrets/{id}/payload: %d bytes back, not "
                          "the %d stored by this project" % (len(r[1]),
                                                             len(payload)))
            return False
        return True

    def order_cycle(self):
        """Order an AES-256 key, read it (32 bytes), delete key and order."""
        r = self.call("POST", "/v1/orders", {
            "type": "key", "meta": {
                "name": "e2e-order", "algorithm": "aes", "bit_length": 256,
                "mode": "cbc", "payload_content_type":
                "application/octet-stream"}}, expect=(202,))
        if r is None:
            return False
        oid = _ref_id(json.loads(r[1]).get("order_ref", ""))
        order = None
        for _ in range(3):  # processed in the request ([queue] enable = False)
            if not self.step():
                return False
            r = self.call("GET", "/v1/orders/" + oid)
            if r is None:
                return False
            order = json.loads(r[1])
            if order.get("status") != "PENDING":
                break
            time.sleep(0.2)
        if order.get("status") != "ACTIVE":
            self.reject("GET /v1/orders/{id}: status %s (%s)" % (
                order.get("status"), order.get("error_reason", "")[:80]))
            return False
        sid = _ref_id(order.get("secret_ref", ""))
        if not self.step():
            return False
        r = self.call("GET", "/v1/secrets/%s/payload" % sid,
                      accept="application/octet-stream")
        if r is None:
            return False
        if len(r[1]) != 32:
            self.mismatch("ordered AES-256 key came back as %d bytes"
                          % len(r[1]))
            return False
        for path in ("/v1/secrets/" + sid, "/v1/orders/" + oid):
            if not self.step() or self.call("DELETE", path,
                                            expect=(204,)) is None:
                return False
        return True

    def step(self):
        """May the cycle go on? Not after the deadline: no request starts
        late, so the run ends at most one request timeout after it."""
        return not self.expired()


def _ref_id(ref):
    m = _UUID.search(ref or "")
    return m.group(0) if m else "missing-ref"


def _describe(body):
    try:
        d = json.loads(body)
        msg = d.get("description") or d.get("title") or ""
    except (ValueError, AttributeError):
        msg = body[:60].decode("utf-8", "replace")
    return " ".join(str(msg).split())[:90]


class LoadResult(object):
    def __init__(self, tally, elapsed, clients):
        self.tally, self.elapsed, self.clients = tally, elapsed, clients

    @property
    def ops_per_s(self):
        return self.tally.ok / self.elapsed if self.elapsed else 0.0


def drive(port, clients, duration, max_cycles=10000, order_every=4,
          keep_every=0, seed=1, tag="e2e"):
    """clients threads, each its own project, for duration seconds (and at
    most max_cycles cycles each): every order_every-th cycle an order, the
    others secrets; with keep_every, every keep_every-th secret stays
    stored (Tally.kept) for a later reader."""
    tallies = [Tally() for _ in range(clients)]
    start = time.monotonic()
    deadline = start + duration

    def work(i):
        rnd = random.Random(seed * 1000 + i)
        c = Client(port, "%s-%d-%s" % (tag, i, uuid.uuid4().hex[:8]),
                   tallies[i], deadline)
        n = 0
        while n < max_cycles and not c.expired():
            n += 1
            if order_every and n % order_every == 0:
                c.order_cycle()
            else:
                keep = bool(keep_every) and n % keep_every == 1
                c.secret_cycle(rnd, keep=keep)
            tallies[i].cycles += 1

    threads = [threading.Thread(target=work, args=(i,), daemon=True)
               for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline + 2 * REQUEST_TIMEOUT + 5 - time.monotonic()))
    total = Tally()
    for t in tallies:
        total.add(t)
    stuck = sum(t.is_alive() for t in threads)
    if stuck:
        total.failed += stuck
        total.reasons["client thread still waiting at the end"] += stuck
    return LoadResult(total, time.monotonic() - start, clients)


def api_afterwards(port, cycles=5, budget=60.0):
    """cycles x (store, get metadata, get payload, delete) = 4 x cycles
    requests by a fresh project, one at a time, within budget seconds.
    Requests a failed step made impossible count as failed."""
    t = Tally()
    c = Client(port, "after-" + uuid.uuid4().hex[:8], t,
               time.monotonic() + budget)
    for _ in range(cycles):
        before = t.ok + t.failed
        payload = os.urandom(48)
        r = None if c.expired() else c.call("POST", "/v1/secrets", {
            "name": "after", "payload": base64.b64encode(payload).decode(),
            "payload_content_type": "application/octet-stream",
            "payload_content_encoding": "base64"}, expect=(201,))
        if r is not None:
            sid = _ref_id(json.loads(r[1]).get("secret_ref", ""))
            if c.step() and c.call("GET", "/v1/secrets/" + sid) is not None:
                if c.read_back(sid, payload) and c.step():
                    c.call("DELETE", "/v1/secrets/" + sid, expect=(204,))
        done = t.ok + t.failed - before
        if done < 4:
            t.failed += 4 - done
            t.reasons["not attempted after an earlier step failed"] += 4 - done
    return t


def verify_kept(port, kept, budget=60.0):
    """Each kept secret read back by its own project, byte for byte, then
    deleted."""
    t = Tally()
    deadline = time.monotonic() + budget
    for project, sid, payload in kept:
        c = Client(port, project, t, deadline)
        if c.expired():
            t.failed += 1
            t.reasons["kept secret not read: %.0fs spent" % budget] += 1
            continue
        if c.read_back(sid, payload) and c.step():
            c.call("DELETE", "/v1/secrets/" + sid, expect=(204,))
    return t
