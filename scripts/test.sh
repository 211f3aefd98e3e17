#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the build needs, then checks
# formatting, lints and runs every test. `.ci/run` calls exactly this.
#
#   ./scripts/test.sh
#
# Reuses a cargo target dir outside the clone (FLOWC_TARGET_DIR, default ~/.cache/flowc/target)
# so a second run, or CI on a machine that already built flowc, does not rebuild RocksDB and
# librdkafka from source. A fresh machine simply builds into it.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${FLOWC_TARGET_DIR:-$HOME/.cache/flowc/target}}"
mkdir -p "$CARGO_TARGET_DIR"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

# A reused target dir keeps every earlier build's test binaries (hundreds of MB each; tens of
# GB after a day of work): keep only the newest of each, and drop incremental caches.
if [ -d "$CARGO_TARGET_DIR/debug/deps" ]; then
    python3 - "$CARGO_TARGET_DIR/debug/deps" <<'PY'
import os, re, sys
from collections import defaultdict
deps = sys.argv[1]
groups = defaultdict(list)
for f in os.listdir(deps):
    path = os.path.join(deps, f)
    m = re.fullmatch(r"(.+)-[0-9a-f]{16}", f)
    if m and os.path.isfile(path) and os.access(path, os.X_OK):
        groups[m.group(1)].append(path)
for paths in groups.values():
    paths.sort(key=os.path.getmtime, reverse=True)
    for stale in paths[1:]:
        os.remove(stale)
PY
    rm -rf "$CARGO_TARGET_DIR/debug/incremental"
fi

step "build dependencies (system packages)"
./scripts/setup-build-deps.sh

# Jaeger (the tracing test's backend) builds from Go sources: minutes on a fresh machine, so
# it builds in the background while cargo checks and compiles, and is waited for before the
# tests (a second run finds it installed at once).
jaeger_log="$CARGO_TARGET_DIR/install-jaeger.log"
./scripts/install-jaeger.sh >"$jaeger_log" 2>&1 &
jaeger_pid=$!

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "the Grafana dashboard against Grafana's dashboard schema (grafana-foundation-sdk)"
./scripts/check-dashboard.sh

step "Apache Kafka (the broker every broker test runs on) and tansu (the smoke set)"
export FLOWC_KAFKA_HOME; FLOWC_KAFKA_HOME="$(./scripts/install-kafka.sh | tail -n 1)"
export FLOWC_TANSU; FLOWC_TANSU="$(./scripts/install-broker.sh | tail -n 1)"

step "MLServer (Python venv) for the MLServer test"
export FLOWC_MLSERVER_BIN; FLOWC_MLSERVER_BIN="$(./scripts/setup-python.sh | tail -n 1)"

step "Jaeger (OTLP traces backend) for the tracing test"
if ! wait "$jaeger_pid"; then
    cat "$jaeger_log" >&2
    echo "scripts/install-jaeger.sh failed" >&2
    exit 1
fi
export FLOWC_JAEGER; FLOWC_JAEGER="$(tail -n 1 "$jaeger_log")"

log="$CARGO_TARGET_DIR/last-test.log"
: >"$log"
status=0

step "cargo test (every broker test on Apache Kafka, one shared broker per test binary)"
FLOWC_TEST_BROKER=kafka cargo test --workspace --locked --no-fail-fast 2>&1 | tee -a "$log" || status=1

# Fused execution (§10) must answer as per-hop: the end-to-end suites again on Apache Kafka
# with every pipeline applied `--execution fused` (SIGKILL fail-over, the ten-SIGKILL chaos test
# of a join and a batch under both guarantees, and sync calls included).
step "cargo test, fused execution (e2e, gateway, fail-over, ten-SIGKILL chaos, faults, inspect on Apache Kafka)"
FLOWC_TEST_EXECUTION=fused FLOWC_TEST_BROKER=kafka cargo test --locked --no-fail-fast -p flowc --test kafka_e2e \
    --test kafka_gateway --test kafka_failover --test kafka_exactly_once --test kafka_faults --test kafka_inspect 2>&1 \
    | tee -a "$log" || status=1

# tansu stays the embedded default of `flowc up` and the demo: the end-to-end examples, the
# gateway, `up` and the broker probe run on it too.
step "cargo test on tansu (smoke set: e2e, gateway, updates, inspect, up, broker probe)"
FLOWC_TEST_BROKER=tansu cargo test --locked --no-fail-fast -p flowc --test kafka_e2e --test kafka_gateway --test kafka_update --test kafka_inspect --test up 2>&1 \
    | tee -a "$log" || status=1
FLOWC_TEST_BROKER=tansu cargo test --locked -p flowc-runtime --test broker_probe 2>&1 | tee -a "$log" || status=1

# One closing line that counts every test binary's results together.
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "\n%d passed, %d failed, %d skipped\n", p, f, i }' "$log"
exit "$status"
