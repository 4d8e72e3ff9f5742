#!/usr/bin/env bash
# Runs every cargo-fuzz target in broker/fuzz for a bounded time, starting from its committed
# seed corpus (broker/fuzz/corpus/<target>/, recorded from real clients by
# scripts/capture_frames.py), and fails if any target finds a crash: a panic, an abort, an
# allocation over the target's memory budget, or an input that runs longer than the timeout.
#
# Stable Rust is enough. `cargo fuzz` asks for nightly only for a sanitizer (-Zsanitizer=address
# by default) or -Zbuild-std; with `--sanitizer none` it passes only stable codegen flags
# (-Cpasses=sancov-module and -Cllvm-args for the coverage counters, --cfg fuzzing), so no
# RUSTC_BOOTSTRAP is needed. What AddressSanitizer would add is covered otherwise: the code under
# test has no unsafe (the workspace forbids it), and allocations are held to a budget by the fuzz
# crate's own allocator (broker/fuzz/src/lib.rs). `-a` turns on debug assertions and overflow
# checks, which the broker's debug builds have too.
#
# Two modes. Exploring (the default) fuzzes each target for RUNNEL_FUZZ_SECONDS with a fresh
# random seed: use it to look for new bugs. Reproducible (RUNNEL_FUZZ_RUNS set, what
# scripts/test.sh and CI use) first replays every committed corpus input, then tries exactly
# RUNNEL_FUZZ_RUNS mutations from the fixed seed RUNNEL_FUZZ_SEED, so two runs of one commit try
# the same inputs and a CI failure reproduces with the same command; a red CI run means a
# regression, not an unlucky draw.
#
# Environment:
#   RUNNEL_FUZZ_SECONDS=20          exploring: seconds per target (5 targets: under 2 minutes)
#   RUNNEL_FUZZ_RUNS=N              reproducible: N mutations per target after the corpus replay
#   RUNNEL_FUZZ_SEED=1              reproducible: libFuzzer's seed
#   RUNNEL_FUZZ_TARGETS="a b"       run only these targets (default: every target)
#
# A crash leaves its input in broker/fuzz/artifacts/<target>/ and the command that reproduces it
# in the output (run it from the repository root with `--fuzz-dir broker/fuzz` added). Add the input to broker/fuzz/corpus/<target>/ once fixed, with a regression test
# in the crate that had the bug.
set -euo pipefail

cd "$(dirname "$0")/.."
FUZZ_DIR=broker/fuzz
SECONDS_PER_TARGET="${RUNNEL_FUZZ_SECONDS:-20}"
if [[ -n "${RUNNEL_FUZZ_RUNS:-}" ]]; then
    BUDGET=(-runs="$RUNNEL_FUZZ_RUNS" -seed="${RUNNEL_FUZZ_SEED:-1}")
    BUDGET_TEXT="the corpus, then $RUNNEL_FUZZ_RUNS runs from seed ${RUNNEL_FUZZ_SEED:-1}"
else
    BUDGET=(-max_total_time="$SECONDS_PER_TARGET")
    BUDGET_TEXT="${SECONDS_PER_TARGET}s"
fi
FLAGS=(--fuzz-dir "$FUZZ_DIR" --sanitizer none --debug-assertions)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz not found; installing it from crates.io"
    cargo install cargo-fuzz --locked
fi

# The fuzz package is its own workspace with its own target directory (broker/fuzz/target).
export CARGO_INCREMENTAL=0

read -r -a TARGETS <<<"${RUNNEL_FUZZ_TARGETS:-$(cargo fuzz list --fuzz-dir "$FUZZ_DIR" | tr '\n' ' ')}"

started=$SECONDS
echo "== building ${#TARGETS[@]} fuzz targets (${TARGETS[*]})"
cargo fuzz build "${FLAGS[@]}"
echo "== built in $((SECONDS - started))s"

failed=()
for target in "${TARGETS[@]}"; do
    seeds="$FUZZ_DIR/corpus/$target"
    # New inputs go to a scratch directory (libFuzzer writes into its first corpus directory),
    # so a run never changes the committed seeds.
    scratch="$(mktemp -d "${TMPDIR:-/tmp}/runnel-fuzz-$target.XXXXXX")"
    corpora=("$scratch")
    if [[ -d "$seeds" ]]; then
        corpora+=("$seeds")
    else
        echo "warning: no seed corpus for $target at $seeds"
    fi
    extra=()
    if [[ -f "$FUZZ_DIR/dict/$target.dict" ]]; then
        extra+=("-dict=$FUZZ_DIR/dict/$target.dict")
    fi
    echo "== fuzzing $target: $BUDGET_TEXT, from $seeds"
    t=$SECONDS
    if cargo fuzz run "${FLAGS[@]}" "$target" "${corpora[@]}" -- \
        "${BUDGET[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        ${extra[@]+"${extra[@]}"} >"$scratch.log" 2>&1; then
        echo "   $target: no crash ($(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$scratch.log" | tail -1 || true)," \
            "$(find "$scratch" -type f | wc -l) new inputs, $((SECONDS - t))s)"
    else
        echo "   $target: FAILED:"
        grep -E -A2 "panicked at|memory allocation of|ERROR: libFuzzer|SUMMARY: libFuzzer|Test unit written|cargo fuzz (run|tmin)" \
            "$scratch.log" | grep -vE "^\s+at |^--$" | head -n 30 || tail -n 40 "$scratch.log"
        failed+=("$target")
    fi
    rm -rf "$scratch" "$scratch.log"
done

echo "== fuzzing took $((SECONDS - started))s in total"
if ((${#failed[@]})); then
    echo "crashes in: ${failed[*]} (inputs under $FUZZ_DIR/artifacts/)" >&2
    exit 1
fi
echo "no crash in ${#TARGETS[@]} targets"
