#!/bin/bash
# Network benchmark, barge and dockerd side by side in one run, each daemon in a network
# namespace (and mount namespace) of its own that this script makes and removes:
#  1. what networking adds to a start: `run --rm busybox true` with `--network none` and on
#     the default bridge, for both engines; the difference is the cost of network setup and
#     teardown (target: under 5 ms for barge).
#  2. throughput through a published port from the namespace's host side: iperf3 as the
#     server in a busybox container (the host's iperf3 binary and libraries bind-mounted
#     read-only), the client in the daemon's namespace, to 127.0.0.1 and to an address of the
#     namespace (a veth link): barge's DNAT against dockerd's (DNAT, docker-proxy for
#     127.0.0.1).
# Prints medians, means and ratios. Needs root.
#
#   bench/network.sh [RUNS] [SECONDS]     (defaults: 40 runs, 5 s per iperf3 run;
#                                          SECONDS=0 skips the throughput part)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-40}
secs=${2:-5}
sh scripts/setup.sh
cargo build --release -q -p barge
barge=$PWD/target/release/barge
docker_cli=/usr/local/bin/docker
[ -x "$docker_cli" ] || docker_cli=$(command -v docker)
iperf=$(command -v iperf3)

work=$(mktemp -d /tmp/barge-bench-net.XXXXXX)
nsb=barge-bnet-b-$$
nsd=barge-bnet-d-$$
pids=()
cleanup() {
    set +e
    for h in "$work/barge.sock" "$work/dockerd.sock"; do
        [ -S "$h" ] || continue
        ids=$("$docker_cli" -H "unix://$h" ps -aq 2>/dev/null)
        [ -n "$ids" ] && "$docker_cli" -H "unix://$h" rm -f $ids >/dev/null 2>&1
    done
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in "${pids[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
    done
    ip netns del "$nsb" 2>/dev/null
    ip netns del "$nsd" 2>/dev/null
    grep -o " $work[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf "$work"
}
trap cleanup EXIT

# Each namespace: loopback, and a link with an address standing for the host's LAN address
# (clients of published ports reach it as other hosts would reach the host). A veth pair
# with both ends inside: the dummy driver may be missing.
for ns in "$nsb" "$nsd"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$ns" link add lan0 type veth peer name lan1
    ip -n "$ns" addr add 10.99.0.1/24 dev lan0
    ip -n "$ns" link set lan0 up
    ip -n "$ns" link set lan1 up
done
wait_sock() {
    for _ in $(seq 300); do
        curl -sf --unix-socket "$1" http://x/_ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "bench: no daemon answered on $1" >&2
    exit 1
}

sh tests/fixtures/busybox-rootfs.sh "$work/rootfs"
tar -C "$work/rootfs" -cf "$work/busybox.tar" .

mkdir -p "$work/barge" "$work/dockerd"
# unshare+nsenter exec the daemon in their own process, so $! is the daemon's pid.
unshare --mount --propagation private nsenter --net="/run/netns/$nsb" "$barge" daemon \
    --host "unix://$work/barge.sock" --data-root "$work/barge/data" \
    --exec-root "$work/barge/exec" --pidfile "$work/barge/pid" >"$work/barge.log" 2>&1 &
pids+=($!)
unshare --mount --propagation private nsenter --net="/run/netns/$nsd" /usr/sbin/dockerd \
    -H "unix://$work/dockerd.sock" --data-root "$work/dockerd/data" \
    --exec-root "$work/dockerd/exec" --pidfile "$work/dockerd/pid" >"$work/dockerd.log" 2>&1 &
pids+=($!)
wait_sock "$work/barge.sock"
wait_sock "$work/dockerd.sock"

B="$barge -H unix://$work/barge.sock"
D="$docker_cli -H unix://$work/dockerd.sock"
$B import "$work/busybox.tar" busybox >/dev/null
$D import "$work/busybox.tar" busybox >/dev/null

echo "== run --rm busybox true: --network none vs the default bridge ($runs runs) =="
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/run.json" \
    -n "barge none" "$B run --rm --network none busybox true" \
    -n "barge bridge" "$B run --rm busybox true" \
    -n "dockerd none" "$D run --rm --network none busybox true" \
    -n "dockerd bridge" "$D run --rm busybox true"

ba=0 da=0 bl=0 dl=0
if [ "$secs" -gt 0 ]; then
echo "== iperf3 through a published port (${secs}s per run) =="
vols="-v $iperf:/iperf3:ro -v /lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu:ro -v /lib64:/lib64:ro"
$B run -d --name ipf -p 5201:5201 $vols busybox /iperf3 -s >/dev/null
$D run -d --name ipf -p 5201:5201 $vols busybox /iperf3 -s >/dev/null
# the servers need a moment to listen
for ns in "$nsb" "$nsd"; do
    for _ in $(seq 50); do
        timeout 5 ip netns exec "$ns" "$iperf" -c 10.99.0.1 -t 1 >/dev/null 2>&1 && break
        sleep 0.1
    done
done
gbps() { # namespace, address: Gbit/s, 0 when the transfer stalls (killed after a while)
    timeout -k 2 $((secs + 10)) ip netns exec "$1" "$iperf" -c "$2" -t "$secs" -J 2>/dev/null |
        python3 -c 'import json,sys
try: print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9)
except Exception: print(0)'
}
ba=$(gbps "$nsb" 10.99.0.1)
da=$(gbps "$nsd" 10.99.0.1)
bl=$(gbps "$nsb" 127.0.0.1)
dl=$(gbps "$nsd" 127.0.0.1)
fi

echo "== summary =="
python3 - "$work/run.json" "$bl" "$dl" "$ba" "$da" <<'PY'
import json, sys
run = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
# medians: on a shared machine the means carry other processes' noise
m = {k: v["median"] * 1000 for k, v in run.items()}
for k in m:
    print(f"run --rm {k:15s} median {m[k]:7.1f} ms  mean {run[k]['mean']*1000:7.1f} ms  sd {run[k]['stddev']*1000:5.1f} ms")
bn = m["barge bridge"] - m["barge none"]
dn = m["dockerd bridge"] - m["dockerd none"]
print(f"network setup+teardown adds: barge {bn:.1f} ms ({m['barge bridge']/m['barge none']:.2f}x of none)  "
      f"dockerd {dn:.1f} ms ({m['dockerd bridge']/m['dockerd none']:.2f}x of none)  "
      f"ratio dockerd/barge {dn/bn if bn > 0 else float('inf'):.1f}x")
bl, dl, ba, da = map(float, sys.argv[2:6])
if max(bl, dl, ba, da) == 0:
    sys.exit(0)  # throughput part skipped
ratio = lambda a, b: f"{a/b:.2f}" if b > 0 else "n/a"
print(f"iperf3 via 10.99.0.1:5201  barge {ba:.2f} Gbit/s  dockerd {da:.2f} Gbit/s  ratio barge/dockerd {ratio(ba, da)}")
print(f"iperf3 via 127.0.0.1:5201  barge {bl:.2f} Gbit/s  dockerd {dl:.2f} Gbit/s  ratio barge/dockerd {ratio(bl, dl)}  (0 = stalled)")
PY
