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
#   bench/network.sh [RUNS] [SECONDS]     (defaults: 40 runs, 5 s per iperf3 run)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-40}
secs=${2:-5}
sh scripts/setup.sh
cargo build --release -q -p barge
barge=$PWD/target/release/barge
iperf=$(command -v iperf3)

. bench/lib.sh
bench_init barge-bench-net
nsb=barge-bnet-b-$$
nsd=barge-bnet-d-$$

# Each namespace: loopback, and a link with an address standing for the host's LAN address
# (clients of published ports reach it as other hosts would reach the host). A veth pair
# with both ends inside: the dummy driver may be missing.
for ns in "$nsb" "$nsd"; do
    bench_netns_add "$ns"
    ip -n "$ns" link add lan0 type veth peer name lan1
    ip -n "$ns" addr add 10.99.0.1/24 dev lan0
    ip -n "$ns" link set lan0 up
    ip -n "$ns" link set lan1 up
done
bench_busybox "$work"

mkdir -p "$work/barge" "$work/dockerd"
bench_daemon "$nsb" "$work/barge.sock" "$work/barge.log" "$barge" daemon \
    --host "unix://$work/barge.sock" --data-root "$work/barge/data" \
    --exec-root "$work/barge/exec" --pidfile "$work/barge/pid"
bench_daemon "$nsd" "$work/dockerd.sock" "$work/dockerd.log" /usr/sbin/dockerd \
    -H "unix://$work/dockerd.sock" --data-root "$work/dockerd/data" \
    --exec-root "$work/dockerd/exec" --pidfile "$work/dockerd/pid"
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
print(f"network setup+teardown adds: barge {bn:.1f} ms  dockerd {dn:.1f} ms  ratio dockerd/barge {dn/bn if bn > 0 else float('inf'):.1f}x")
bl, dl, ba, da = map(float, sys.argv[2:6])
ratio = lambda a, b: f"{a/b:.2f}" if b > 0 else "n/a"
print(f"iperf3 via 10.99.0.1:5201  barge {ba:.2f} Gbit/s  dockerd {da:.2f} Gbit/s  ratio barge/dockerd {ratio(ba, da)}")
print(f"iperf3 via 127.0.0.1:5201  barge {bl:.2f} Gbit/s  dockerd {dl:.2f} Gbit/s  ratio barge/dockerd {ratio(bl, dl)}  (0 = stalled)")
PY
