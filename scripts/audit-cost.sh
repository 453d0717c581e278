#!/usr/bin/env bash
# What the audit log costs in throughput (issue 18): kmipd with and without it,
# on this machine, in the same run.
#
#   scripts/audit-cost.sh [BIN]     # BIN defaults to bin/kmipd (`make bench-audit` passes it)
#
# Starts two kmipd dev servers side by side (separate folders, 127.0.0.1 on
# free ports), one with `-audit on` (DIR/audit.log) and one with `-audit off`,
# and for each round runs the same `kmipd bench` mixes against both, one
# server at a time, alternating which goes first each round so that neither
# always meets the machine in the same state. Prints, per mix, the median
# ops/s and p99 of each side, the ratio of the medians (on/off), and every
# round's own ratio, so the noise of a shared machine is visible next to the
# figure; and the server's CPU time per request (its user+system time over the
# whole run, warm-up included, over the requests that run made at its
# measured rate), which other work on the machine disturbs less than ops/s.
# Environment:
#   AUDIT_ROUNDS    rounds (default 5)
#   AUDIT_DURATION  measured phase per run (default 10s)
#   AUDIT_WARMUP    unmeasured warm-up before it (default 2s)
#   AUDIT_MIXES     ";"-separated "mix mode workers" (default
#                   "get persistent 32;create persistent 16")
#   AUDIT_KEEP      if set, keep the temporary folder (logs, raw results)
#   BENCH_TLS_MAX, BENCH_LOAD_PROCS: as in scripts/bench.sh
# Both servers listen on 127.0.0.1 only; every run is bounded in time, and
# the servers are stopped on exit, however the script ends.
set -euo pipefail
set -m # every background job gets its own process group, so it can be stopped whole

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${1:-bin/kmipd}"
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
ROUNDS="${AUDIT_ROUNDS:-5}"
DURATION="${AUDIT_DURATION:-10s}"
WARMUP="${AUDIT_WARMUP:-2s}"
TLS_MAX="${BENCH_TLS_MAX:-1.2}"
NCPU="$(nproc)"
LOAD_PROCS="${BENCH_LOAD_PROCS:-$(( NCPU / 2 > 0 ? NCPU / 2 : 1 ))}"
IFS=';' read -r -a MIXES <<<"${AUDIT_MIXES:-get persistent 32;create persistent 16}"
PYTHON=/usr/bin/python3
ME=audit-cost.sh
. "$ROOT/scripts/servers.sh"

[ -x "$BIN" ] || { echo "audit-cost.sh: $BIN not found; run make build" >&2; exit 1; }
TMP="$(mktemp -d "${TMPDIR:-/tmp}/kmipd-audit-cost.XXXXXX")"
declare -A PID=() PORT=() TPORT=()

