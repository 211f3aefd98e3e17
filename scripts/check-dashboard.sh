#!/usr/bin/env bash
# Checks Grafana dashboard JSON files (by default deploy/grafana/flowc.json) against Grafana's
# dashboard schema, without Grafana: Grafana is AGPL, so it is neither run nor built here.
# The check is deploy/grafana/validate, a small Go program that decodes each file with the
# strict decoders and Validate() constraints of the Apache-2.0 grafana-foundation-sdk
# (github.com/grafana/grafana-foundation-sdk/go at v0.0.22, the approved version), whose Go
# types are generated from Grafana's CUE kinds: the classic dashboard (schemaVersion, panels,
# templating, annotations), every panel and row, each panel's options and
# fieldConfig.defaults.custom with its panel type's own schema (timeseries, stat, table, ...),
# and each query target with its datasource's query schema (Prometheus by default).
#
#   ./scripts/check-dashboard.sh                      # checks deploy/grafana/flowc.json
#   ./scripts/check-dashboard.sh a.json b.json        # checks the given files
#   ./scripts/check-dashboard.sh -allow-unknown-types a.json
#
# Prints `ok FILE: N panels` per good file, or one `FILE: WHERE: WHAT` line per problem and
# `FAIL FILE: K errors`, and exits non-zero if any file has a problem. Caught: unknown or
# misspelled fields anywhere the SDK has a type (dashboard, panels, options, custom field
# config, fieldConfig, targets, variables, annotations), wrong JSON types, missing required
# fields (the SDK also requires fields that have a default in the CUE schema, e.g. stat's
# percentChangeColorMode, table's frameIndex), the schema's bounds (gridPos, ...), and panel or
# datasource types the SDK has no schema for (warnings with -allow-unknown-types). Not
# caught: enum values (plain strings in the SDK), untyped parts (override property values,
# transformation options), duplicate JSON keys, cross-references, PromQL syntax.
#
# Go (1.24 or newer) runs it with the local toolchain (GOTOOLCHAIN=local, no toolchain
# download). The module and build caches live in ${FLOWC_GO_DIR:-~/.cache/flowc/go} (shared
# with scripts/install-jaeger.sh); the first run fetches the SDK (one module, no
# dependencies, checked against deploy/grafana/validate/go.sum) from the Go module proxy,
# later runs need no network and reuse the cached binary. Idempotent: it writes nothing but
# those caches.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VALIDATOR_DIR="$ROOT/deploy/grafana/validate"

log() { echo "check-dashboard: $*" >&2; }

. "$ROOT/scripts/go-env.sh"
flowc_go_env check-dashboard
# The repository root is no Go module: this workspace file makes the validator package
# runnable from here while the file arguments stay relative to the caller's directory.
export GOWORK="$VALIDATOR_DIR/go.work"

# Default file when no file is given (flags alone, such as -allow-unknown-types, do not count).
have_file=0
for arg in "$@"; do
    case "$arg" in
        -*) ;;
        *) have_file=1 ;;
    esac
done
if [ "$have_file" -eq 0 ]; then
    if [ "$PWD" = "$ROOT" ]; then
        set -- "$@" deploy/grafana/flowc.json
    else
        set -- "$@" "$ROOT/deploy/grafana/flowc.json"
    fi
fi

log "checking $* against grafana-foundation-sdk v0.0.22 ($(go version))"
if [ "$PWD" = "$ROOT" ]; then
    pkg=./deploy/grafana/validate
else
    pkg="$VALIDATOR_DIR"
fi
if go run "$pkg" "$@"; then
    log "all dashboards are valid"
else
    status=$?
    log "dashboard check failed (exit $status)"
    exit "$status"
fi
