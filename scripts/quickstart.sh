#!/bin/sh
# Quick start: installs what barge needs, builds it, makes a busybox image from Debian's
# busybox-static (no registry needed) and runs a container from it through barge's daemon.
# The first `barge` command starts the daemon in the background (socket /run/barge/barge.sock,
# log /run/barge/daemon.log); stop it with `kill $(cat /run/barge/barge.pid)`.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
cargo build --release -q -p barge
barge=$PWD/target/release/barge
ln -sf barge "$PWD/target/release/barge-runc"
if ! "$barge" image inspect busybox:latest >/dev/null 2>&1; then
    rootfs=$(mktemp -d /tmp/barge-quickstart.XXXXXX)
    sh tests/fixtures/busybox-rootfs.sh "$rootfs"
    tar -C "$rootfs" -cf "$rootfs.tar" .
    "$barge" import "$rootfs.tar" busybox:latest >/dev/null
    rm -rf "$rootfs" "$rootfs.tar"
fi
"$barge" run --rm --hostname quickstart busybox \
    sh -c 'echo "hello from a barge container: $(hostname), pid $$, $(id)"; ip -o -4 addr show | sed "s/^/  /"'
