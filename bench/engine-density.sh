#!/bin/sh
# barge daemon figures: `docker run --rm busybox true` latency through barge's socket, and
# the memory of N idle containers (monitor PSS + daemon PSS growth, from smaps_rollup) with
# the time of `docker ps` listing them. Usage: bench/engine-density.sh [barge binary] [N] [runs]
# Needs root, the docker CLI and busybox-static. Everything it starts it stops by PID.
set -eu
BARGE=${1:-target/release/barge}
N=${2:-200}
RUNS=${3:-20}
BARGE=$(readlink -f "$BARGE")
here=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d /tmp/bgbench.XXXXXX)
export DOCKER_HOST=unix://$T/s.sock DOCKER_CONFIG=$T/dc
"$BARGE" daemon -H "$DOCKER_HOST" --data-root "$T/data" --exec-root "$T/exec" --config-file "$T/none.json" 2>"$T/daemon.log" &
DPID=$!
cleanup() {
    docker ps -aq | xargs -r docker rm -f >/dev/null 2>&1 || true
    kill "$DPID" 2>/dev/null || true
    wait "$DPID" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
while [ ! -S "$T/s.sock" ]; do sleep 0.05; done
sh "$here/tests/fixtures/busybox-rootfs.sh" "$T/rootfs" >/dev/null
tar -C "$T/rootfs" -cf - . | docker import - busybox:latest >/dev/null
pss() { awk '/^Pss:/{print $2}' "/proc/$1/smaps_rollup"; }
docker run --rm busybox true
start=$(date +%s%N)
i=0; while [ $i -lt "$RUNS" ]; do docker run --rm busybox true; i=$((i+1)); done
end=$(date +%s%N)
echo "docker run --rm busybox true via barge: $(( (end-start)/RUNS/1000000 )) ms/run ($RUNS runs)"
start=$(date +%s%N)
i=0; while [ $i -lt "$RUNS" ]; do docker version >/dev/null; i=$((i+1)); done
end=$(date +%s%N)
echo "docker version (CLI + one round trip, the floor): $(( (end-start)/RUNS/1000000 )) ms/run"
d0=$(pss $DPID)
start=$(date +%s%N)
i=0; while [ $i -lt "$N" ]; do docker run -d busybox sleep 100000 >/dev/null; i=$((i+1)); done
end=$(date +%s%N)
echo "started $N idle containers: $(( (end-start)/N/1000000 )) ms each"
d1=$(pss $DPID)
tot=0; n=0
for p in $(pgrep -f "barge monitor $T/exec"); do tot=$((tot + $(pss "$p"))); n=$((n+1)); done
echo "monitors: $n, PSS total ${tot} kB, $((tot / n)) kB each; daemon PSS growth $((d1 - d0)) kB ($(( (d1 - d0) / N )) kB each)"
echo "per container: $(( (tot + d1 - d0) / N )) kB"
start=$(date +%s%N); docker ps -q | wc -l >/dev/null; end=$(date +%s%N)
echo "docker ps of $N: $(( (end-start)/1000000 )) ms"
