"""Barbican 15's real API in front of kmipd, end to end and bounded (issue 19).

The two worker models deploy/barbican/README.md calls safe, each under load
from many projects at once, on an HSM capped at 8 sessions for every process
(CKR_DEVICE_MEMORY beyond, 1 ms per call):

  1. kmip_plugin (Barbican's own), 2 gunicorn workers x 1 thread;
  2. kmip_plugin_threadsafe with the `threads` paste filter
     (deploy/barbican/kmipd_barbican), 2 workers x 8 threads, which also
     reads back the secrets that (1) left stored: one plugin reads what the
     other wrote.

Each asserts: no request failed, every payload came back byte for byte to
the project that stored it, the API answers 20 of 20 requests afterwards,
the HSM refused no session and its peak stayed within kmipd's
max_sessions. About a minute in all; `make barbican-e2e` runs the full
table, p11_crypto included. Needs MariaDB, gunicorn, gcc and SoftHSM2
(.ci/run installs them); 127.0.0.1 and unix sockets only.
"""

import os
import shutil
import sys
import tempfile

import pytest

from conftest import REPO_ROOT, _build_kmipd

sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "barbican_e2e"))

import load  # noqa: E402
from barbican_api import BarbicanAPI  # noqa: E402
from services import (CappedHSM, E2EError, Kmipd, MariaDB,  # noqa: E402
                      build_capped_module)

HSM_CAP, HSM_DELAY_US, KMIPD_MAX_SESSIONS = 8, 1000, 4
DURATION = 8.0  # seconds of load per phase
MAX_CYCLES = 60  # per client, whatever the machine's speed
NEEDS = {"mariadbd": "mariadb-server", "mariadb-install-db": "mariadb-server",
         "gunicorn": "gunicorn", "gcc": "gcc", "softhsm2-util": "softhsm2"}


def _skip_reasons():
    if os.environ.get("KMIPD_INTEROP_SERVER", "kmipd") != "kmipd":
        return "the end-to-end run starts its own kmipd"
    if os.environ.get("KMIPD_INTEROP_ADDR"):
        return "the end-to-end run starts its own kmipd over the capped HSM"
    missing = sorted({pkg for cmd, pkg in NEEDS.items()
                      if not shutil.which(cmd)})
    if missing:
        return "missing; apt-get install %s" % " ".join(missing)
    try:
        import pymysql  # noqa: F401
    except ImportError:
        return "PyMySQL missing; apt-get install python3-pymysql"
    return None


class Env(object):
    kept = ()


@pytest.fixture(scope="module")
def e2e(request):
    why = _skip_reasons()
    if why:
        pytest.skip(why)
    env = Env()
    env.workdir = tempfile.mkdtemp(prefix="kmipd-barbican-e2e-")
    env.db = env.kmipd = None
    try:
        kmipd_bin = os.environ.get("KMIPD_BIN") or _build_kmipd(env.workdir)
        env.hsm = CappedHSM(build_capped_module(env.workdir), env.workdir,
                            HSM_CAP, HSM_DELAY_US)
        env.db = MariaDB(env.workdir)
        env.db.start()
        env.db_url = env.db.create_database("barbican")
        env.kmipd = Kmipd(kmipd_bin, env.workdir, env.hsm, KMIPD_MAX_SESSIONS)
        env.kmipd.start()
        env.site = request.getfixturevalue("threadsafe_plugin_site")
        yield env
    except E2EError as e:
        pytest.fail(str(e), pytrace=False)
    finally:
        if env.kmipd:
            env.kmipd.stop()
        if env.db:
            env.db.stop()
        if not os.environ.get("KMIPD_INTEROP_KEEP"):
            shutil.rmtree(env.workdir, ignore_errors=True)


def run_phase(env, name, store, workers, threads, clients, create_schema,
              keep_every=0, threads_filter=False):
    api = BarbicanAPI(env.workdir, name, store, workers, threads, env.db_url,
                      kmipd=env.kmipd, hsm=env.hsm, pythonpath=env.site,
                      threads_filter=threads_filter)
    try:
        api.prepare(create_schema=create_schema)
        api.start()
        res = load.drive(api.port, clients, DURATION, max_cycles=MAX_CYCLES,
                         keep_every=keep_every, tag=name)
        after = load.api_afterwards(api.port)
        kept = load.verify_kept(api.port, env.kept) if env.kept else None
        return res, after, kept, api.describe()
    except E2EError as e:
        pytest.fail(str(e), pytrace=False)
    finally:
        api.stop()


def check(env, what, res, after, logs):
    t = res.tally
    stats = env.hsm.stats()
    peak = env.kmipd.metric("kmipd_hsm_sessions_peak")
    where = "%s\n--- kmipd ---\n%s" % (logs[-6000:],
                                       env.kmipd.proc.describe()[-2000:])
    assert t.mismatched == 0, (
        "%s: %d payloads came back with other bytes than their project "
        "stored: %s\n%s" % (what, t.mismatched, t.top_reasons(), where))
    assert t.failed == 0, "%s: %d of %d requests failed: %s\n%s" % (
        what, t.failed, t.ok + t.failed, t.top_reasons(), where)
    # Each client did a few full cycles: the load was real.
    assert t.ok >= 3 * res.clients, (
        "%s: only %d requests in %.0fs from %d clients\n%s"
        % (what, t.ok, res.elapsed, res.clients, where))
    assert after.ok == 20, "%s: API afterwards: %d of 20 failed: %s\n%s" % (
        what, after.failed, after.top_reasons(), where)
    assert stats["refusals"] == 0, (
        "%s: the HSM refused %d sessions (%s)" % (what, stats["refusals"],
                                                   stats))
    assert 1 <= stats["peak"] <= KMIPD_MAX_SESSIONS, stats
    assert peak is not None and peak <= KMIPD_MAX_SESSIONS, (
        "kmipd_hsm_sessions_peak = %r" % peak)


def test_processes_one_thread_each_kmip_plugin(e2e):
    res, after, _, logs = run_phase(
        e2e, "kmip_plugin-2x1", "kmip_plugin", 2, 1, clients=8,
        create_schema=True, keep_every=4)
    check(e2e, "kmip_plugin 2x1", res, after, logs)
    assert res.tally.kept, "no secret was kept for the second phase"
    e2e.kept = res.tally.kept


def test_threads_with_kmip_plugin_threadsafe(e2e):
    res, after, kept, logs = run_phase(
        e2e, "threadsafe-2x8", "kmip_plugin_threadsafe", 2, 8, clients=16,
        create_schema=False, threads_filter=True)
    check(e2e, "kmip_plugin_threadsafe 2x8", res, after, logs)
    if not e2e.kept:
        pytest.skip("the kmip_plugin phase kept no secrets to read back")
    assert kept.failed == 0 and kept.ok == 2 * len(e2e.kept), (
        "secrets stored through kmip_plugin, read and deleted through "
        "kmip_plugin_threadsafe: %d ok, %d failed: %s\n%s"
        % (kept.ok, kept.failed, kept.top_reasons(), logs[-4000:]))
