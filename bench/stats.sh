#!/bin/bash
# `stats --no-stream` over N running containers: the barge CLI and the docker CLI against
# barge's daemon, and the docker CLI against dockerd (Debian's, in its own network + mount
# namespaces on its own roots). docker CLI 28's --no-stream waits for its 500 ms screen
# ticker before it prints, so "docker CLI" rows cannot go below ~0.5 s whatever the daemon
# does; the barge CLI prints as soon as the answers are in. Usage:
#   bench/stats.sh [barge binary] [N] [runs]
# Needs root, the docker CLI, dockerd and busybox-static. Everything it starts it stops by PID.
set -eu
BARGE=$(readlink -f "${1:-target/release/barge}")
N=${2:-100}
RUNS=${3:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d /tmp/bgstats.XXXXXX)
BPID= ; DPID=
cleanup() {
    for h in "unix://$T/b.sock" "unix://$T/d.sock"; do
        [ -S "${h#unix://}" ] && DOCKER_HOST=$h docker ps -aq | xargs -r env DOCKER_HOST=$h docker rm -f >/dev/null 2>&1 || true
    done
    [ -n "$BPID" ] && { kill "$BPID" 2>/dev/null || true; wait "$BPID" 2>/dev/null || true; }
    [ -n "$DPID" ] && { kill "$DPID" 2>/dev/null || true; wait "$DPID" 2>/dev/null || true; }
    umount -R "$T/docker" 2>/dev/null || true
    rm -rf "$T" 2>/dev/null || true
}
trap cleanup EXIT
export DOCKER_CONFIG=$T/dc
sh "$here/tests/fixtures/busybox-rootfs.sh" "$T/rootfs" >/dev/null
tar -C "$T/rootfs" -cf "$T/busybox.tar" .

"$BARGE" daemon --bridge none -H "unix://$T/b.sock" --data-root "$T/bdata" --exec-root "$T/bexec" --config-file "$T/none.json" 2>"$T/barge.log" &
BPID=$!
mkdir -p "$T/docker"
unshare -n -m --propagation private sh -c "ip link set lo up; exec dockerd --host unix://$T/d.sock --data-root $T/docker/data --exec-root $T/docker/exec --pidfile $T/docker/pid --bridge none --iptables=false --ip6tables=false --storage-driver vfs" >"$T/dockerd.log" 2>&1 &
DPID=$!
for s in b d; do i=0; while [ ! -S "$T/$s.sock" ]; do sleep 0.05; i=$((i+1)); [ $i -lt 600 ] || { echo "$s daemon did not start"; exit 1; }; done; done
sleep 1

measure() { # name host
    export DOCKER_HOST=$2
    docker import "$T/busybox.tar" busybox:latest >/dev/null
    i=0; while [ $i -lt "$N" ]; do docker run -d --network none busybox sleep 100000 >/dev/null; i=$((i+1)); done
    docker stats --no-stream >/dev/null
    best=999999; tot=0
    for r in $(seq "$RUNS"); do
        s=$(date +%s%N); n=$(docker stats --no-stream --format '{{.Name}}' | wc -l); e=$(date +%s%N)
        ms=$(( (e-s)/1000000 )); tot=$((tot+ms)); [ $ms -lt $best ] && best=$ms
        [ "$n" -eq "$N" ] || echo "$1: only $n rows"
    done
    echo "$1: docker stats --no-stream of $N: best $best ms, mean $((tot/RUNS)) ms"
    if [ "$1" = barge ]; then
        best=999999; tot=0
        for r in $(seq "$RUNS"); do
            s=$(date +%s%N); n=$("$BARGE" -H "$2" stats --no-stream --format '{{.Name}}' | wc -l); e=$(date +%s%N)
            ms=$(( (e-s)/1000000 )); tot=$((tot+ms)); [ $ms -lt $best ] && best=$ms
            [ "$n" -eq "$N" ] || echo "barge CLI: only $n rows"
        done
        echo "barge: barge stats --no-stream of $N: best $best ms, mean $((tot/RUNS)) ms"
    fi
    docker ps -aq | xargs -r docker rm -f >/dev/null
}
measure barge "unix://$T/b.sock"
measure dockerd "unix://$T/d.sock"
