#!/usr/bin/env python3
"""kmipd as a cluster (3 replicas on PostgreSQL) against one kmipd on Badger,
in the same run (issue 17).

    scripts/bench-cluster.py [BIN]      # make bench-cluster; BIN defaults to bin/kmipd

Starts `kmipd dev -cluster 3` (a private PostgreSQL, one SoftHSM token, the
HSM budget 6) and `kmipd dev` (Badger), then runs each scenario with
`kmipd bench` against Badger and against the cluster (every replica: -addr
takes the list) back to back, in several rounds, one server at a time. For
the cluster it also records where PostgreSQL's time goes: pg_stat_statements
(statements per request and their time), pg_stat_database (commits), and
pg_stat_wal (WAL flushes and their time, track_wal_io_timing), normalised by
the KMIP requests the replicas served over the whole run (their
kmipd_requests_total, warm-up included), and kmipd's own time in the store
(kmipd_storage_postgres_op_seconds) against its request time. Writes
BENCH_OUT/cluster-results.md and .json. Environment: BENCH_DURATION (10s),
BENCH_WARMUP (2s), BENCH_ROUNDS (3), BENCH_OUT (bench), BENCH_TLS_MAX (1.2),
BENCH_LOAD_PROCS (half the CPUs), BENCH_KEEP (keep the temporary folder).
Everything listens on 127.0.0.1 only and every run is bounded in time.
"""
import glob
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "bin/kmipd"))
DURATION = os.environ.get("BENCH_DURATION", "10s")
WARMUP = os.environ.get("BENCH_WARMUP", "2s")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
OUT = os.environ.get("BENCH_OUT", os.path.join(ROOT, "bench"))
TLS_MAX = os.environ.get("BENCH_TLS_MAX", "1.2")
LOAD_PROCS = os.environ.get("BENCH_LOAD_PROCS", str(max(1, (os.cpu_count() or 2) // 2)))
SCENARIOS = [("get", "persistent", 16), ("create", "persistent", 16), ("create-get-destroy", "reconnect", 16)]


def psql_bin():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"), key=lambda p: int(p.split("/")[4]))
    if not dirs:
        sys.exit("bench-cluster: no psql (install the postgresql package)")
    return dirs[-1]


def free_base(n):
    """n consecutive free ports on 127.0.0.1."""
    for _ in range(100):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1]
        s.close()
        ok = base + n < 65536
        for p in range(base, base + n):
            if not ok:
                break
            t = socket.socket()
            try:
                t.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            t.close()
        if ok:
            return base
    sys.exit("bench-cluster: no run of free ports")


def scrape(urls):
    """Sum kmipd's counters over replicas: {series: value}."""
    out = {}
    for u in urls:
        with urllib.request.urlopen(u, timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("#") or not line.strip():
                    continue
                if not (line.startswith("kmipd_requests_total") or line.startswith("kmipd_storage_postgres_op_seconds_")
                        or line.startswith("kmipd_request_duration_seconds_sum") or line.startswith("kmipd_request_duration_seconds_count")):
                    continue
                name, value = line.rsplit(" ", 1)
                out[name] = out.get(name, 0.0) + float(value)
    return out


def delta(a, b):
    return {k: b.get(k, 0.0) - a.get(k, 0.0) for k in set(a) | set(b)}


class PG:
    def __init__(self, url):
        self.url, self.psql = url, psql_bin()

    def q(self, sql):
        r = subprocess.run([self.psql, self.url, "-XAt", "-F", "\t", "-c", sql], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"psql: {sql}: {r.stderr.strip()}")
        return [l.split("\t") for l in r.stdout.splitlines() if l]

    def snapshot(self):
        db = self.q("SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()")[0]
        wal = self.q("SELECT wal_records, wal_bytes, wal_write, wal_sync, wal_write_time, wal_sync_time FROM pg_stat_wal")[0]
        return {"commits": float(db[0]), "rollbacks": float(db[1]), "wal_records": float(wal[0]), "wal_bytes": float(wal[1]),
                "wal_writes": float(wal[2]), "wal_syncs": float(wal[3]), "wal_write_ms": float(wal[4]), "wal_sync_ms": float(wal[5])}

    def statements(self):
        """Every statement kmipd ran (not this script's), most total time first."""
        rows = self.q("SELECT calls, total_exec_time, regexp_replace(query, '\\s+', ' ', 'g') FROM pg_stat_statements "
                      "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                      "AND query NOT LIKE '%pg_stat%' ORDER BY total_exec_time DESC")
        return [{"calls": float(c), "ms": float(t), "query": q[:110]} for c, t, q in rows]


def start(args, log):
    f = open(log, "w")
    return subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def stop(p):
    if p and p.poll() is None:
        os.killpg(p.pid, signal.SIGINT)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def wait_ready(urls, proc, log, timeout=180):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"bench-cluster: server exited:\n{open(log).read()[-3000:]}")
        try:
            if all(urllib.request.urlopen(u, timeout=2).status == 200 for u in urls):
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"bench-cluster: not ready after {timeout}s:\n{open(log).read()[-3000:]}")


def bench(label, addrs, metrics, pki, mix, mode, workers):
    args = [BIN, "bench", "-addr", ",".join(addrs), "-pki", pki, "-cert", pki + "/client.crt", "-key", pki + "/client.key",
            "-tls-max", TLS_MAX, "-procs", LOAD_PROCS, "-mix", mix, "-mode", mode, "-workers", str(workers),
            "-warmup", WARMUP, "-duration", DURATION, "-label", label, "-json", "-quiet", "-metrics", ",".join(metrics)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"kmipd bench {label} {mix}: {r.stderr[-2000:]}")
    return json.loads(r.stdout)


def main():
    if not os.access(BIN, os.X_OK):
        sys.exit(f"bench-cluster: {BIN} not found; run make build")
    tmp = tempfile.mkdtemp(prefix="kmipd-bench-cluster-")
    os.chmod(tmp, 0o711)  # PostgreSQL runs as the postgres user when we are root
    cluster = badger = None
    try:
        base = free_base(6)
        cluster = start([BIN, "dev", "-cluster", "3", "-dir", tmp + "/cluster", "-addr", f"127.0.0.1:{base}",
                         "-max-sessions", "6", "-log-level", "warn"], tmp + "/cluster.log")
        end = time.time() + 180
        while not os.path.exists(tmp + "/cluster/cluster.json"):
            if cluster.poll() is not None or time.time() > end:
                sys.exit(f"bench-cluster: kmipd dev -cluster did not come up:\n{open(tmp + '/cluster.log').read()[-3000:]}")
            time.sleep(0.2)
        info = json.load(open(tmp + "/cluster/cluster.json"))
        c_addrs = [r["addr"] for r in info["replicas"]]
        c_metrics = [f"http://{r['telemetry']}/metrics" for r in info["replicas"]]
        b = free_base(2)
        badger = start([BIN, "dev", "-dir", tmp + "/badger", "-addr", f"127.0.0.1:{b}", "-telemetry-addr", f"127.0.0.1:{b + 1}",
                        "-log-level", "warn"], tmp + "/badger.log")
        wait_ready([f"http://127.0.0.1:{b + 1}/readyz"], badger, tmp + "/badger.log")
        pg = PG(info["postgres_url"])
        pg.q("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        load_before = open("/proc/loadavg").read().split()[:3]
        rounds = []
        for rnd in range(ROUNDS):
            print(f"bench-cluster: round {rnd + 1} of {ROUNDS}", file=sys.stderr)
            row = {}
            for mix, mode, workers in SCENARIOS:
                bres = bench("badger", [f"127.0.0.1:{b}"], [f"http://127.0.0.1:{b + 1}/metrics"], tmp + "/badger/pki", mix, mode, workers)
                pg.q("SELECT pg_stat_statements_reset()")
                s0, m0 = pg.snapshot(), scrape(c_metrics)
                cres = bench("cluster", c_addrs, c_metrics, tmp + "/cluster/pki", mix, mode, workers)
                s1, m1 = pg.snapshot(), scrape(c_metrics)
                row[mix] = {"badger": bres, "cluster": cres, "pg": delta(s0, s1), "kmipd": delta(m0, m1), "statements": pg.statements()}
            rounds.append(row)
        load_after = open("/proc/loadavg").read().split()[:3]
        report(rounds, load_before, load_after)
    finally:
        stop(badger)
        stop(cluster)
        if os.environ.get("BENCH_KEEP"):
            print(f"bench-cluster: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def served(m):
    return sum(v for k, v in m.items() if k.startswith("kmipd_requests_total"))


def report(rounds, load_before, load_after):
    os.makedirs(OUT, exist_ok=True)
    json.dump(rounds, open(os.path.join(OUT, "cluster-results.json"), "w"), indent=1, default=str)
    version = subprocess.run([BIN, "version"], capture_output=True, text=True).stdout.strip()
    lines = ["# kmipd cluster (3 replicas, PostgreSQL) against one kmipd (Badger)", "",
             f"scripts/bench-cluster.py (make bench-cluster): BENCH_ROUNDS={ROUNDS} BENCH_DURATION={DURATION} BENCH_WARMUP={WARMUP} "
             f"BENCH_TLS_MAX={TLS_MAX} BENCH_LOAD_PROCS={LOAD_PROCS}; {version}; {os.cpu_count()} cores. "
             f"Load average before {' '.join(load_before)}, after {' '.join(load_after)}.",
             "Each row: the round with the median cluster/Badger ratio (all rounds' ratios listed). Both servers: kmipd dev, "
             "SoftHSM2, audit log on; the cluster's replicas share one PostgreSQL (fsync on, synchronous_commit on) and an HSM budget of 6. "
             "All on this one machine: the cluster is three kmipd processes and PostgreSQL on the same cores as the load generator, "
             "so it measures what PostgreSQL costs, not what more machines would add.", "",
             "| mix | mode | workers | Badger ops/s | Badger p99 | cluster ops/s | cluster p99 | cluster / Badger | rounds | HSM calls/op (Badger, cluster) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    detail = ["", "Where the cluster's time goes (the median round; per KMIP request the replicas served, warm-up included; "
              "statements as pg_stat_statements counts them, BEGIN and COMMIT included; WAL flushes from pg_stat_wal; "
              "time in PostgreSQL is kmipd's time in its store calls over its request time):", "",
              "| mix | SQL statements / req | commits / req | WAL flushes / req | WAL flush ms / req | WAL bytes / req | time in PostgreSQL / request time |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    stmts = ["", "Top statements (the median round):", ""]
    for mix, mode, workers in SCENARIOS:
        ratios = [r[mix]["cluster"]["ops_per_sec"] / max(r[mix]["badger"]["ops_per_sec"], 1e-9) for r in rounds]
        med = statistics.median_low(ratios)
        r = rounds[ratios.index(med)][mix]
        bb, cc = r["badger"], r["cluster"]
        hsm = lambda x: f"{x['hsm']['calls_per_op']:.3f}" if x.get("hsm") else "?"
        lines.append(f"| {mix} | {mode} | {workers} | {bb['ops_per_sec']:,.0f} | {bb['latency']['p99_ms']:.2f} ms | "
                     f"{cc['ops_per_sec']:,.0f} | {cc['latency']['p99_ms']:.2f} ms | **{med:.2f}×** | "
                     f"{', '.join(f'{x:.2f}×' for x in ratios)} | {hsm(bb)}, {hsm(cc)} |")
        n = max(served(r["kmipd"]), 1)
        pgd, k = r["pg"], r["kmipd"]
        calls = sum(s["calls"] for s in r["statements"])
        store_s = sum(v for kk, v in k.items() if kk.startswith("kmipd_storage_postgres_op_seconds_sum"))
        req_s = sum(v for kk, v in k.items() if kk.startswith("kmipd_request_duration_seconds_sum"))
        detail.append(f"| {mix} | {calls / n:.2f} | {pgd['commits'] / n:.2f} | {pgd['wal_syncs'] / n:.2f} | "
                      f"{pgd['wal_sync_ms'] / n:.3f} | {pgd['wal_bytes'] / n:,.0f} | {store_s / max(req_s, 1e-9):.0%} |")
        stmts.append(f"- **{mix}** ({n:,.0f} requests): " + "; ".join(
            f"`{s['query']}` {s['calls'] / n:.2f}/req, {s['ms'] / max(s['calls'], 1):.3f} ms" for s in r["statements"][:5]))
    md = "\n".join(lines + detail + stmts) + "\n"
    open(os.path.join(OUT, "cluster-results.md"), "w").write(md)
    print(md)


if __name__ == "__main__":
    main()
