#!/bin/bash
# Network benchmark, barge, dockerd and podman side by side in one run, each daemon (and
# podman) in a network namespace (and mount namespace) of its own that this script makes
# and removes:
#  1. what networking adds to a start: `run --rm busybox true` with `--network none` and on
#     the default bridge, for the three engines; the difference is the cost of network setup
#     and teardown (target: under 5 ms for barge). The six commands run interleaved (one
#     round = each in turn, see REPEAT), so load changes on a shared machine hit them alike;
#     the added cost is the median of the per-round differences bridge - none.
#  2. throughput through a published port from the namespace's host side: iperf3 as the
#     server in a busybox container (the host's iperf3 binary and libraries bind-mounted
#     read-only), the client in the daemon's namespace, to 127.0.0.1 and to an address of the
#     namespace (a veth link): barge's DNAT against dockerd's (DNAT, docker-proxy for
#     127.0.0.1).
# Prints medians, means and ratios. Needs root.
#
#   [BARGE_BIN=path] [BARGE_BASE=path] [PEERS=0] bench/network.sh [RUNS] [SECONDS]
#       defaults: 40 runs, 5 s per iperf3 run; SECONDS=0 skips the throughput part.
#       BARGE_BASE: a second barge build (e.g. main's, for a before/after) in a namespace of
#       its own, its two commands interleaved with the others ("base" rows).
#       PEERS=0: no dockerd or podman (barge, and the base if given, only).
#       REPEAT=n (default 2): each command runs n times in a row and only the last run is
#       measured: a start then follows a start of its own kind, whose teardown (the kernel
#       finishes a namespace's cleanup after `run --rm` has returned) it overlaps, as in
#       back-to-back runs, instead of the teardown of whatever command came before it.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-40}
secs=${2:-5}
sh scripts/setup.sh
iperf=$(command -v iperf3)

. bench/lib.sh
bench_barge
base=${BARGE_BASE:-}
peers=${PEERS:-1}
repeat=${REPEAT:-2}
bench_init barge-bench-net
nsb=barge-bnet-b-$$
nsa=barge-bnet-a-$$
nsd=barge-bnet-d-$$
nsp=barge-bnet-p-$$
bench_cleanup_hook() {
    podman --root "$work/podman" --runroot "$work/podman-run" rm -af -t 0 >/dev/null 2>&1
    podman --root "$work/podman" --runroot "$work/podman-run" system reset -f >/dev/null 2>&1
}

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
bench_netns_add "$nsp"
[ -n "$base" ] && bench_netns_add "$nsa"
bench_busybox "$work"

mkdir -p "$work/barge" "$work/dockerd"
bench_daemon "$nsb" "$work/barge.sock" "$work/barge.log" "$barge" daemon \
    --host "unix://$work/barge.sock" --data-root "$work/barge/data" \
    --exec-root "$work/barge/exec" --pidfile "$work/barge/pid"
bench_daemon "$nsd" "$work/dockerd.sock" "$work/dockerd.log" /usr/sbin/dockerd \
    -H "unix://$work/dockerd.sock" --data-root "$work/dockerd/data" \
    --exec-root "$work/dockerd/exec" --pidfile "$work/dockerd/pid"
if [ -n "$base" ]; then
    mkdir -p "$work/base"
    bench_daemon "$nsa" "$work/base.sock" "$work/base.log" "$base" daemon \
        --host "unix://$work/base.sock" --data-root "$work/base/data" \
        --exec-root "$work/base/exec" --pidfile "$work/base/pid"
    wait_sock "$work/base.sock"
    $base -H "unix://$work/base.sock" import "$work/busybox.tar" busybox >/dev/null
fi
wait_sock "$work/barge.sock"
wait_sock "$work/dockerd.sock"

B="$barge -H unix://$work/barge.sock"
D="$docker_cli -H unix://$work/dockerd.sock"
$B import "$work/busybox.tar" busybox >/dev/null
$D import "$work/busybox.tar" busybox >/dev/null

