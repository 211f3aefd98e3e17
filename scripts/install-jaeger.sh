#!/usr/bin/env bash
# Installs Jaeger v2, the all-in-one `jaeger` binary (an OpenTelemetry Collector distribution
# with Jaeger's storage and query API), that flowc's tracing tests and demos send OTLP spans
# to and read traces back from. It is built from source from the Go module proxy:
# `github.com/jaegertracing/jaeger/cmd/jaeger` at v1.75.0 (the Go module version of the
# Jaeger v2.x release line; run it with scripts/jaeger.yaml).
#
#   ./scripts/install-jaeger.sh          # prints the binary path as the last line of stdout
#   export FLOWC_JAEGER="$(./scripts/install-jaeger.sh | tail -n 1)"
#   "$FLOWC_JAEGER" --config "$PWD/scripts/jaeger.yaml"
#
# Why v1.75.0: the pinned, approved release (Jaeger v1.x and v2.x are tagged together; the Go
# module only carries the v1.x tag). Newer module versions are served by the proxy but are not
# approved. The module asks for go >= 1.24.6, so the local Go toolchain is used
# (GOTOOLCHAIN=local, no toolchain download). The UI assets are not in the module (they come
# from a git submodule), so the binary serves a placeholder page at /; the HTTP and gRPC query
# APIs (/api/..., /api/v3/...) are complete.
#
# Installs into ${FLOWC_TOOLS_DIR:-~/.cache/flowc/tools}/jaeger-v1.75.0/jaeger (beside tansu and
# kafka). The Go module and build caches live in ${FLOWC_GO_DIR:-~/.cache/flowc/go}, so a
# rebuild reuses them. Idempotent: when the binary is there it only prints the path, with no
# network and no Go. Everything but the path goes to stderr. Needs go (1.24.6 or newer). The
# build is heavy (a few hundred modules); it runs at low priority with one package at a time
# unless FLOWC_GO_PARALLEL says otherwise.
set -euo pipefail

JAEGER_MODULE="github.com/jaegertracing/jaeger"
JAEGER_VERSION="v1.75.0"
JAEGER_PKG="$JAEGER_MODULE/cmd/jaeger"

TOOLS_DIR="${FLOWC_TOOLS_DIR:-$HOME/.cache/flowc/tools}"
DEST_DIR="$TOOLS_DIR/jaeger-$JAEGER_VERSION"
DEST="$DEST_DIR/jaeger"

log() { echo "install-jaeger: $*" >&2; }

if [ -x "$DEST" ]; then
    log "already installed"
    echo "$DEST"
    exit 0
fi

. "$(dirname "${BASH_SOURCE[0]}")/go-env.sh"
flowc_go_env install-jaeger
parallel="${FLOWC_GO_PARALLEL:-1}"

# A throwaway module that pins the tool with `go get -tool`, so the build uses exactly the
# dependency versions of v1.75.0's go.mod (as `go install pkg@version` would).
mkdir -p "$DEST_DIR" "$GO_DIR"
WORK="$(mktemp -d "$DEST_DIR/.build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
go mod init flowc.local/jaeger-tool >&2

log "resolving $JAEGER_PKG@$JAEGER_VERSION from the Go module proxy ($(go version))"
nice -n 19 go get -tool "$JAEGER_PKG@$JAEGER_VERSION" >&2
got="$(go list -m -f '{{.Version}}' "$JAEGER_MODULE")"
if [ "$got" != "$JAEGER_VERSION" ]; then
    log "go get selected $JAEGER_MODULE $got, expected $JAEGER_VERSION"
    exit 1
fi

log "building $JAEGER_PKG (this takes a while)"
tmp_bin="$DEST_DIR/.jaeger.$$"
start="$(date +%s)"
# Stamp the module version (what `jaeger version` and the startup log print); the upstream
# Makefile stamps the same variables from git, which a module-proxy build does not have.
nice -n 19 go build -p "$parallel" -trimpath \
    -ldflags "-s -w -X $JAEGER_MODULE/internal/version.latestVersion=$JAEGER_VERSION" \
    -o "$tmp_bin" "$JAEGER_PKG" >&2
log "built in $(( $(date +%s) - start ))s"

# A smoke check that the binary runs, then rename into place (atomic, so a concurrent or
# interrupted run never leaves a half-written binary at $DEST).
if ! "$tmp_bin" version >"$WORK/check.log" 2>&1 || ! grep -q "\"gitVersion\":\"$JAEGER_VERSION\"" "$WORK/check.log"; then
    rm -f "$tmp_bin"
    log "the built binary does not run: $(tail -n 5 "$WORK/check.log")"
    exit 1
fi
mv -f "$tmp_bin" "$DEST"
log "installed jaeger $JAEGER_VERSION ($(du -h "$DEST" | cut -f 1))"
echo "$DEST"
