#!/usr/bin/env bash
# Fuzzes flowc with libFuzzer (cargo-fuzz, nightly): builds every target of fuzz/ and runs each
# for SECONDS (default 60), then prints per target the executions, the coverage of libFuzzer's
# last status line (cov = code edges, ft = features) and the crashes. Exits 1 if a target
# crashed; the crashing input is in fuzz/artifacts/<target>/ (`cargo +nightly fuzz tmin` it,
# fix the bug, keep it in fuzz/corpus/<target>/ as regression-* with a unit test). Reproduce
# one input with `<target dir>/x86_64-unknown-linux-gnu/release/<target> FILE`.
#
#   ./scripts/fuzz.sh                 # every target, 60 s each
#   ./scripts/fuzz.sh 600 oip_json    # only the targets named
#
# Targets: compile_yaml (YAML → compiler, diagnostics and renderers), oip_json (OIP JSON
# request bodies with the binary tensor data extension → decoding, encoding, round trips),
# record_tensor (protobuf record values → §5.1 conversions, both wire forms, batch merge),
# reference_grammar (reference strings → the grammar's four parsers).
#
# Seeds are fuzz/corpus/<target>/ (regenerate with
# `cargo run --manifest-path fuzz/Cargo.toml --example make_corpus`); what libFuzzer finds beyond
# them is kept in the target dir (corpus/<target>/), outside the repository, and reused by the
# next run. The first build compiles RocksDB and librdkafka with instrumentation (long, once).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
seconds="${1:-60}"
shift || true
case "$seconds" in
    '' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, not '$seconds'" >&2; exit 2 ;;
esac

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: needs a nightly toolchain (rustup toolchain install nightly)" >&2
    exit 2
fi
if [ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    echo "fuzz.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

if [ -n "${FLOWC_FUZZ_TARGET_DIR:-}" ]; then
    target_dir="$FLOWC_FUZZ_TARGET_DIR"
elif [ -d "$HOME/.cache/flowc" ]; then
    target_dir="$HOME/.cache/flowc/fuzz-target"
else
    target_dir="$PWD/fuzz/target"
fi
mkdir -p "$target_dir"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi

# `cargo fuzz build` takes one target or none (all of them).
build_one=()
[ ${#targets[@]} -eq 1 ] && build_one=("${targets[0]}")
# FLOWC_FUZZ_BUILD=0 runs the binaries already built (e.g. while the tree does not compile).
if [ "${FLOWC_FUZZ_BUILD:-1}" != 0 ]; then
    (cd fuzz && nice -n 10 cargo +nightly fuzz build --target-dir "$target_dir" "${build_one[@]}")
fi

bin_dir="$target_dir/x86_64-unknown-linux-gnu/release"
logs="$target_dir/logs"
mkdir -p "$logs"
failed=0
summary=()
for t in "${targets[@]}"; do
    work="$target_dir/corpus/$t"
    artifacts="fuzz/artifacts/$t"
    mkdir -p "$work" "$artifacts" "fuzz/corpus/$t"
    before="$(ls "$artifacts" | sort)"
    log="$logs/$t.log"
    echo "fuzz.sh: $t for ${seconds}s (log: $log)" >&2
    # The binary built above, run directly (`cargo fuzz run` would rebuild first, picking up
    # edits made meanwhile). The first corpus directory receives new inputs; the committed
    # seeds are only read. ASAN_OPTIONS as cargo-fuzz sets them.
    started=$SECONDS
    set +e
    ASAN_OPTIONS="${ASAN_OPTIONS:-detect_odr_violation=0}" nice -n 10 "$bin_dir/$t" \
        -artifact_prefix="$PWD/$artifacts/" -max_total_time="$seconds" -print_final_stats=1 \
        -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 "$work" "fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    set -e
    took=$((SECONDS - started))
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    status="$(grep -E '^#[0-9]+.* cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1 || true)"
    cov="$(sed -E 's/.* cov: ([0-9]+).*/\1/' <<<"$status")"
    ft="$(sed -E 's/.* ft: ([0-9]+).*/\1/' <<<"$status")"
    new="$(comm -13 <(echo "$before") <(ls "$artifacts" | sort) | grep -v '^$' || true)"
    crashes="$(grep -c . <<<"$new" || true)"
    if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        failed=1
        [ "$crashes" -eq 0 ] && crashes="exit $rc"
        echo "fuzz.sh: $t FAILED; the end of its log:" >&2
        tail -n 30 "$log" >&2
        for f in $new; do echo "fuzz.sh:   $artifacts/$f" >&2; done
    fi
    summary+=("$(printf '%-18s %12s %8s %8s %8s %s' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$crashes" "${took}s")")
done

printf '\n%-18s %12s %8s %8s %8s %s\n' target executions cov ft crashes time
printf '%s\n' "${summary[@]}"
exit "$failed"
