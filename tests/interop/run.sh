#!/usr/bin/env bash
# Run the PyKMIP + Barbican interop suites against a KMIP server, and the
# bounded Barbican end-to-end test (test_barbican_e2e.py: Barbican's API under
# gunicorn with MariaDB, against a kmipd dev it starts itself over the capped
# test module; skipped with KMIPD_INTEROP_SERVER=pykmip or _ADDR).
#
#   tests/interop/run.sh                          # kmipd: builds ./cmd/kmipd, runs `kmipd dev`
#   KMIPD_BIN=/path/kmipd tests/interop/run.sh    # kmipd: use this binary
#   KMIPD_INTEROP_SERVER=pykmip tests/interop/run.sh   # the PyKMIP reference server
#   KMIPD_INTEROP_ADDR=127.0.0.1:5696 KMIPD_INTEROP_PKI=/path/pki tests/interop/run.sh
#
# Extra arguments go to pytest (e.g. -k barbican, -x, -v).
# Needs Debian's python3-pykmip, python3-barbican and python3-pytest, which
# live in /usr/bin/python3 (not a pyenv python); the end-to-end test also
# mariadb-server, gunicorn, python3-pymysql, python3-pip and gcc. Uses 127.0.0.1 only; the
# kmipd build uses the Go module cache only (GOPROXY=off).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONDONTWRITEBYTECODE=1
exec /usr/bin/python3 -m pytest -q tests/interop "$@"
