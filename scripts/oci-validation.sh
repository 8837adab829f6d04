#!/bin/bash
# Runs opencontainers/runtime-tools' validation suite against barge-runc.
#
#   scripts/oci-validation.sh RUNTIME_TOOLS_DIR [TEST...]
#
# RUNTIME_TOOLS_DIR: a checkout (or `git archive`) of runtime-tools; it vendors its Go modules,
# so nothing is downloaded. Needs Go (Debian: golang-go) and root. With a Go older than 1.21
# the three newer library calls the vendored code makes are given as local shims. Each test's
# TAP goes to $OUT (default /tmp/oci-validation)/NAME.tap; a summary line per test is printed.
# See docs/oci-conformance.md for what each test checks and the expected results.
set -euo pipefail
src=${1:?usage: $0 RUNTIME_TOOLS_DIR [TEST...]}
shift
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-/tmp/oci-validation}
mkdir -p "$out/bin"
export GOFLAGS=-mod=vendor GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0

minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
if [ "$minor" -lt 21 ] && [ ! -e "$src/vendor/slices/slices.go" ]; then
    mkdir -p "$src/vendor/slices"
    cat > "$src/vendor/slices/slices.go" <<'GO'
// Package slices: the two functions of Go 1.21's slices that the vendored code uses.
package slices

func Contains[E comparable](s []E, v E) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func DeleteFunc[S ~[]E, E any](s S, del func(E) bool) S {
	out := s[:0]
	for _, x := range s {
		if !del(x) {
			out = append(out, x)
		}
	}
	return out
}
GO
    f=$src/vendor/github.com/moby/sys/capability/capability_linux.go
    sed -i 's/sync\.OnceValues(/onceValues(/g; s/strings\.CutPrefix(/cutPrefix(/g' "$f"
    cat >> "$f" <<'GO'

func onceValues[T1, T2 any](f func() (T1, T2)) func() (T1, T2) {
	var once sync.Once
	var a T1
	var b T2
	return func() (T1, T2) {
		once.Do(func() { a, b = f() })
		return a, b
	}
}

func cutPrefix(s, p string) (string, bool) {
	if !strings.HasPrefix(s, p) {
		return s, false
	}
	return s[len(p):], true
}
GO
    f=$src/validate/capabilities/validate.go
    sed -i 's/sync\.OnceValue(/onceValue(/g' "$f"
    cat >> "$f" <<'GO'

func onceValue[T any](f func() T) func() T {
	var once sync.Once
	var a T
	return func() T {
		once.Do(func() { a = f() })
		return a
	}
}
GO
fi

cargo build -q -p barge --manifest-path "$repo/Cargo.toml"
ln -sf "$repo/target/debug/barge" "$out/bin/barge-runc"
cat > "$out/bin/runtime" <<SH
#!/bin/sh
exec $out/bin/barge-runc --root $out/state "\$@"
SH
chmod +x "$out/bin/runtime"

cd "$src"
go build -o runtimetest ./cmd/runtimetest
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
    for f in validation/*/*.go; do
        case $f in */util/*) ;; *) tests+=("$(basename "$f" .go)") ;; esac
    done
fi
for t in "${tests[@]}"; do
    go build -o "validation/$t/$t.t" "validation/$t/$t.go"
    rc=0
    RUNTIME=$out/bin/runtime timeout 120 "validation/$t/$t.t" >"$out/$t.tap" 2>"$out/$t.err" || rc=$?
    printf '%-36s ok %4d  not ok %3d  exit %d\n' "$t" \
        "$(grep -c '^ok' "$out/$t.tap" || true)" "$(grep -c '^not ok' "$out/$t.tap" || true)" "$rc"
done
