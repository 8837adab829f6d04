#!/bin/sh
# Build figures (issue 7's targets), end to end through a daemon's POST /build:
#  1. a 10-instruction Dockerfile rebuilt with everything cached, by `barge build -q` and by
#     `DOCKER_BUILDKIT=0 docker build -q` against barge (target: < 100 ms);
#  2. a context of 10,000 small files plus one COPY of them (--no-cache), through barge and
#     through Debian's dockerd (classic builder) on the same machine: the ratio.
# Usage: bench/build.sh [barge binary] [runs]. Needs root, the docker CLI, /usr/sbin/dockerd.
# dockerd runs in its own network namespace and mount namespace (as the CLI e2e tests run
# it). Everything it starts it stops by PID.
set -eu
BARGE=${1:-target/release/barge}
RUNS=${2:-10}
BARGE=$(readlink -f "$BARGE")
here=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d /tmp/bgbuild.XXXXXX)
NS="barge-bench-build-$$"
BSOCK=unix://$T/barge.sock
DSOCK=unix://$T/dockerd.sock
BPID=""
DPID=""
cleanup() {
    [ -n "$BPID" ] && kill "$BPID" 2>/dev/null && wait "$BPID" 2>/dev/null
    [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
    ip netns delete "$NS" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
export DOCKER_CONFIG=$T/dc DOCKER_BUILDKIT=0

# --bridge none: no bridge or nft change on the host; RUN steps get loopback only, like
# dockerd's --bridge=none below.
"$BARGE" daemon --bridge none -H "$BSOCK" --data-root "$T/bdata" --exec-root "$T/bexec" --config-file "$T/none.json" 2>"$T/barge.log" &
BPID=$!
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
unshare --mount --propagation private nsenter --net="/run/netns/$NS" \
    /usr/sbin/dockerd --bridge=none --iptables=false --ip6tables=false -H "$DSOCK" \
    --data-root "$T/ddata" --exec-root "$T/dexec" --pidfile "$T/dockerd.pid" >"$T/dockerd.log" 2>&1 &
DPID=$!
until DOCKER_HOST=$BSOCK docker version >/dev/null 2>&1; do sleep 0.05; done
until DOCKER_HOST=$DSOCK docker version >/dev/null 2>&1; do sleep 0.1; done

sh "$here/tests/fixtures/busybox-rootfs.sh" "$T/rootfs" >/dev/null
tar -C "$T/rootfs" -cf "$T/busybox.tar" .
for h in "$BSOCK" "$DSOCK"; do DOCKER_HOST=$h docker import "$T/busybox.tar" busybox:latest >/dev/null; done

ms() { echo $(( ($2 - $1) / 1000000 )); }

# 1. Ten instructions, all cached.
C1=$T/ctx10; mkdir -p "$C1"
echo hello > "$C1/a.txt"
cat > "$C1/Dockerfile" <<'EOF'
FROM busybox
ENV A=1
WORKDIR /app
COPY a.txt /app/a.txt
RUN echo one > /one
LABEL bench=yes
ENV B=2
EXPOSE 8080
USER root
CMD ["cat", "/app/a.txt"]
EOF
id=$(BARGE_HOST=$BSOCK "$BARGE" build -q -t c10 "$C1")
echo "c10 built: $id"
[ "$(BARGE_HOST=$BSOCK "$BARGE" build -q -t c10 "$C1")" = "$id" ] || { echo "cached rebuild gave another image" >&2; exit 1; }
start=$(date +%s%N)
i=0; while [ $i -lt "$RUNS" ]; do BARGE_HOST=$BSOCK "$BARGE" build -q -t c10 "$C1" >/dev/null; i=$((i+1)); done
end=$(date +%s%N)
echo "cached 10-instruction rebuild, barge build -q via barge's daemon: $(( $(ms "$start" "$end") / RUNS )) ms/run ($RUNS runs)"
start=$(date +%s%N)
i=0; while [ $i -lt "$RUNS" ]; do DOCKER_HOST=$BSOCK docker build -q -t c10 "$C1" >/dev/null 2>&1; i=$((i+1)); done
end=$(date +%s%N)
echo "cached 10-instruction rebuild, DOCKER_BUILDKIT=0 docker build -q via barge: $(( $(ms "$start" "$end") / RUNS )) ms/run"
DOCKER_HOST=$DSOCK docker build -q -t c10 "$C1" >/dev/null 2>&1
start=$(date +%s%N)
i=0; while [ $i -lt "$RUNS" ]; do DOCKER_HOST=$DSOCK docker build -q -t c10 "$C1" >/dev/null 2>&1; i=$((i+1)); done
end=$(date +%s%N)
echo "cached 10-instruction rebuild, DOCKER_BUILDKIT=0 docker build -q via dockerd: $(( $(ms "$start" "$end") / RUNS )) ms/run"
start=$(date +%s%N)
i=0; while [ $i -lt "$RUNS" ]; do DOCKER_HOST=$BSOCK docker version >/dev/null; i=$((i+1)); done
end=$(date +%s%N)
echo "docker version via barge (CLI start + one round trip, the floor): $(( $(ms "$start" "$end") / RUNS )) ms/run"

# 2. 10,000 small files and a COPY, no cache.
C2=$T/ctx10k; mkdir -p "$C2/files"
i=0; while [ $i -lt 100 ]; do mkdir "$C2/files/d$i"; i=$((i+1)); done
awk -v d="$C2" 'BEGIN { for (i = 0; i < 10000; i++) { f = sprintf("%s/files/d%d/f%d.txt", d, i % 100, i); print "content of file " i > f; close(f) } }' </dev/null
printf 'FROM busybox\nCOPY files /files\n' > "$C2/Dockerfile"
n=3
for who in barge dockerd; do
    if [ "$who" = barge ]; then h=$BSOCK; else h=$DSOCK; fi
    DOCKER_HOST=$h docker build -q --no-cache -t c10k "$C2" >/dev/null 2>&1
    start=$(date +%s%N)
    i=0; while [ $i -lt $n ]; do DOCKER_HOST=$h docker build -q --no-cache -t c10k "$C2" >/dev/null 2>&1; i=$((i+1)); done
    end=$(date +%s%N)
    t=$(( $(ms "$start" "$end") / n ))
    echo "10,000-file context + COPY (--no-cache), docker build via $who: $t ms/run ($n runs)"
    eval "t_$who=$t"
done
start=$(date +%s%N)
i=0; while [ $i -lt $n ]; do BARGE_HOST=$BSOCK "$BARGE" build -q --no-cache -t c10k "$C2" >/dev/null; i=$((i+1)); done
end=$(date +%s%N)
echo "10,000-file context + COPY (--no-cache), barge build: $(( $(ms "$start" "$end") / n )) ms/run"
[ "$(DOCKER_HOST=$BSOCK docker run --rm c10k cat /files/d7/f9907.txt)" = "content of file 9907" ] || { echo "c10k lacks its files" >&2; exit 1; }
echo "ratio dockerd/barge (docker build, 10k files): $(awk "BEGIN { printf \"%.2f\", $t_dockerd / $t_barge }")"
