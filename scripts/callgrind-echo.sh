#!/usr/bin/env bash
# User-space instructions per echoed message, a count that does not move
# with the machine's noise: one server (one thread) under callgrind, the
# generator echoing 100 connections x 20 B for 6 s, total instructions over
# the server's ringwave_messages_in_total.
#
#   scripts/callgrind-echo.sh BIN [poll|uring] [PORT]
#
# Prints "BIN BACKEND messages=N Ir=N Ir/msg=N". Run it for two builds (say,
# target/release/ringwave and a baseline built in a git worktree) one after
# the other; startup is counted too, and is small beside 500,000 messages.
# Needs valgrind (apt-get install valgrind). Under valgrind an io_uring
# server may not exit on SIGTERM: it is killed after 10 s, and its count is
# then lost (poll is the reliable backend here).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:?usage: scripts/callgrind-echo.sh BIN [poll|uring] [PORT]}
backend=${2:-poll}
port=${3:-9590}
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 2; }
cargo build --release --quiet -p bench-harness --bin ringwave-bench
source scripts/common.sh
out=$(mktemp -d)/callgrind.out
taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --listen "127.0.0.1:$port" \
    --threads 1 --backend "$backend" --feed-sim off --log-level warn >/dev/null 2>&1 &
pid=$!
for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
taskset -c 1 target/release/ringwave-bench echo --url "ws://127.0.0.1:$port/" -c 100 -s 20 -t 6 --warmup 1 --quiet >/dev/null
messages=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^ringwave_messages_in_total/ {print $2}')
kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -KILL "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
ir=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
[ -n "$ir" ] || { echo "no count (the server did not exit cleanly under valgrind)" >&2; exit 1; }
echo "$bin $backend messages=$messages Ir=$ir Ir/msg=$((ir / messages))"
