#!/usr/bin/env bash
# Tests scripts/conformance.sh's verdict against its expected-failures list,
# on a two-case corpus (a passing case and a corrupted copy that fails) and
# real `kmipd dev` servers: the listed failure alone is green; an unlisted
# failure, a listed case that passes, and a list naming a missing set are
# red. (conformance/expect_test.go tests the same rules in Go.)
#
#   scripts/conformance_test.sh KMIPD_BIN
set -euo pipefail
bin=${1:?usage: conformance_test.sh KMIPD_BIN}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/cases/va"
good=KMIPD-M-1-create-get-destroy
cp "$root/conformance/testdata/$good.xml" "$work/cases/va/"
sed 's/value="PreActive"/value="Active"/' "$root/conformance/testdata/$good.xml" >"$work/cases/va/corrupted.xml"
cmp -s "$work/cases/va/$good.xml" "$work/cases/va/corrupted.xml" && { echo "conformance_test: the corruption changed nothing"; exit 1; }

list() { printf '%s\n' "$@" >"$work/$name.list"; }
# scenario NAME WANT_STATUS WANT_OUTPUT LIST_LINES...: runs in the background.
pids=() names=()
scenario() {
  name=$1 want=$2 grep=$3
  shift 3
  list "$@"
  (
    rc=0
    EXPECTED_FAILURES="$work/$name.list" "$root/scripts/conformance.sh" "$bin" "$work/cases" "$work/$name.out" >"$work/$name.log" 2>&1 || rc=$?
    if [ "$rc" != "$want" ] || ! grep -q -- "$grep" "$work/$name.log"; then
      echo "FAIL $name: exit $rc (want $want), output must hold \"$grep\":"
      sed 's/^/    /' "$work/$name.log"
      exit 1
    fi
    echo "ok   $name"
  ) &
  pids+=($!) names+=("$name")
}

scenario listed-failure 0 "va .* ok" "va corrupted the corrupted copy"
scenario unlisted-failure 1 "UNEXPECTED FAILURE va corrupted" "# nothing listed"
scenario listed-pass 1 "LISTED BUT PASSED va $good" "va corrupted the corrupted copy" "va $good listed, but passes"
scenario listed-not-run 1 "LISTED BUT NOT RUN va gone" "va corrupted the corrupted copy" "va gone no such file"
scenario missing-set 1 "lists cases of set vb, which is not under" "va corrupted the corrupted copy" "vb other a set that is not there"

status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