# runc: crun refuses this host's hybrid cgroup layout while cgroup2 holds a controller.
P="podman --root $work/podman --runroot $work/podman-run --cgroup-manager cgroupfs --events-backend none --runtime runc"
# podman makes its default bridge in the namespace it runs in: its own.
PN="nsenter --net=/run/netns/$nsp $P"
# This host's hard rlimits are below podman's rootful defaults (1048576): ask for less.
PL="--ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
$P import "$work/busybox.tar" busybox >/dev/null

rows=("barge none" "$B run --rm --network none busybox true"
    "barge bridge" "$B run --rm busybox true")
if [ -n "$base" ]; then
    A="$base -H unix://$work/base.sock"
    rows+=("base none" "$A run --rm --network none busybox true"
        "base bridge" "$A run --rm busybox true")
fi
if [ "$peers" != 0 ]; then
    rows+=("dockerd none" "$D run --rm --network none busybox true"
        "dockerd bridge" "$D run --rm busybox true"
        "podman none" "$PN run --rm --network none $PL busybox true"
        "podman bridge" "$PN run --rm $PL busybox true")
fi
echo "== run --rm busybox true: --network none vs the default bridge ($runs rounds, interleaved, each command $repeat times in a row, the last measured) =="
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/run.json" "$runs" "$repeat" "${rows[@]}" <<'PY'
import json, shlex, subprocess, sys, time
out, runs, repeat, rest = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
cmds = list(zip(rest[::2], rest[1::2]))
times = {n: [] for n, _ in cmds}
for r in range(runs + 3):  # 3 warm-up rounds
    for n, c in cmds:
        for k in range(repeat):  # only the last is measured
            t = time.perf_counter()
            p = subprocess.run(shlex.split(c), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            dt = time.perf_counter() - t
            if p.returncode != 0:
                sys.exit(f"{n}: {c} failed: {p.stderr.decode()}")
        if r >= 3:
            times[n].append(dt)
json.dump(times, open(out, "w"))
PY

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

echo "== summary (load average now: $(cut -d' ' -f1-3 /proc/loadavg)) =="
python3 - "$work/run.json" "$bl" "$dl" "$ba" "$da" <<'PY'
import json, statistics as st, sys
times = json.load(open(sys.argv[1]))
ms = lambda xs: [x * 1000 for x in xs]
for k, v in times.items():
    v = ms(v)
    print(f"run --rm {k:15s} median {st.median(v):7.1f} ms  mean {st.mean(v):7.1f} ms  sd {st.stdev(v):5.1f} ms")
added = {}
for e in ("barge", "base", "dockerd", "podman"):
    if f"{e} none" not in times:
        continue
    d = [b - n for b, n in zip(ms(times[f"{e} bridge"]), ms(times[f"{e} none"]))]
    added[e] = (st.median(d), st.mean(d))
    print(f"network setup+teardown adds ({e}): median of paired differences {added[e][0]:6.1f} ms  "
          f"mean {added[e][1]:6.1f} ms")
b = added["barge"][0]
for e in (x for x in ("base", "dockerd", "podman") if x in added):
    r = added[e][0] / b if b > 0 else float("inf")
    print(f"ratio of added cost {e}/barge {r:.1f}x  "
          f"(bridge run: {st.median(times[e + ' bridge']) / st.median(times['barge bridge']):.1f}x barge's)")
bl, dl, ba, da = map(float, sys.argv[2:6])
if max(bl, dl, ba, da) == 0:
    sys.exit(0)  # throughput part skipped
ratio = lambda a, b: f"{a/b:.2f}" if b > 0 else "n/a"
print(f"iperf3 via 10.99.0.1:5201  barge {ba:.2f} Gbit/s  dockerd {da:.2f} Gbit/s  ratio barge/dockerd {ratio(ba, da)}")
print(f"iperf3 via 127.0.0.1:5201  barge {bl:.2f} Gbit/s  dockerd {dl:.2f} Gbit/s  ratio barge/dockerd {ratio(bl, dl)}  (0 = stalled)")
PY
