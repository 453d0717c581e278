#!/usr/bin/env bash
# kmipd and PyKMIP's server side by side (issue 6), on this machine.
#
#   scripts/bench.sh [BIN]          # BIN defaults to bin/kmipd (`make bench` passes it)
#
# Starts a kmipd dev server (SoftHSM token, Badger store, dev PKI) and PyKMIP
# 0.10's server using the same PKI, runs the same `kmipd bench` scenarios
# against both, one server at a time, and writes bench/results.md and
# bench/results.json. Environment:
#   BENCH_DURATION  measured phase per run (default 10s)
#   BENCH_WARMUP    unmeasured warm-up before it, running the same mix, so that
#                   connections, the server's heap and its caches are in their
#                   steady state when measuring starts (default 2s; passed to
#                   both servers' runs as -warmup)
#   BENCH_ROUNDS    rounds (default 3): each round runs every scenario
#                   against kmipd and then PyKMIP, back to back. A ratio is
#                   only taken within a round (both servers saw the machine in
#                   the same state); the report shows the round with the median
#                   ratio and checks the targets against medians, so one
#                   disturbed run on a shared machine decides nothing
#   BENCH_AUDIT     on (default) or off: kmipd's audit log (kmipd dev -audit)
#   BENCH_OUT       output folder (default bench)
#   BENCH_KEEP      if set, keep the temporary folder (logs, raw results)
#   BENCH_TLS_MAX   highest TLS version the client offers (default 1.2: PyKMIP's
#                   only version and what Barbican's kmip_plugin is configured for,
#                   so both servers run the same protocol; 1.3 for kmipd's best)
#   BENCH_OWNERS    if > 0, mint that many client identities and spread the
#                   workers over them (default: the dev client certificate alone)
#   BENCH_LOAD_PROCS  CPUs the load generator may run on at once (its
#                   GOMAXPROCS; default half the machine's, at least 1). It
#                   shares the machine with the server it measures: with
#                   every CPU, its threads preempt the server's and their
#                   wake-ups add to the latency it records (on 2 CPUs, Get p99
#                   at 32 workers fell about 10% with 1, at the same ops/s).
#                   0 lets it use every CPU
# Both servers listen on 127.0.0.1 only; each run is bounded in time.
set -euo pipefail
set -m # every background job gets its own process group, so it can be stopped whole

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${1:-bin/kmipd}"
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
DURATION="${BENCH_DURATION:-10s}"
WARMUP="${BENCH_WARMUP:-2s}"
ROUNDS="${BENCH_ROUNDS:-3}"
OUT="${BENCH_OUT:-$ROOT/bench}"
TLS_MAX="${BENCH_TLS_MAX:-1.2}"
OWNERS="${BENCH_OWNERS:-0}"
NCPU="$(nproc)"
LOAD_PROCS="${BENCH_LOAD_PROCS:-$(( NCPU / 2 > 0 ? NCPU / 2 : 1 ))}"
# Always the system Python: the python3 on PATH may be a pyenv without the
# Debian python3-pykmip modules.
PYTHON=/usr/bin/python3
ME=bench.sh
. "$ROOT/scripts/servers.sh"
PYKMIP_SERVER=/usr/bin/pykmip-server

# Scenarios: mix mode workers [extra bench flags, for both servers]. Encrypt
# is AES-GCM, whose tag field exists only from KMIP 1.4, so it runs at 1.4.
SCENARIOS=(
  "get persistent 32"
  "create-get-destroy reconnect 16"
  "create persistent 16"
  "register-get persistent 16"
  "encrypt persistent 32 -kmip-version 1.4"
)

[ -x "$BIN" ] || { echo "bench.sh: $BIN not found; run make build" >&2; exit 1; }
TMP="$(mktemp -d "${TMPDIR:-/tmp}/kmipd-bench.XXXXXX")"
KMIPD_PID="" PYKMIP_PID=""

