#!/bin/sh
# Runs docker-py's own integration suite (tests/integration of a docker-py checkout, e.g.
# `git archive 7.1.0 tests`) against a barge daemon of its own: fresh data/exec roots and
# socket under $WORK, inside a network namespace made here; one pytest run per test file,
# 60 s per test; junit files and logs in $WORK/results. Stops the daemon by pid and deletes
# the namespace on exit (also on failure). See docs/conformance-docker-py.md.
#
#   scripts/docker-py-conformance.sh DOCKER_PY_TESTS_PARENT [WORK] [pytest args...]
#
# Needs root, python3 with docker 7.x, pytest, pytest-timeout, paramiko (tests/helpers.py
# imports it) and websocket-client.
set -eu
src=${1:?usage: docker-py-conformance.sh DIR-HOLDING-tests/ [WORK] [pytest args]}
work=${2:-/tmp/barge-pyconf}
[ $# -ge 2 ] && shift 2 || shift $#
bin=${BARGE_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/debug/barge}
ns=barge-pyconf-$$
root=$work/d
sock=$root/d.sock
mkdir -p "$work/results"
rm -rf "$root"
mkdir -p "$root"
export DOCKER_HOST=unix://$sock DOCKER_CONFIG=$root/docker-config
pid=""
cleanup() {
    if [ -n "$pid" ]; then
        # containers' monitors outlive the daemon: remove the containers first
        ids=$(docker ps -aq 2>/dev/null || true)
        [ -n "$ids" ] && docker rm -fv $ids >/dev/null 2>&1 || true
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    ip netns delete "$ns" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
nsenter --net=/run/netns/"$ns" "$bin" daemon -H "unix://$sock" --data-root "$root/data" \
    --exec-root "$root/exec" --config-file "$root/daemon.json" </dev/null >/dev/null 2>"$root/daemon.log" &
pid=$!
i=0
until [ -S "$sock" ]; do
    i=$((i + 1)); [ $i -gt 200 ] && { echo "daemon did not come up" >&2; exit 1; }
    sleep 0.1
done
# The images the suite names (base.py's TEST_IMG alpine:3.10, alpine, busybox, hello-world),
# all one busybox rootfs with what the tests expect of alpine: a postgres user, /var/opt.
img=$work/rootfs
rm -rf "$img"
sh "$(dirname "$0")/../tests/fixtures/busybox-rootfs.sh" "$img" >/dev/null
echo 'postgres:x:70:70::/var/lib/postgresql:/bin/sh' >>"$img/etc/passwd"
echo 'postgres:x:70:' >>"$img/etc/group"
mkdir -p "$img/var/opt" "$img/var/lib/postgresql"
tar -C "$img" -cf - . | docker import -c 'CMD ["/bin/sh"]' - busybox:latest >/dev/null
for t in busybox:buildroot-2014.02 alpine:3.10 alpine:latest hello-world:latest; do
    docker tag busybox:latest "$t"
done
cd "$src"
# docker-py keeps contexts in ./contexts when there is no docker config file.
rm -rf contexts
for f in tests/integration/*_test.py; do
    b=$(basename "$f" .py)
    timeout 1200 python3 -m pytest -p no:cacheprovider --timeout 60 -q -rA \
        --junitxml="$work/results/$b.xml" "$f" "$@" >"$work/results/$b.log" 2>&1 || true
    echo "$b: $(tail -1 "$work/results/$b.log")"
done
