#!/bin/sh
# Runs barge's whole test suite (as root, tests that need root run; otherwise they say why
# they skip). Installs missing system packages first.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast -- --test-threads=2