cleanup() {
  stop_group "$PYKMIP_PID"
  stop_group "$KMIPD_PID"
  if [ -n "${BENCH_KEEP:-}" ]; then echo "bench.sh: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# kmipd: dev mode makes the token, the master keys and the PKI under TMP.
read -r KPORT TPORT < <(free_ports 2)
"$BIN" dev -dir "$TMP/kmipd" -addr "127.0.0.1:$KPORT" -telemetry-addr "127.0.0.1:$TPORT" -audit "${BENCH_AUDIT:-on}" \
  -log-level warn >"$TMP/kmipd.log" 2>&1 &
KMIPD_PID=$!
wait_port "$KPORT" "$KMIPD_PID" "$TMP/kmipd.log"
PKI="$TMP/kmipd/pki"
echo "bench.sh: kmipd on 127.0.0.1:$KPORT (telemetry $TPORT), pid $KMIPD_PID" >&2

# PyKMIP, with kmipd's server certificate and CA, so the same client
# identities (minted with -owners from PKI/ca.key) are valid on both.
PPORT=""
if [ -x "$PYKMIP_SERVER" ] && "$PYTHON" -c 'import kmip' 2>/dev/null; then
  PPORT="$(free_ports 1)" # kmipd holds its two already
  mkdir -p "$TMP/pykmip/policies"
  cat >"$TMP/pykmip/server.conf" <<EOF
[server]
hostname=127.0.0.1
port=$PPORT
certificate_path=$PKI/server.crt
key_path=$PKI/server.key
ca_path=$PKI/ca.crt
auth_suite=TLS1.2
enable_tls_client_auth=True
policy_path=$TMP/pykmip/policies
database_path=$TMP/pykmip/pykmip.db
logging_level=WARNING
EOF
  (cd "$TMP/pykmip" && exec "$PYTHON" "$PYKMIP_SERVER" -f "$TMP/pykmip/server.conf" -l "$TMP/pykmip/server.log") \
    >"$TMP/pykmip/stdout.log" 2>&1 &
  PYKMIP_PID=$!
  wait_port "$PPORT" "$PYKMIP_PID" "$TMP/pykmip/stdout.log"
  echo "bench.sh: PyKMIP on 127.0.0.1:$PPORT, pid $PYKMIP_PID" >&2
else
  echo "bench.sh: PyKMIP's server not installed (python3-pykmip); kmipd only" >&2
fi

mkdir -p "$TMP/results" "$OUT"
# Other work on the machine skews absolute numbers: record how busy it was.
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
n=0
run() { # label addr mix mode workers [extra flags...]
  local label="$1" addr="$2" mix="$3" mode="$4" workers="$5"
  shift 5
  n=$((n + 1))
  local out who=(-cert "$PKI/client.crt" -key "$PKI/client.key")
  # Numbered in run order: the report pairs rounds by that order.
  out="$TMP/results/$(printf '%03d' "$n")-$label-$mix-$mode.json"
  if [ "$OWNERS" -gt 0 ]; then who=(-owners "$OWNERS"); fi
  "$BIN" bench -addr "$addr" -pki "$PKI" "${who[@]}" -tls-max "$TLS_MAX" -procs "$LOAD_PROCS" \
    -mix "$mix" -mode "$mode" -workers "$workers" -warmup "$WARMUP" -duration "$DURATION" \
    -label "$label" -json "$@" >"$out"
}

for round in $(seq "$ROUNDS"); do
  echo "bench.sh: round $round of $ROUNDS" >&2
  for s in "${SCENARIOS[@]}"; do
    read -r mix mode workers extra <<<"$s"
    # shellcheck disable=SC2086 # extra is a list of flags
    run kmipd "127.0.0.1:$KPORT" "$mix" "$mode" "$workers" -metrics "http://127.0.0.1:$TPORT/metrics" $extra
    if [ -n "$PPORT" ]; then
      # shellcheck disable=SC2086
      run pykmip "127.0.0.1:$PPORT" "$mix" "$mode" "$workers" $extra
    fi
  done
done

LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
PYKMIP_VERSION="$(dpkg-query -W -f '${Version}' python3-pykmip 2>/dev/null || echo unknown)"
"$BIN" bench report -md "$OUT/results.md" -json "$OUT/results.json" \
  -note "Command: BENCH_ROUNDS=$ROUNDS BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP BENCH_TLS_MAX=$TLS_MAX BENCH_OWNERS=$OWNERS BENCH_LOAD_PROCS=$LOAD_PROCS scripts/bench.sh (make bench); $("$BIN" version); python3-pykmip $PYKMIP_VERSION; $NCPU cores, $(uname -sr)." \
  -note "Load average (1/5/15 min) before the runs: $LOAD_BEFORE; after: $LOAD_AFTER. Anything above ~2 means other processes competed for the 2 cores." \
  -note "kmipd: dev mode (SoftHSM2 token, max_sessions 4, Badger with synced writes); PyKMIP: pykmip-server with SQLite, auth_suite TLS1.2. Each server is measured alone, one run at a time." \
  "$TMP"/results/*.json
echo "bench.sh: wrote $OUT/results.md and $OUT/results.json" >&2
cat "$OUT/results.md"
