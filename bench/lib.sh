# Shared setup and teardown of the bash benches (engine.sh, network.sh, runtime.sh): a work
# dir, network namespaces, daemons started in a namespace of their own and stopped by PID,
# the busybox image tarball, crun's hugetlb workaround, and one EXIT trap that undoes all of
# it. Source it after `cd` to the repository root:
#
#   . bench/lib.sh
#   bench_init barge-bench-engine        # work dir /tmp/barge-bench-engine.XXXXXX in $work
#
# A script with more to undo defines `bench_cleanup_hook` (run after the containers are
# removed and before the daemons are stopped).

# The docker CLI: the one in /usr/local/bin (newer) when there is one.
docker_cli=/usr/local/bin/docker
[ -x "$docker_cli" ] || docker_cli=$(command -v docker || true)

pids=()          # daemons to stop, by PID
bench_sockets=() # their API sockets, for removing their containers first
bench_netns=()   # namespaces to delete
mounted_hugetlb=0

# bench_init NAME: makes the work dir ($work) and sets the EXIT trap.
bench_init() {
    work=$(mktemp -d "/tmp/$1.XXXXXX")
    trap bench_cleanup EXIT
}

bench_cleanup() {
    set +e
    # Containers outlive their daemon (live restore): remove them while the daemons run.
    for h in "${bench_sockets[@]}"; do
        [ -S "$h" ] || continue
        ids=$("$docker_cli" -H "unix://$h" ps -aq 2>/dev/null)
        [ -n "$ids" ] && "$docker_cli" -H "unix://$h" rm -f $ids >/dev/null 2>&1
    done
    if declare -F bench_cleanup_hook >/dev/null; then bench_cleanup_hook; fi
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in "${pids[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
    done
    for ns in "${bench_netns[@]}"; do
        ip netns del "$ns" 2>/dev/null
    done
    if [ "$mounted_hugetlb" = 1 ]; then umount /sys/fs/cgroup/hugetlb && rmdir /sys/fs/cgroup/hugetlb; fi
    grep -o " $work[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf "$work"
}

# bench_netns_add NAME: a network namespace with loopback up, deleted at exit.
bench_netns_add() {
    ip netns add "$1"
    bench_netns+=("$1")
    ip -n "$1" link set lo up
}

# bench_hugetlb: crun refuses a hybrid host while cgroup2 holds the hugetlb controller;
# mounting the v1 hugetlb hierarchy takes it from cgroup2 (and is undone at exit).
bench_hugetlb() {
    if [ ! -e /sys/fs/cgroup/hugetlb/cgroup.procs ] && grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null; then
        # The controller can only move while no cgroup2 level has it on (barge's own
        # cgroups turn it on): switch it off, deepest level first.
        find /sys/fs/cgroup/unified -name cgroup.subtree_control | awk -F/ '{print NF" "$0}' |
            sort -rn | cut -d' ' -f2- | while read -r f; do
                if grep -qw hugetlb "$f"; then echo -hugetlb >"$f" 2>/dev/null || true; fi
            done
        mkdir -p /sys/fs/cgroup/hugetlb
        mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
        mounted_hugetlb=1
    fi
}

# bench_daemon NETNS SOCKET LOG COMMAND...: starts a daemon in NETNS and a private mount
# namespace, output to LOG; its pid goes to $daemon_pid and the cleanup list. unshare and
# nsenter exec the daemon in their own process, so $! is the daemon's pid (a shell function
# in between would make it a subshell's).
bench_daemon() {
    local ns=$1 sock=$2 log=$3
    shift 3
    unshare --mount --propagation private nsenter --net="/run/netns/$ns" "$@" >"$log" 2>&1 &
    daemon_pid=$!
    pids+=("$daemon_pid")
    bench_sockets+=("$sock")
}

# wait_sock SOCKET: waits until a daemon answers /_ping on SOCKET (30 s at most).
wait_sock() {
    for _ in $(seq 300); do
        curl -sf --unix-socket "$1" http://x/_ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "bench: no daemon answered on $1" >&2
    exit 1
}

# bench_busybox DIR: a busybox rootfs in DIR/rootfs and its tarball DIR/busybox.tar.
bench_busybox() {
    sh tests/fixtures/busybox-rootfs.sh "$1/rootfs"
    tar -C "$1/rootfs" -cf "$1/busybox.tar" .
}

# bench_barge: $barge, the binary measured: $BARGE_BIN when set (another build, e.g. main's
# for a before/after), else this tree's release build.
bench_barge() {
    if [ -n "${BARGE_BIN:-}" ]; then
        barge=$BARGE_BIN
    else
        cargo build --release -q -p barge
        barge=$PWD/target/release/barge
    fi
}
