#!/usr/bin/env bash
# Runs PyKMIP 0.10's own integration suite (shared/pykmip-integration, the
# tests exactly as released) against a fresh `kmipd dev`, as PyKMIP's authors
# run it against their server: a [client] section in ~/.pykmip/pykmip.conf
# (here in a temporary HOME, pointing at the dev PKI), then
# `pytest kmip/tests/integration --config client -m "not ignore"`.
#
#   scripts/pykmip-suite.sh [-each] KMIPD_BIN [SUITE_DIR] [OUT_FILE]
#
# Default: the whole suite, in order, on one server (the score). Every test's
# tearDown destroys all of the client's objects, and kmipd refuses to destroy
# an Active object, so one failure that leaves an Active key behind fails
# every later test too. -each runs every test alone on its own fresh server
# instead and lists PASS/FAIL per test: what each test needs, without the
# cascade.
#
# Prints the summary; the whole pytest report goes to OUT_FILE (default
# bin/pykmip-suite.txt). Informational, not part of `make test`. Needs
# Debian's python3-pykmip and python3-pytest (/usr/bin/python3).
set -euo pipefail
each=
if [ "${1:-}" = "-each" ]; then each=1; shift; fi
bin=${1:?usage: pykmip-suite.sh [-each] KMIPD_BIN [SUITE_DIR] [OUT_FILE]}
suite=${2:-../shared/pykmip-integration}
out=${3:-bin/pykmip-suite.txt}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
here=$(cd "$(dirname "$0")" && pwd)
suite=$(cd "$suite" && pwd)
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
[ -d "$suite/kmip/tests/integration" ] || { echo "no PyKMIP integration suite at $suite" >&2; exit 2; }

work=$(mktemp -d)
pid=
stop() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; fi; }
trap 'stop; rm -rf "$work"' EXIT

# start DIR: a fresh kmipd dev in DIR and a PyKMIP client config for it in
# DIR/home/.pykmip/pykmip.conf.
start() {
  local dir=$1 port
  port=$(/usr/bin/python3 "$here/freeports.py" 1)
  "$bin" dev -dir "$dir/dev" -addr "127.0.0.1:$port" -telemetry-addr off -log-level warn >"$dir/kmipd.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    kill -0 "$pid" 2>/dev/null || { cat "$dir/kmipd.log"; echo "kmipd dev exited" >&2; exit 1; }
    sleep 0.2
  done
  local pki="$dir/dev/pki"
  mkdir -p "$dir/home/.pykmip"
  cat >"$dir/home/.pykmip/pykmip.conf" <<EOF
[client]
host=127.0.0.1
port=$port
certfile=$pki/client.crt
keyfile=$pki/client.key
ca_certs=$pki/ca.crt
cert_reqs=CERT_REQUIRED
ssl_version=PROTOCOL_TLSv1_2
do_handshake_on_connect=True
suppress_ragged_eofs=True
EOF
}

# pyt HOME PATH ARGS...: pytest in the (read-only, shared) suite directory:
# no bytecode, no cache. PATH comes first: --config is the suite's own
# option, known once pytest has found its conftest.py.
pyt() {
  local home=$1 path=$2
  shift 2
  (cd "$suite" && HOME="$home" PYTHONDONTWRITEBYTECODE=1 \
    /usr/bin/python3 -m pytest "$path" -p no:cacheprovider --config client -m "not ignore" "$@")
}

if [ -z "$each" ]; then
  start "$work"
  status=0
  pyt "$work/home" kmip/tests/integration -rA -q >"$out" 2>&1 || status=$?
  stop
  tail -n 1 "$out"
  echo "full report: $out"
  # pytest exits 1 when tests failed: a result, not an error here.
  [ "$status" -le 1 ] || { tail -n 30 "$out"; exit "$status"; }
  exit 0
fi

mapfile -t tests < <(pyt "$work" kmip/tests/integration --collect-only -q 2>/dev/null | grep '::')
[ ${#tests[@]} -gt 0 ] || { echo "no tests collected" >&2; exit 2; }
: >"$out"
passed=0
for t in "${tests[@]}"; do
  dir="$work/$passed-$RANDOM"
  mkdir -p "$dir"
  start "$dir"
  if pyt "$dir/home" "$t" -q >"$dir/report" 2>&1; then
    echo "PASS $t" | tee -a "$out"
    passed=$((passed + 1))
  else
    echo "FAIL $t" | tee -a "$out"
    sed 's/^/    /' "$dir/report" >>"$out"
  fi
  stop
  rm -rf "$dir"
done
echo "$passed of ${#tests[@]} pass alone; reports of the failures: $out"
