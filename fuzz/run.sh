#!/usr/bin/env bash
# Runs every coverage-guided fuzz target (libFuzzer through cargo-fuzz) for a bounded time
# from the committed seeds, and prints per target the executions and the coverage reached.
# Usage: fuzz/run.sh [SECONDS per target, default $LENET_FUZZ_SECONDS or 60]
# Needs cargo-fuzz (`cargo install cargo-fuzz`); the stable toolchain runs it with
# RUSTC_BOOTSTRAP=1 (no nightly needed). A crash input found is kept in
# fuzz/artifacts/<target>/; copy it into fuzz/regressions/<target>/ so tests/fuzz.rs keeps
# checking it.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-${LENET_FUZZ_SECONDS:-60}}"
export RUSTC_BOOTSTRAP=1
# Release-like code with debug assertions and the address sanitizer (cargo-fuzz defaults).
cargo fuzz build --fuzz-dir fuzz
status=0
for target in idx checkpoint http; do
    corpus="$(mktemp -d)"
    cp fuzz/seeds/"$target"/* "$corpus"/
    log="$(mktemp)"
    echo "fuzzing $target for ${secs}s from $(ls fuzz/seeds/"$target" | wc -l) seeds"
    if ! cargo fuzz run --fuzz-dir fuzz "$target" "$corpus" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -max_len=1048576 -print_final_stats=1 \
        >"$log" 2>&1; then
        status=1
        tail -40 "$log"
        echo "fuzz target $target FAILED: the crash input is in fuzz/artifacts/$target/"
    fi
    # libFuzzer's last status line: "#N DONE cov: C ft: F corp: ..."; and its final stats.
    done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)"
    execs="$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' || true)"
    echo "fuzz $target: ${execs:-?} executions in ${secs}s; ${done_line:-no DONE line}; corpus $(ls "$corpus" | wc -l) inputs"
    rm -rf "$corpus" "$log"
done
exit $status
