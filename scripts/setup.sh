#!/bin/sh
# Installs the Debian packages barge's build, tests and benches need, if any is missing.
# Idempotent; needs root. Used by scripts/quickstart.sh, scripts/test.sh and .ci/run.
set -eu
packages="build-essential pkg-config libseccomp-dev busybox-static iproute2 nftables
runc crun podman hyperfine skopeo umoci docker-registry file iperf3 git
docker.io python3-docker python3-bcrypt python3-websocket docker-compose"
# registry tests: a token-auth registry (Docker Hub style) signs its tokens with openssl.
packages="$packages openssl"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup: installing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Packages with services (docker.io) must not start them: tests start their own daemons.
    policy=/usr/sbin/policy-rc.d
    made_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
    fi
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    if [ -n "$made_policy" ]; then rm -f "$policy"; fi
fi
# docker-py's websocket attach needs websocket-client; a python3 that is not Debian's (pyenv)
# does not see python3-websocket, so it gets the package from PyPI.
if ! python3 -c 'import websocket' 2>/dev/null; then
    echo "setup: installing websocket-client for $(command -v python3)" >&2
    python3 -m pip install -q websocket-client ||
        echo "setup: could not install websocket-client: the websocket attach test will fail" >&2
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found: install a Rust toolchain (rustup) first" >&2
    exit 1
fi
