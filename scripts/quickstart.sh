#!/bin/sh
# Quick start: installs what barge needs, builds it, makes a busybox bundle and runs a
# container from it with barge's OCI runtime (barge-runc).
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
cargo build --release -q
bin=$PWD/target/release
ln -sf barge "$bin/barge-runc"
bundle=${BARGE_QUICKSTART_BUNDLE:-/tmp/barge-quickstart}
rm -rf "$bundle"
mkdir -p "$bundle"
sh tests/fixtures/busybox-rootfs.sh "$bundle/rootfs"
cd "$bundle"
"$bin/barge-runc" spec
# The spec runs `sh`; run a command instead, without a terminal.
sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"sh", "-c", "echo hello from a barge container: $(hostname), pid $$, $(id)"/' config.json
"$bin/barge-runc" run "quickstart-$$"
