"""Barbican 15's real API (Debian's python3-barbican) under gunicorn.

The WSGI app is Barbican's own paste pipeline ``barbican_api``: no Keystone,
the ``unauthenticated-context`` filter takes the project from X-Project-Id.
Secrets go to one of three stores:

  kmip_plugin             Barbican's KMIPSecretStore -> kmipd
  kmip_plugin_threadsafe  deploy/barbican/kmipd_barbican (one client per thread) -> kmipd
  p11                     store_crypto + Barbican's p11_crypto on the capped HSM

Barbican reads its configuration from ~/.barbican/barbican.conf: every
Barbican process here gets HOME set to a directory of the run.
"""

import configparser
import glob
import os
import shutil
import urllib.error
import urllib.request

from services import PYTHON, REPO_ROOT, E2EError, Proc, free_ports, run, wait_until

SNIPPET = os.path.join(REPO_ROOT, "deploy", "barbican", "barbican.conf")
PLUGIN_SRC = os.path.join(REPO_ROOT, "deploy", "barbican", "kmipd_barbican")
STORES = ("kmip_plugin", "kmip_plugin_threadsafe", "p11")
TOKEN_LABEL, TOKEN_PIN, TOKEN_SO_PIN = "barbican", "e2e-user-pin", "e2e-so-pin"

PASTE_INI = """\
# Barbican 15's barbican-api-paste.ini, /v1 on the unauthenticated pipeline.
[composite:main]
use = egg:Paste#urlmap
/: barbican_version
/v1: barbican_api

[pipeline:barbican_version]
pipeline = cors http_proxy_to_wsgi microversion versionapp

[pipeline:barbican_api]
pipeline = cors http_proxy_to_wsgi unauthenticated-context microversion %(threads)sapiapp

[app:apiapp]
paste.app_factory = barbican.api.app:create_main_app

[app:versionapp]
paste.app_factory = barbican.api.app:create_version_app

[filter:unauthenticated-context]
paste.filter_factory = barbican.api.middleware.context:UnauthenticatedContextMiddleware.factory

[filter:microversion]
paste.filter_factory = barbican.api.middleware.microversion:MicroversionMiddleware.factory

[filter:cors]
paste.filter_factory = oslo_middleware.cors:filter_factory
oslo_config_project = barbican

[filter:http_proxy_to_wsgi]
paste.filter_factory = oslo_middleware:HTTPProxyToWSGI.factory
%(threads_filter)s"""

# deploy/barbican/kmipd_barbican's filter for threaded workers.
THREADS_FILTER = """
[filter:threads]
paste.filter_factory = kmipd_barbican.wsgi:filter_factory
"""

# post_worker_init runs in a worker once Barbican's app is loaded in it.
GUNICORN_CONF = """\
import os
def post_worker_init(worker):
    open(os.path.join(%r, str(worker.pid)), "w").close()
"""


