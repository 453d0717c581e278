#!/usr/bin/env bash
# The corpus scoreboard: replays every OASIS KMIP version folder (v1.0, v1.1,
# v1.2, v1.4) against its own fresh `kmipd dev` server, all versions at once
# (the KMIP 1.0-1.2 cases wait out their recorded clock steps, which costs
# time, not CPU), then prints passed/total per version.
#
#   scripts/conformance-all.sh KMIPD_BIN [CASES_ROOT] [OUT_DIR]
#
# OUT_DIR (default bin/conformance-results/) receives, per version: the replayer's
# table (vX.txt) and one line per failing case with its whole first
# difference, then the later steps' differences indented (vX.failures);
# failures.txt is all of them, version-prefixed.
# Informational, not part of `make test`: the exit status is 0 when every run
# completed, whatever the cases' results.
set -euo pipefail
bin=${1:?usage: conformance-all.sh KMIPD_BIN [CASES_ROOT] [OUT_DIR]}
root=${2:-../shared/kmip-testcases}
out=${3:-bin/conformance-results}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

freeport() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run VERSION: a fresh server, the replay, the server stopped.
run() {
  local v=$1 port dir pid
  port=$(freeport)
  dir="$work/$v"
  "$bin" dev -dir "$dir/dev" -addr "127.0.0.1:$port" -telemetry-addr off -log-level warn >"$dir.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    kill -0 $pid 2>/dev/null || { cat "$dir.log"; echo "$v: kmipd dev exited" >&2; return 1; }
    sleep 0.2
  done
  local pki="$dir/dev/pki"
  "$bin" conformance -addr "127.0.0.1:$port" -ca "$pki/ca.crt" -cert "$pki/client.crt" -key "$pki/client.key" \
    -failures "$out/$v.failures" -all-steps "$root/$v" >"$out/$v.txt" 2>"$out/$v.stderr" || true
  kill $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
}

versions=()
for v in v1.0 v1.1 v1.2 v1.4; do
  [ -d "$root/$v" ] && versions+=("$v")
done
[ ${#versions[@]} -gt 0 ] || { echo "no version folders under $root" >&2; exit 1; }

for v in "${versions[@]}"; do
  run "$v" &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
pids=()

: >"$out/failures.txt"
printf '%-6s %7s %7s\n' version passed total
tp=0 tt=0
for v in "${versions[@]}"; do
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out/$v.txt" | tail -1 || true)
  if [ -z "$line" ]; then
    echo "$v: no result (see $out/$v.stderr)" >&2
    status=1
    continue
  fi
  p=${line%% passed*}
  f=${line#*, }; f=${f%% failed}
  printf '%-6s %7d %7d\n' "$v" "$p" $((p + f))
  tp=$((tp + p)) tt=$((tt + p + f))
  sed "s|^|$v\t|" "$out/$v.failures" >>"$out/failures.txt"
done
printf '%-6s %7d %7d\n' all "$tp" "$tt"
echo "failing cases and their first difference: $out/failures.txt"
exit $status
