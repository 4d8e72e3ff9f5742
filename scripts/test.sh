#!/usr/bin/env bash
# Runs every test: installs kcat (apt), the Python clients (PyPI) and KafkaJS (npm), then rustfmt, clippy,
# the Rust unit/integration tests, the fuzz targets (the committed corpus, then a fixed number of mutations from a fixed seed, so a
# run is reproducible; installs cargo-fuzz
# from crates.io if missing), checks cargo test built the binaries and runs the end-to-end suite with
# third-party Kafka clients against real broker processes.
#
# Environment:
#   RUNNEL_SKIP_INSTALL=1   skip apt-get, pip and npm (for repeated local runs)
#   RUNNEL_E2E_ARGS="..."   extra arguments for pytest (e.g. "-k crash -x")
#   RUNNEL_FUZZ_RUNS=1000000 mutations per fuzz target (seed RUNNEL_FUZZ_SEED, default 1)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$(pwd)"
START=$SECONDS

section() {
    printf '\n==================== %s (t+%ss) ====================\n' "$1" "$((SECONDS - START))"
}

if [[ "${RUNNEL_SKIP_INSTALL:-0}" != "1" ]]; then
    section "install system packages (apt-get: kcat, mount, iproute2)"
    SUDO=""
    if [[ "$(id -u)" != "0" ]]; then
        if command -v sudo >/dev/null 2>&1; then
            SUDO="sudo"
        else
            echo "need root (or sudo) for apt-get; rerun as root or with RUNNEL_SKIP_INSTALL=1" >&2
            exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends kcat mount iproute2

    section "install Python test dependencies (pip, e2e/requirements.txt)"
    # Debian's own python3 is "externally managed" (PEP 668); these are test-only packages.
    export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
    python3 -m pip install -r e2e/requirements.txt
    python3 -m pip install -r operator/tests/chart/requirements.txt

    section "install KafkaJS (npm ci --prefix e2e/kafkajs)"
    if ! command -v npm >/dev/null 2>&1; then
        $SUDO apt-get install -y --no-install-recommends nodejs npm
    fi
    npm ci --prefix e2e/kafkajs --no-audit --no-fund
else
    section "skipping apt-get/pip install (RUNNEL_SKIP_INSTALL=1)"
fi

# A test run builds everything once: incremental caches would only fill the disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

section "cargo fmt --check"
cargo fmt --all -- --check

section "cargo clippy (-D warnings)"
cargo clippy --workspace --all-targets -- -D warnings

section "cargo test"
cargo test --workspace

section "fuzz targets (corpus replay and a reproducible bounded run: scripts/fuzz.sh)"
RUNNEL_FUZZ_RUNS="${RUNNEL_FUZZ_RUNS:-1000000}" ./scripts/fuzz.sh
# Its target dir is only needed again for the next fuzz run; keep the disk clean.
rm -rf broker/fuzz/target

section "binaries and runnel-streams examples for the end-to-end suite (built by cargo test)"
# `cargo test` has already built every binary (each binary's package has integration tests) and
# every example into target/debug, with the dev-dependencies' features unified in. A separate
# `cargo build --bins` would compile most dependencies a second time for the other feature set
# (about 5 minutes here); those extra features (kube's client-side CEL, rcgen) add APIs only
# tests call. Refuse to go on if one is missing.
for bin in runnel-broker runnel runnel-agent runnel-operator examples/weather examples/payments; do
    if [[ ! -x "target/debug/$bin" ]]; then
        echo "target/debug/$bin is missing after cargo test" >&2
        exit 1
    fi
done

section "operator chart and manifests (helm-python-sdk, kubernetes-validate)"
python3 -m pytest operator/tests/chart -q

section "end-to-end tests (pytest e2e)"
export RUNNEL_BROKER_BIN="$ROOT/target/debug/runnel-broker"
export RUNNEL_CLI_BIN="$ROOT/target/debug/runnel"
export RUNNEL_STREAMS_EXAMPLES_DIR="$ROOT/target/debug/examples"
# pytest runs in its own process group (setsid), and whatever is left of that group when this
# script exits is killed: a pytest that dies (a client library's abort, Ctrl-C) never leaves its
# brokers and helper processes running behind it.
# --capture=sys: Python's output is captured per test, but what C libraries write to file
# descriptor 2 goes straight to this log. librdkafka prints its assertion ("*** file:line: assert:
# ... ***") there before it aborts the process, and fd-level capture would lose it with the process.
# shellcheck disable=SC2086 # RUNNEL_E2E_ARGS is deliberately word-split
setsid python3 -m pytest e2e --durations=15 --capture=sys ${RUNNEL_E2E_ARGS:-} &
E2E_PGID=$!
trap 'kill -KILL -- "-$E2E_PGID" 2>/dev/null || true' EXIT
wait "$E2E_PGID"

section "all tests passed in $((SECONDS - START))s"
