#!/bin/sh
# Runs moby's own API integration tests (the Go packages under integration/ of a moby
# checkout, tag v23.0.18) against a barge daemon of its own: fresh data/exec roots and socket
# under $WORK, the daemon and the test binaries inside a network namespace made here, so all
# traffic stays inside it. The suite's "frozen" images are one busybox rootfs imported and
# tagged under each name the suite protects. Stops the daemon by pid and deletes the namespace
# on exit (also on failure). See docs/conformance-moby-integration.md.
#
#   scripts/moby-integration.sh MOBY_CHECKOUT [WORK] [PACKAGES...]
#
# MOBY_CHECKOUT is a moby source tree (e.g. `git archive v23.0.18 | tar -x`); it is built in
# GOPATH mode (GO111MODULE=off, its vendor/ directory), so it is linked into
# $WORK/gopath/src/github.com/docker/docker. PACKAGES defaults to
# "container image network volume system". Results: $WORK/results/PKG.log (go test -v output)
# and a pass/fail/skip line per package. Extra `go test` flags (e.g. -test.run) in
# $MOBY_TEST_FLAGS. Needs root, Go >= 1.19 (Debian's golang-go), busybox-static.
set -eu
src=$(cd "${1:?usage: moby-integration.sh MOBY_CHECKOUT [WORK] [PACKAGES...]}" && pwd)
work=${2:-/tmp/barge-moby}
[ $# -ge 2 ] && shift 2 || shift $#
pkgs=${*:-container image network volume system}
bin=${BARGE_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/debug/barge}
fixtures=$(cd "$(dirname "$0")/../tests/fixtures" && pwd)
ns=barge-moby-$$
root=$work/d
sock=$root/d.sock
mkdir -p "$work/results" "$work/bin" "$work/gopath/src/github.com/docker"

# 1. Test binaries, one per package, built against the checkout's vendor/ tree.
ln -sfn "$src" "$work/gopath/src/github.com/docker/docker"
for p in $pkgs; do
    if [ ! -x "$work/bin/$p.test" ] || [ -n "${MOBY_REBUILD:-}" ]; then
        echo "building integration/$p"
        (cd "$work/gopath/src/github.com/docker/docker" &&
            GOPATH=$work/gopath GO111MODULE=off GOFLAGS= GOCACHE=$work/gocache \
                go test -c -tags 'exclude_graphdriver_devicemapper exclude_graphdriver_btrfs' \
                -o "$work/bin/$p.test" "./integration/$p")
    fi
done

# 2. A daemon in a namespace of its own.
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
unshare --mount --propagation private nsenter --net=/run/netns/"$ns" \
    "$bin" daemon -H "unix://$sock" --data-root "$root/data" --exec-root "$root/exec" \
    --pidfile "$root/daemon.pid" </dev/null >/dev/null 2>"$root/daemon.log" &
pid=$!
i=0
until [ -S "$sock" ]; do
    i=$((i + 1)); [ $i -gt 200 ] && { echo "daemon did not come up" >&2; exit 1; }
    sleep 0.1
done

# 3. The frozen images (testutil/environment/protect.go): present images are not loaded
# from /docker-frozen-images nor pulled, so one busybox image under every name serves.
img=$work/rootfs
rm -rf "$img"
sh "$fixtures/busybox-rootfs.sh" "$img" >/dev/null
tar -C "$img" -cf - . | docker import -c 'CMD ["sh"]' - busybox:latest >/dev/null
for t in busybox:glibc hello-world:frozen debian:bookworm-slim; do
    docker tag busybox:latest "$t"
done

# A few tests start a dockerd of their own without checking for a remote daemon
# (system's TestDiskUsage): a stand-in that refuses makes them fail at once, and no real
# dockerd is ever started here.
mkdir -p "$work/no-dockerd"
printf '#!/bin/sh\necho "dockerd is not run by moby-integration.sh" >&2\nexit 1\n' >"$work/no-dockerd/dockerd"
chmod +x "$work/no-dockerd/dockerd"

# 4. The packages. DOCKER_REMOTE_DAEMON makes the suite skip what needs its own dockerd
# (testutil/daemon) or the daemon's files; each binary runs in its package directory
# (testdata) and in the namespace (published ports are dialled on its loopback).
for p in $pkgs; do
    (cd "$src/integration/$p" &&
        PATH=$work/no-dockerd:$PATH DOCKER_REMOTE_DAEMON=1 timeout 1800 ip netns exec "$ns" "$work/bin/$p.test" \
            -test.v -test.timeout 25m ${MOBY_TEST_FLAGS:-} >"$work/results/$p.log" 2>&1) || true
    pass=$(grep -c -- '^ *--- PASS' "$work/results/$p.log" || true)
    fail=$(grep -c -- '^ *--- FAIL' "$work/results/$p.log" || true)
    skip=$(grep -c -- '^ *--- SKIP' "$work/results/$p.log" || true)
    echo "$p: pass $pass fail $fail skip $skip (subtests included)"
done
