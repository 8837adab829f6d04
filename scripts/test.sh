#!/bin/sh
# Runs barge's whole test suite (as root, tests that need root run; otherwise they say why
# they skip). Installs missing system packages first.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
# A one-off build gains nothing from incremental state, which would double the target's size.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
df -h . | tail -1 | awk '{print "test: disk free before the build: " $4}'
cargo build --workspace --all-targets
df -h . | tail -1 | awk '{print "test: disk free after the build: " $4}'
log=$(mktemp /tmp/barge-test-log.XXXXXX)
status=0
{ rc=0; cargo test --workspace --no-fail-fast -- --test-threads=2 || rc=$?; echo $rc >"$log.rc"; } 2>&1 | tee "$log"
if [ "$(cat "$log.rc")" != 0 ]; then
    status=1
    # A CI log shows only its tail: repeat each failure's own output there.
    echo
    echo "==== failures (repeated from above) ===="
    awk '/^---- .* stdout ----$/ {p=1} /^failures:$/ && p {p=0} p' "$log" | grep -v -E '^ +[0-9]+: |^ +at ' | head -c 20000
    grep -E '^test .* FAILED$|^error: ' "$log" | head -50
fi
rm -f "$log" "$log.rc"
exit $status
