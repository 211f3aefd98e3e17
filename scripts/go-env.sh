# Sourced by the scripts that build or run Go tools (install-jaeger.sh, check-dashboard.sh):
# one Go environment for them all. Module and build caches live in
# ${FLOWC_GO_DIR:-~/.cache/flowc/go}, so a rerun needs no network; the local toolchain is used
# (no toolchain download) and nothing needs cgo.
#
#   . "$(dirname "${BASH_SOURCE[0]}")/go-env.sh"; flowc_go_env install-jaeger || exit 1

flowc_go_env() {
    local who="$1"
    if ! command -v go >/dev/null 2>&1; then
        echo "$who: go is missing: install Go 1.24.6 or newer (https://go.dev/dl/)" >&2
        return 1
    fi
    GO_DIR="${FLOWC_GO_DIR:-$HOME/.cache/flowc/go}"
    export GOPATH="$GO_DIR"
    export GOMODCACHE="$GO_DIR/pkg/mod"
    export GOCACHE="$GO_DIR/cache"
    export GOTOOLCHAIN=local
    export CGO_ENABLED=0
}
