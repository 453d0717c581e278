#!/usr/bin/env bash
# Replays the project's own test cases and every OASIS KMIP version folder,
# each set against its own fresh `kmipd dev` server, all sets at once (the
# KMIP 1.0-1.2 cases wait out their recorded clock steps, about three minutes
# a folder, which costs time, not CPU).
#
#   scripts/conformance.sh [-scoreboard] KMIPD_BIN [CASES_ROOT] [OUT_DIR]
#
# The sets: "testdata" (conformance/testdata) and each folder directly under
# CASES_ROOT (default ../shared/kmip-testcases: v1.0 v1.1 v1.2 v1.4), each
# folder as it is.
#
# By default (`make test`) a set passes when exactly the cases that
# EXPECTED_FAILURES (default conformance/expected-failures.txt) lists for it
# fail: an unlisted failure, a listed case that passes and a listed case that
# is not there each fail the set, and a set the list names must exist. The
# exit status is 0 only when every set passes.
#
# -scoreboard (scripts/conformance-all.sh) reads no list: it prints passed and
# total per set and exits 0 when every run completed, whatever the results.
#
# OUT_DIR (default bin/conformance-results) receives, per set, the replayer's
# table and verdict (SET.txt), each failing case with its whole first
# difference and, indented, the later steps' differences (SET.failures), and
# the server's log (SET.server.log); failures.txt is every set's failures,
# set-prefixed.
set -euo pipefail
scoreboard=false
if [ "${1:-}" = -scoreboard ]; then
  scoreboard=true
  shift
fi
usage="usage: conformance.sh [-scoreboard] KMIPD_BIN [CASES_ROOT] [OUT_DIR]"
bin=${1:?$usage}
cases=${2:-../shared/kmip-testcases}
out=${3:-bin/conformance-results}
root=$(cd "$(dirname "$0")/.." && pwd)
expected=${EXPECTED_FAILURES:-$root/conformance/expected-failures.txt}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
mkdir -p "$out"
out=$(cd "$out" && pwd)
[ -d "$cases" ] || { echo "conformance: no OASIS test cases at $cases" >&2; exit 1; }
cases=$(cd "$cases" && pwd)

# The sets, by name and folder.
names=(testdata)
dirs=("$root/conformance/testdata")
for d in "$cases"/*/; do
  d=${d%/}
  names+=("$(basename "$d")")
  dirs+=("$d")
done

if ! $scoreboard; then
  [ -f "$expected" ] || { echo "conformance: no expected-failures list at $expected" >&2; exit 1; }
  # A set the list names but the corpus lacks would pass by not running.
  missing=0
  for s in $(awk '!/^[[:space:]]*(#|\[|$)/ {print $1}' "$expected" | sort -u); do
    found=false
    for n in "${names[@]}"; do [ "$n" = "$s" ] && found=true; done
    $found || { echo "conformance: $expected lists cases of set $s, which is not under $cases" >&2; missing=1; }
  done
  [ $missing = 0 ] || exit 1
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "$work"/*.server.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

freeport() { /usr/bin/python3 "$root/scripts/freeports.py" 1; }

# run SET DIR: a fresh server, the replay, the server stopped. The replayer's
# exit status goes to SET.rc.
run() {
  local set=$1 dir=$2 port pid rc=0
  port=$(freeport)
  "$bin" dev -dir "$work/$set" -addr "127.0.0.1:$port" -telemetry-addr off -log-level warn >"$out/$set.server.log" 2>&1 &
  pid=$!
  echo $pid >"$work/$set.server.pid"
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    kill -0 $pid 2>/dev/null || { echo "$set: kmipd dev exited (see $out/$set.server.log)" >"$out/$set.txt"; echo 1 >"$work/$set.rc"; return; }
    sleep 0.2
  done
  local pki="$work/$set/pki" check=()
  $scoreboard || check=(-expected-failures "$expected" -set "$set")
  "$bin" conformance -addr "127.0.0.1:$port" -ca "$pki/ca.crt" -cert "$pki/client.crt" -key "$pki/client.key" \
    -failures "$out/$set.failures" -all-steps "${check[@]}" "$dir" >"$out/$set.txt" 2>"$out/$set.stderr" || rc=$?
  echo $rc >"$work/$set.rc"
  kill $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
}

for i in "${!names[@]}"; do
  run "${names[$i]}" "${dirs[$i]}" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done
pids=()

: >"$out/failures.txt"
status=0
tp=0 tt=0
printf '%-9s %7s %7s  %s\n' set passed total verdict
for set in "${names[@]}"; do
  rc=$(cat "$work/$set.rc" 2>/dev/null || echo 1)
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out/$set.txt" | tail -1 || true)
  if [ -z "$line" ]; then
    printf '%-9s %7s %7s  %s\n' "$set" - - "no result: $(head -c 300 "$out/$set.txt" "$out/$set.stderr" 2>/dev/null | tr '\n' ' ')"
    status=1
    continue
  fi
  p=${line%% passed*}
  f=${line#*, }; f=${f%% failed}
  verdict=""
  if ! $scoreboard; then
    verdict=$(grep -E "^$set: " "$out/$set.txt" | tail -1 | sed "s|^$set: ||; s| in $expected||")
    [ "$rc" = 0 ] || status=1
  fi
  printf '%-9s %7d %7d  %s\n' "$set" "$p" $((p + f)) "$verdict"
  if [ "$set" != testdata ]; then tp=$((tp + p)) tt=$((tt + p + f)); fi
  [ -f "$out/$set.failures" ] && sed "s|^|$set\t|" "$out/$set.failures" >>"$out/failures.txt"
done
printf '%-9s %7d %7d\n' "all OASIS" "$tp" "$tt"
if ! $scoreboard; then
  # Each problem, whole: an unexpected failure with its first difference.
  for set in "${names[@]}"; do
    grep -E '^(UNEXPECTED FAILURE|LISTED BUT PASSED|LISTED BUT NOT RUN) ' "$out/$set.txt" 2>/dev/null || true
  done
fi
echo "failing cases and their differences: $out/failures.txt"
exit $status
