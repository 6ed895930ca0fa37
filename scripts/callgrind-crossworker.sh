#!/usr/bin/env bash
# What the path between workers costs per delivery, in user-space
# instructions (a count the machine's noise does not move): the fan-out
# server under callgrind with one worker and with two, 100 subscribers (spread
# over the workers by SO_REUSEPORT) and one publisher at 20 publications a
# second, each run twice, of 4 s and of 12 s after a 2 s warm-up, so that
# start-up and connecting cancel out:
#
#   Ir per delivery = (Ir(12 s) - Ir(4 s)) / (100 x 20 x 8)
#
# With two workers about half the subscribers are on the worker the
# publisher is not on: each publication crosses once (its mailbox, a wake),
# and the difference between the two figures is that path's share.
#
#   scripts/callgrind-crossworker.sh [BIN] [REPEATS]
#
# BIN defaults to target/release/ringwave (built if missing); the poll
# backend (under valgrind an io_uring server may not exit on SIGTERM).
# Needs valgrind. Prints one line per run and the per-delivery figures.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/ringwave}
repeats=${2:-2}
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }
[ -x "$bin" ] || cargo build --release --quiet --bin ringwave -p ringwave
cargo build --release --quiet -p bench-harness --bin ringwave-bench
work=$(mktemp -d)
port=9640

# run THREADS SECS: the server's total instructions over one run.
run() {
    local threads=$1 secs=$2 out
    port=$((port + 1))
    out="$work/callgrind-$threads-$secs-$port.out"
    taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --feed-sim off \
        --allow-client-publish --slow-consumer drop --log-level warn --backend poll \
        --threads "$threads" --listen "127.0.0.1:$port" >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    taskset -c 1 timeout 120 target/release/ringwave-bench fanout -n 100 -r 20 -s 100 -t "$secs" \
        --warmup 2 --url "ws://127.0.0.1:$port/feed" --label "cg-$threads" --quiet >"$work/gen.txt" 2>&1
    grep -q "received $((100 * 20 * secs)) of $((100 * 20 * secs))" "$work/gen.txt" \
        || { echo "the run lost deliveries: $(head -1 "$work/gen.txt")" >&2; exit 1; }
    kill -TERM "$pid"
    wait "$pid" || true
    awk '/^summary:/ {print $2}' "$out"
}

for r in $(seq "$repeats"); do
    for threads in 1 2; do
        short=$(run "$threads" 4)
        long=$(run "$threads" 12)
        per=$(( (long - short) / (100 * 20 * 8) ))
        echo "repeat $r, $threads worker(s): Ir(4 s)=$short Ir(12 s)=$long -> $per Ir per delivery"
    done
done