cleanup() {
  local side
  for side in "${!PID[@]}"; do stop_group "${PID[$side]}"; done
  if [ -n "${AUDIT_KEEP:-}" ]; then echo "audit-cost.sh: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r PORT[on] TPORT[on] PORT[off] TPORT[off] < <(free_ports 4)
for side in on off; do
  "$BIN" dev -dir "$TMP/$side" -addr "127.0.0.1:${PORT[$side]}" -telemetry-addr "127.0.0.1:${TPORT[$side]}" \
    -audit "$side" -log-level warn >"$TMP/$side.log" 2>&1 &
  PID[$side]=$!
done
for side in on off; do
  wait_port "${PORT[$side]}" "${PID[$side]}" "$TMP/$side.log"
  echo "audit-cost.sh: kmipd -audit $side on 127.0.0.1:${PORT[$side]}, pid ${PID[$side]}" >&2
done

mkdir -p "$TMP/results"
: >"$TMP/loadavg"
cpu_ticks() { # pid: the process's user+system time in clock ticks (every thread)
  local stat f
  stat="$(cat "/proc/$1/stat")"
  stat="${stat##*) }" # fields from the 3rd on: the command name may hold spaces
  read -r -a f <<<"$stat"
  echo $(( f[11] + f[12] )) # utime and stime, fields 14 and 15
}
run() { # round side mix mode workers [extra flags...]
  local round="$1" side="$2" mix="$3" mode="$4" workers="$5" c0
  shift 5
  c0="$(cpu_ticks "${PID[$side]}")"
  "$BIN" bench -addr "127.0.0.1:${PORT[$side]}" -pki "$TMP/$side/pki" \
    -cert "$TMP/$side/pki/client.crt" -key "$TMP/$side/pki/client.key" \
    -tls-max "$TLS_MAX" -procs "$LOAD_PROCS" -mix "$mix" -mode "$mode" -workers "$workers" \
    -warmup "$WARMUP" -duration "$DURATION" -metrics "http://127.0.0.1:${TPORT[$side]}/metrics" \
    -label "audit-$side" -quiet -json "$@" >"$TMP/results/$round-$mix-$side.json"
  echo $(( $(cpu_ticks "${PID[$side]}") - c0 )) >"$TMP/results/$round-$mix-$side.cpu"
  cut -d' ' -f1 /proc/loadavg >>"$TMP/loadavg"
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order=(on off); else order=(off on); fi
  echo "audit-cost.sh: round $round of $ROUNDS (${order[*]})" >&2
  for m in "${MIXES[@]}"; do
    read -r mix mode workers extra <<<"$m"
    for side in "${order[@]}"; do
      # shellcheck disable=SC2086 # extra is a list of flags
      run "$round" "$side" "$mix" "$mode" "$workers" $extra
    done
  done
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
AUDIT_BYTES="$(stat -c %s "$TMP/on/audit.log" 2>/dev/null || echo 0)"

echo "# Audit log on vs off: $("$BIN" version), $NCPU cores, $(uname -sr)"
echo "# AUDIT_ROUNDS=$ROUNDS AUDIT_DURATION=$DURATION AUDIT_WARMUP=$WARMUP BENCH_TLS_MAX=$TLS_MAX BENCH_LOAD_PROCS=$LOAD_PROCS"
echo "# load average (1/5/15 min) before: $LOAD_BEFORE; after: $LOAD_AFTER; 1-min after each run: $(paste -sd' ' "$TMP/loadavg")"
echo "# audit.log at the end: $AUDIT_BYTES bytes"
"$PYTHON" - "$TMP/results" "$ROUNDS" "$(getconf CLK_TCK)" "${MIXES[@]}" <<'EOF'
import json, os, statistics, sys

folder, rounds, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mixes = [m.split()[0] for m in sys.argv[4:]]
def load(r, mix, side):
    with open(os.path.join(folder, f"{r}-{mix}-{side}.json")) as f:
        res = json.load(f)
    with open(os.path.join(folder, f"{r}-{mix}-{side}.cpu")) as f:
        ticks = int(f.read())
    # CPU over the whole run; requests over the whole run at the measured rate.
    res["cpu_us_per_op"] = ticks / hz * 1e6 / max(1.0, res["ops_per_sec"] * (res["seconds"] + res["warmup_seconds"]))
    return res
print(f"{'mix':<8} {'ops/s on':>10} {'ops/s off':>10} {'on/off':>7}   {'p99 on':>8} {'p99 off':>8} {'on/off':>7}   errors  per-round ops/s on/off")
for mix in mixes:
    runs = {s: [load(r, mix, s) for r in range(1, rounds + 1)] for s in ("on", "off")}
    ops = {s: [x["ops_per_sec"] for x in runs[s]] for s in runs}
    p99 = {s: [x["latency"]["p99_ms"] for x in runs[s]] for s in runs}
    errs = sum(x["errors"] for s in runs for x in runs[s])
    mo, mf = statistics.median(ops["on"]), statistics.median(ops["off"])
    po, pf = statistics.median(p99["on"]), statistics.median(p99["off"])
    ratios = [a / b for a, b in zip(ops["on"], ops["off"])]
    per = " ".join(f"{v:.3f}" for v in ratios) + f" (median {statistics.median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f})"
    print(f"{mix:<8} {mo:>10.0f} {mf:>10.0f} {mo / mf:>7.3f}   {po:>6.2f}ms {pf:>6.2f}ms {po / pf if pf else 0:>7.3f}   {errs:>6}  {per}")
    print(f"{'':<8} on  ops/s by round: {' '.join(f'{v:.0f}' for v in ops['on'])}")
    print(f"{'':<8} off ops/s by round: {' '.join(f'{v:.0f}' for v in ops['off'])}")
    cpu = {s: [x["cpu_us_per_op"] for x in runs[s]] for s in runs}
    co, cf = statistics.median(cpu["on"]), statistics.median(cpu["off"])
    cr = [a / b for a, b in zip(cpu["on"], cpu["off"])]
    print(f"{'':<8} server CPU per request: on {co:.1f}us, off {cf:.1f}us, on/off {co / cf:.3f}; "
          f"per round {' '.join(f'{v:.3f}' for v in cr)} (median {statistics.median(cr):.3f})")
EOF
