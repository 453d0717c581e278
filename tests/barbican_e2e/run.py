#!/usr/bin/python3
"""Barbican end to end: Barbican 15's real API, many workers, one capped HSM.

Each row starts a fresh HSM (the capped PKCS#11 module over SoftHSM2: one
session cap for every process, CKR_DEVICE_MEMORY beyond it, a delay on every
call), a fresh Barbican database on one MariaDB, for kmipd rows `kmipd dev`
on that HSM, and Barbican's API under gunicorn with W workers x T threads.
Then C clients, each its own project, store secrets, read each payload back
byte for byte, delete them, and order AES keys, for D seconds; then 20
requests check that the API still answers. One table at the end.

  make barbican-e2e                       # every row below
  tests/barbican_e2e/run.py -kmipd bin/kmipd [-p11 | -kmip] [-rows ROWS]
      [-clients 32] [-duration 20] [-hsm-cap 8] [-hsm-delay-us 1000] [-keep]

ROWS is a comma-separated list of STORE:WxT[:bare], STORE one of
  kmip_plugin             Barbican's own KMIPSecretStore -> kmipd
  kmip_plugin_threadsafe  deploy/barbican/kmipd_barbican -> kmipd
  p11                     Barbican's store_crypto + p11_crypto on the HSM itself
With more than one thread per worker the paste pipeline has kmipd_barbican's
`threads` filter (see deploy/barbican/README.md), unless the row ends in
:bare: then threads also hang in oslo.log and race in Barbican's policy setup.
-strict exits 1 if a row that should be safe (kmip_plugin with one thread per
worker, kmip_plugin_threadsafe) failed a request, read a wrong payload, hit
the HSM's cap, or left the API failing. Uses 127.0.0.1 and unix sockets only.
"""

import argparse
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import load  # noqa: E402
from barbican_api import BarbicanAPI, install_threadsafe_plugin  # noqa: E402
from services import (REPO_ROOT, CappedHSM, E2EError, Kmipd, MariaDB,  # noqa: E402
                      build_capped_module)

KMIP_ROWS = "kmip_plugin:8x1,kmip_plugin:4x8,kmip_plugin_threadsafe:4x8"
P11_ROWS = "p11:8x1,p11:4x8"
LABEL = {"kmip_plugin": "kmip_plugin → kmipd",
         "kmip_plugin_threadsafe": "kmip_plugin_threadsafe → kmipd",
         "p11": "p11_crypto (store_crypto)"}


def parse_rows(spec):
    rows = []
    for item in spec.split(","):
        store, _, rest = item.strip().partition(":")
        wt, _, flag = rest.partition(":")
        w, _, t = wt.partition("x")
        if (store not in LABEL or not (w.isdigit() and t.isdigit())
                or flag not in ("", "bare")):
            raise argparse.ArgumentTypeError(
                "%r is not STORE:WxT[:bare] with STORE in %s"
                % (item, ", ".join(LABEL)))
        rows.append(Row(store, int(w), int(t),
                        threads_filter=int(t) > 1 and flag != "bare"))
    return rows


class Row(object):
    def __init__(self, store, workers, threads, threads_filter=False):
        self.store, self.workers, self.threads = store, workers, threads
        self.threads_filter = threads_filter
        self.load = self.after = None
        self.hsm = {}
        self.kmipd_peak = None
        self.restarts = 0
        self.error = None
        self.loadavg = None

    def safe(self):
        if self.threads == 1:
            return self.store != "p11"
        return self.store == "kmip_plugin_threadsafe" and self.threads_filter

    def problems(self):
        """Why a safe row is not clean (empty if it is)."""
        if self.error:
            return ["did not run: " + self.error.splitlines()[0]]
        p = []
        t = self.load.tally
        if t.failed or t.mismatched:
            p.append("%d failed (%d wrong payloads): %s"
                     % (t.failed, t.mismatched, t.top_reasons()))
        if self.after.failed:
            p.append("API afterwards: %d of 20 failed: %s"
                     % (self.after.failed, self.after.top_reasons()))
        if self.hsm.get("refusals"):
            p.append("the HSM refused %d sessions" % self.hsm["refusals"])
        if t.ok == 0:
            p.append("no request succeeded")
        return p


def run_row(ctx, n, row, a):
    rowdir = os.path.join(ctx.workdir, "row%d-%s-%dx%d" % (
        n, row.store, row.workers, row.threads))
    os.makedirs(rowdir)
    hsm = CappedHSM(ctx.so, rowdir, a.hsm_cap, a.hsm_delay_us)
    kmipd = api = None
    try:
        db = ctx.db.create_database("barbican_row%d" % n)
        if row.store != "p11":
            kmipd = Kmipd(a.kmipd, rowdir, hsm, a.kmipd_max_sessions)
            kmipd.start()
        api = BarbicanAPI(rowdir, "api", row.store, row.workers, row.threads,
                          db, kmipd=kmipd, hsm=hsm,
                          pythonpath=ctx.plugin_path(row),
                          threads_filter=row.threads_filter)
        api.prepare()
        api.start()
        row.loadavg = os.getloadavg()[0]
        log("  %s %dx%d: %d clients for %ds" % (
            row.store, row.workers, row.threads, a.clients, a.duration))
        row.load = load.drive(api.port, a.clients, a.duration,
                              max_cycles=a.max_cycles, tag="row%d" % n)
        row.after = load.api_afterwards(api.port)
        row.hsm = hsm.stats()
        row.restarts = api.worker_restarts()
        if kmipd:
            row.kmipd_peak = kmipd.metric("kmipd_hsm_sessions_peak")
    except E2EError as e:
        row.error = str(e)
    finally:
        if api:
            api.stop()
        if kmipd:
            kmipd.stop()
    return row


