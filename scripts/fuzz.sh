#!/usr/bin/env bash
# Coverage-guided fuzzing of the protocol core and the server side of TLS
# with cargo-fuzz (libFuzzer).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Runs each TARGET (default: handshake conn_server inflate mask utf8
# tls_server h2_frames hpack h2_session http_loop) for SECONDS (default 600) one after the other, starting from
# the seed inputs in
# fuzz/seeds/. Stops at the first crash, leaving the input in
# fuzz/artifacts/TARGET/. cargo-fuzz needs nightly flags: the stable toolchain
# accepts them with RUSTC_BOOTSTRAP=1. Set FUZZ_CPU=N to pin to one CPU.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(handshake conn_server inflate mask utf8 tls_server h2_frames hpack h2_session http_loop)

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
pin=()
[ -n "${FUZZ_CPU:-}" ] && pin=(taskset -c "$FUZZ_CPU")

cd fuzz
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    [ -d "seeds/$t" ] && cp -n "seeds/$t"/* "corpus/$t/" 2>/dev/null || true
    echo "==> fuzzing $t for ${secs}s"
    start=$(date +%s)
    log="artifacts/$t.log"
    mkdir -p artifacts
    status=0
    "${pin[@]}" cargo fuzz run -O "$t" "corpus/$t" -- \
        -max_total_time="$secs" -max_len=4096 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E "^Done [0-9]+ runs|^stat::number_of_executed_units|^stat::peak_rss|ERROR|panicked|SUMMARY|Test unit written" "$log" || true
    echo "==> $t: exit $status after $(( $(date +%s) - start ))s (full log: fuzz/$log)"
    [ "$status" -eq 0 ] || exit "$status"
done
