#!/bin/bash
# CLI figures against barge's own daemon (release build), with hyperfine:
#   barge run --rm --network none busybox true   (barge CLI, then the docker CLI, same socket)
#   barge/docker version, and barge/docker ps with N (default 50) containers.
# Usage: bench/cli.sh [barge binary] [N] [runs]. Needs root, hyperfine and the docker CLI.
# The daemon runs in a private mount and network namespace on temp paths; it is stopped by its
# PID and everything it made is removed at exit.
set -eu
BARGE=$(readlink -f "${1:-target/release/barge}")
N=${2:-50}
RUNS=${3:-30}
DOCKER=/usr/local/bin/docker
[ -x "$DOCKER" ] || DOCKER=docker
here=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d /tmp/barge-clibench.XXXXXX)
export BARGE_HOST=unix://$T/s.sock DOCKER_HOST=unix://$T/s.sock DOCKER_CONFIG=$T/dc HOME=$T
unshare --mount --net --propagation private "$BARGE" daemon -H "$BARGE_HOST" \
    --data-root "$T/data" --exec-root "$T/exec" --pidfile "$T/pid" \
    --config-file "$T/none.json" >"$T/daemon.log" 2>&1 &
DPID=$!
cleanup() {
    "$BARGE" ps -aq 2>/dev/null | xargs -r "$BARGE" rm -f >/dev/null 2>&1 || true
    kill "$DPID" 2>/dev/null || true
    wait "$DPID" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
i=0; while [ ! -S "$T/s.sock" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
sh "$here/tests/fixtures/busybox-rootfs.sh" "$T/rootfs" >/dev/null
tar -C "$T/rootfs" -cf "$T/bb.tar" .
"$BARGE" import "$T/bb.tar" busybox:latest >/dev/null
hf() { hyperfine -N --warmup 3 --runs "$RUNS" --style basic "$@"; }
hf -n "barge run --rm --network none busybox true" "$BARGE run --rm --network none busybox true" \
   -n "docker run --rm --network none busybox true (barge daemon)" "$DOCKER run --rm --network none busybox true"
hf -n "barge version" "$BARGE version" -n "docker version (barge daemon)" "$DOCKER version"
hf -n "barge ps (0 containers)" "$BARGE ps" -n "docker ps (0 containers)" "$DOCKER ps"
i=0; while [ $i -lt "$N" ]; do "$BARGE" run -d --network none busybox sleep 100000 >/dev/null; i=$((i+1)); done
hf -n "barge ps ($N containers)" "$BARGE ps" -n "docker ps ($N containers, barge daemon)" "$DOCKER ps"
hf -n "barge ps -a --format {{.Names}} ($N)" "$BARGE ps -a --format {{.Names}}" \
   -n "docker ps -a --format {{.Names}} ($N)" "$DOCKER ps -a --format {{.Names}}"