def fmt_table(rows):
    out = ["| mode | workers × threads | requests ok | failed (wrong payload) "
           "| ops/s | HSM peak sessions | HSM refusals | API afterwards "
           "| workers replaced |",
           "|---|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        wt = "%d × %d" % (r.workers, r.threads)
        if r.threads > 1:
            wt += " + threads filter" if r.threads_filter else ", no filter"
        if r.error:
            out.append("| %s | %s | did not run: %s |||||||" % (
                LABEL[r.store], wt, r.error.splitlines()[0][:80]))
            continue
        t = r.load.tally
        peak = "%d" % r.hsm["peak"]
        if r.kmipd_peak is not None:
            peak += " (kmipd: %d)" % r.kmipd_peak
        out.append("| %s | %s | %d | %d (%d) | %.1f | %s | %d | %d/20 ok | %d |" % (
            LABEL[r.store], wt, t.ok, t.failed, t.mismatched, r.load.ops_per_s,
            peak, r.hsm["refusals"], r.after.ok, r.restarts))
    return "\n".join(out)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Ctx(object):
    def __init__(self, workdir):
        self.workdir = workdir
        self.db = self.so = None
        self._plugin = None

    def plugin_path(self, row):
        if row.store != "kmip_plugin_threadsafe" and not row.threads_filter:
            return None
        if self._plugin is None:
            self._plugin = install_threadsafe_plugin(
                os.path.join(self.workdir, "site"))
        return self._plugin


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-kmipd", default=os.path.join(REPO_ROOT, "bin", "kmipd"))
    ap.add_argument("-rows", type=parse_rows)
    ap.add_argument("-p11", action="store_true", help="only the p11_crypto rows")
    ap.add_argument("-kmip", action="store_true", help="only the kmipd rows")
    ap.add_argument("-clients", type=int, default=32)
    ap.add_argument("-duration", type=float, default=20.0)
    ap.add_argument("-max-cycles", type=int, default=100000, dest="max_cycles")
    ap.add_argument("-hsm-cap", type=int, default=8, dest="hsm_cap")
    ap.add_argument("-hsm-delay-us", type=int, default=1000, dest="hsm_delay_us")
    ap.add_argument("-kmipd-max-sessions", type=int, default=4,
                    dest="kmipd_max_sessions")
    ap.add_argument("-strict", action="store_true")
    ap.add_argument("-keep", action="store_true", help="keep the work directory")
    a = ap.parse_args(argv)
    rows = a.rows or parse_rows(P11_ROWS if a.p11 else KMIP_ROWS if a.kmip
                                else KMIP_ROWS + "," + P11_ROWS)
    if any(r.store != "p11" for r in rows) and not os.access(a.kmipd, os.X_OK):
        ap.error("no kmipd binary at %s (make build, or -kmipd PATH)" % a.kmipd)
    if a.kmipd_max_sessions > a.hsm_cap:
        ap.error("-kmipd-max-sessions must not exceed -hsm-cap")

    # SIGTERM (make, a CI timeout) unwinds like ^C, so everything is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ctx = Ctx(tempfile.mkdtemp(prefix="kmipd-barbican-e2e-"))
    results = []
    try:
        log("work directory: %s" % ctx.workdir)
        ctx.so = build_capped_module(ctx.workdir)
        ctx.db = MariaDB(ctx.workdir)
        ctx.db.start()
        for n, row in enumerate(rows, 1):
            started = time.monotonic()
            r = run_row(ctx, n, row, a)
            results.append(r)
            log("  row %d done in %.0fs%s" % (
                n, time.monotonic() - started,
                (": " + r.error) if r.error else ""))
    except E2EError as e:
        log("setup failed: %s" % e)
        return 2
    except Exception:
        traceback.print_exc()
        return 2
    finally:
        if ctx.db:
            ctx.db.stop()
        if a.keep:
            log("kept %s" % ctx.workdir)
        else:
            shutil.rmtree(ctx.workdir, ignore_errors=True)

    print("\nBarbican 15 API (gunicorn, MariaDB), %d clients for %gs each; "
          "HSM: SoftHSM2 behind a cap of %d sessions for all processes, "
          "CKR_DEVICE_MEMORY beyond it, %g ms per call; kmipd max_sessions = %d; "
          "%d CPUs (%s).\n" % (a.clients, a.duration, a.hsm_cap,
                               a.hsm_delay_us / 1000.0, a.kmipd_max_sessions,
                               os.cpu_count(), platform.machine()))
    print(fmt_table(results))
    print("\nThe machine's 1-minute load average as each row's load began: %s."
          % ", ".join("%.1f" % r.loadavg for r in results if r.loadavg is not None))
    print()
    for r in results:
        if not r.error and (r.load.tally.failed or r.after.failed):
            print("%s %dx%d failures: %s%s" % (
                r.store, r.workers, r.threads, r.load.tally.top_reasons(),
                ("; afterwards: " + r.after.top_reasons())
                if r.after.failed else ""))
            wrong = [(n, why) for why, n in r.load.tally.reasons.items()
                     if "bytes back" in why or "came back as" in why]
            for n, why in wrong:
                print("  wrong payload: %dx %s" % (n, why))
    bad = [(r, p) for r in results if r.safe() for p in r.problems()]
    for r, p in bad:
        print("NOT CLEAN: %s %dx%d: %s" % (r.store, r.workers, r.threads, p))
    if any(r.error for r in results):
        return 1
    return 1 if a.strict and bad else 0


if __name__ == "__main__":
    sys.exit(main())