def install_threadsafe_plugin(target):
    """pip-installs deploy/barbican/kmipd_barbican into target (offline), as
    an operator would, and returns target for PYTHONPATH. The source is
    copied first: pip builds in the source tree."""
    src = os.path.join(target + ".src")
    shutil.copytree(PLUGIN_SRC, src, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__"))
    run([PYTHON, "-m", "pip", "install", "--quiet", "--no-build-isolation",
         "--no-deps", "--no-index", "--no-cache-dir", "--disable-pip-version-check",
         "--target", target, src],
        env=dict(os.environ, PIP_ROOT_USER_ACTION="ignore"),
        what="pip install deploy/barbican/kmipd_barbican", timeout=300)
    shutil.rmtree(src, ignore_errors=True)
    if not glob.glob(os.path.join(target, "kmipd_barbican-*.dist-info",
                                  "entry_points.txt")):
        raise E2EError("pip left no kmipd_barbican dist-info in %s: %s"
                       % (target, os.listdir(target)))
    return target


class BarbicanAPI(object):
    """Barbican's API: workers x threads under gunicorn, on 127.0.0.1."""

    def __init__(self, workdir, name, store, workers, threads, db_url,
                 kmipd=None, hsm=None, pythonpath=None, threads_filter=False):
        if store not in STORES:
            raise ValueError("store %r not in %s" % (store, STORES))
        self.store, self.workers, self.threads = store, workers, threads
        self.kmipd, self.hsm, self.db_url = kmipd, hsm, db_url
        self.threads_filter = threads_filter
        if (threads_filter or store == "kmip_plugin_threadsafe") and not pythonpath:
            raise ValueError("kmipd_barbican needs a pythonpath")
        self.dir = os.path.join(workdir, name)
        self.home = os.path.join(self.dir, "home")
        self.conf_path = os.path.join(self.home, ".barbican", "barbican.conf")
        self.ready_dir = os.path.join(self.dir, "ready")
        self.log = os.path.join(self.dir, "barbican-api.log")
        os.makedirs(os.path.dirname(self.conf_path))
        os.makedirs(self.ready_dir)
        self.port = free_ports(1)[0]
        self.base = "http://127.0.0.1:%d" % self.port
        self.env = dict(os.environ, HOME=self.home, PYTHONDONTWRITEBYTECODE="1")
        self.env.pop("PYTHONHOME", None)
        self.env.pop("PYTHONPATH", None)
        if pythonpath:
            self.env["PYTHONPATH"] = pythonpath
        if store == "p11":
            self.env.update(hsm.env())
        self.proc = None

    # ------------------------------------------------------------ config

    def _write_conf(self, db_auto_create):
        p = configparser.ConfigParser(interpolation=None)
        p["DEFAULT"] = {
            "sql_connection": self.db_url,
            "db_auto_create": str(db_auto_create),
            "host_href": self.base,
            "log_file": self.log,
            "use_stderr": "False",
            "debug": "False",
        }
        p["queue"] = {"enable": "False"}  # orders are processed in the request
        if self.store == "p11":
            p["secretstore"] = {"enabled_secretstore_plugins": "store_crypto"}
            p["crypto"] = {"enabled_crypto_plugins": "p11_crypto"}
            p["p11_crypto_plugin"] = {
                "library_path": self.hsm.so,
                "token_labels": TOKEN_LABEL,
                "login": TOKEN_PIN,
                "mkek_label": "e2e_mkek",
                "mkek_length": "32",
                "hmac_label": "e2e_hmac",
                "hmac_key_type": "CKK_GENERIC_SECRET",
                "hmac_keygen_mechanism": "CKM_GENERIC_SECRET_KEY_GEN",
                "encryption_mechanism": "CKM_AES_CBC",
            }
        else:
            # deploy/barbican/barbican.conf itself, pointed at this kmipd.
            snippet = configparser.ConfigParser(interpolation=None, strict=True)
            with open(SNIPPET) as f:
                snippet.read_file(f)
            p["secretstore"] = dict(snippet["secretstore"])
            p["kmip_plugin"] = dict(snippet["kmip_plugin"])
            kp = p["kmip_plugin"]
            kp["host"], kp["port"] = self.kmipd.addr[0], str(self.kmipd.addr[1])
            kp["certfile"] = os.path.join(self.kmipd.pki, "client.crt")
            kp["keyfile"] = os.path.join(self.kmipd.pki, "client.key")
            kp["ca_certs"] = os.path.join(self.kmipd.pki, "ca.crt")
            if self.store == "kmip_plugin_threadsafe":
                p["secretstore"]["enabled_secretstore_plugins"] = self.store
        with open(self.conf_path, "w") as f:
            p.write(f)

    def prepare(self, create_schema=True):
        """Schema (once, before any worker; not for a database an earlier
        API already set up), and for p11 the MKEK and HMAC key on the token,
        made with barbican-manage as an operator would."""
        if create_schema:
            self._write_conf(db_auto_create=True)
            run([PYTHON, "-c", "from barbican.model import repositories as r; "
                 "r.setup_database_engine_and_factory(); r.commit()"],
                env=self.env, cwd=self.dir, what="creating Barbican's schema",
                timeout=300)
        if self.store == "p11":
            self._prepare_token()
        self._write_conf(db_auto_create=False)

    def _prepare_token(self):
        env = dict(self.env)
        run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN_LABEL,
             "--so-pin", TOKEN_SO_PIN, "--pin", TOKEN_PIN], env=env,
            what="softhsm2-util --init-token")
        manage = [PYTHON, "-m", "barbican.cmd.barbican_manage",
                  "--config-file", self.conf_path, "hsm"]
        run(manage + ["gen_mkek", "--label", "e2e_mkek", "--length", "32"],
            env=env, cwd=self.dir, what="barbican-manage hsm gen_mkek")
        run(manage + ["gen_hmac", "--label", "e2e_hmac", "--length", "32",
                      "--key-type", "CKK_GENERIC_SECRET",
                      "--mechanism", "CKM_GENERIC_SECRET_KEY_GEN"],
            env=env, cwd=self.dir, what="barbican-manage hsm gen_hmac")
        self.hsm.reset_peak()

    # ------------------------------------------------------------ process

    def start(self, timeout=600):
        paste = os.path.join(self.dir, "barbican-api-paste.ini")
        with open(paste, "w") as f:
            f.write(PASTE_INI % {
                "threads": "threads " if self.threads_filter else "",
                "threads_filter": THREADS_FILTER if self.threads_filter else ""})
        gconf = os.path.join(self.dir, "gunicorn.conf.py")
        with open(gconf, "w") as f:
            f.write(GUNICORN_CONF % self.ready_dir)
        self.proc = Proc("gunicorn", [
            PYTHON, "/usr/bin/gunicorn", "-c", gconf, "--paste", paste,
            "--bind", "127.0.0.1:%d" % self.port,
            "--workers", str(self.workers), "--threads", str(self.threads),
            # A worker silent this long is killed and replaced. gunicorn's
            # default, 30 s, kills workers still loading Barbican on a busy
            # 2-core machine, again and again.
            "--timeout", "120", "--graceful-timeout", "5",
            "--worker-tmp-dir", self.dir], self.dir, env=self.env, cwd=self.dir)
        wait_until("Barbican API (%d workers with the app loaded)" % self.workers,
                   lambda: len(os.listdir(self.ready_dir)) >= self.workers,
                   timeout, self.proc, extra_logs=[self.log])
        wait_until("Barbican API answering", self._answers, 30, self.proc,
                   extra_logs=[self.log])

    def _answers(self):
        try:
            urllib.request.urlopen(self.base + "/", timeout=5)
        except urllib.error.HTTPError as e:
            return e.code == 300  # the versions document
        return True

    def worker_restarts(self):
        """Workers booted beyond the first set: each one replaced a worker
        that died or that gunicorn killed for hanging."""
        with open(self.proc.log, errors="replace") as f:
            booted = sum("Booting worker with pid" in line for line in f)
        return max(0, booted - self.workers)

    def describe(self):
        return self.proc.describe([self.log]) if self.proc else ""

    def stop(self):
        if self.proc:
            self.proc.stop(timeout=20)
            self.proc = None
