#!/usr/bin/env bash
# Memory per idle connection: RSS of a one-worker ringwave before and after N
# idle WebSocket connections (default 15000), for each backend.
#
#   scripts/idle-rss.sh [N] [BACKEND...]      (backends default: uring poll)
#
# Server on CPU 0, clients on CPU 1. Needs the venv that scripts/test.sh
# creates (for Python) and a release build (built here).
#
# Past 15,000 connections the io_uring server runs one worker per 15,000
# (a ring's fixed file table holds 20,000), all on CPU 0, and the clients are
# ringwave-bench idle over several processes and source addresses; poll needs
# a descriptor per connection, so it stops at 19,000.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-15000}
shift || true
backends=("$@")
[ ${#backends[@]} -gt 0 ] || backends=(uring poll)
cargo build --release --quiet
[ "$n" -le 19000 ] || cargo build --release --quiet -p bench-harness
py=.venv/bin/python
[ -x "$py" ] || { python3 -m venv .venv; .venv/bin/pip install --quiet -r tests/python/requirements.txt; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# RSS once it has settled: io_uring's buffer pools give back what traffic
# (the handshakes) made resident within a few seconds of going quiet, so both
# samples wait until RSS holds still for 2 s (sampled every 0.5 s, 20 s at most).
settled_rss_kib() {
    local last=-1 same=0 now
    for _ in $(seq 40); do
        now=$(rss_kib "$1")
        if [ "$now" = "$last" ]; then same=$((same + 1)); else same=0; fi
        [ "$same" -ge 4 ] && break
        last=$now
        sleep 0.5
    done
    echo "$now"
}
port=9301
for b in "${backends[@]}"; do
    port=$((port + 1))
    workers=$(( (n + 14999) / 15000 ))
    if [ "$n" -gt 19000 ] && [ "$b" = poll ]; then
        echo "poll    $n idle connections: skipped (poll needs a descriptor per connection; the limit here is 20,000)"
        continue
    fi
    taskset -c 0 target/release/ringwave --listen "127.0.0.1:$port" --backend "$b" --threads "$workers" \
        --log-level warn >/dev/null &
    srv=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.05
    done
    # Warm up: one round of connections opened and closed, so allocator
    # arenas and the connection table exist before the baseline.
    taskset -c 1 "$py" scripts/idle_clients.py 127.0.0.1 "$port" 1000 0 </dev/null >/dev/null
    before=$(settled_rss_kib "$srv")
    fifo=$(mktemp -u); mkfifo "$fifo"
    if [ "$n" -le 19000 ]; then
        taskset -c 1 "$py" scripts/idle_clients.py 127.0.0.1 "$port" "$n" 600 <"$fifo" >"$fifo.out" &
    else
        taskset -c 1 target/release/ringwave-bench idle --url "ws://127.0.0.1:$port/idle" -n "$n" \
            -t 600 --sources 8 --quiet <"$fifo" >"$fifo.out" &
    fi
    clients=$!
    exec 4>"$fifo"
    until grep -q "^open" "$fifo.out" 2>/dev/null; do
        kill -0 "$clients" 2>/dev/null || { echo "clients failed"; cat "$fifo.out"; exit 1; }
        sleep 0.2
    done
    after=$(settled_rss_kib "$srv")
    fds=$(ls "/proc/$srv/fd" | wc -l)
    exec 4>&-
    wait "$clients" || true
    rm -f "$fifo" "$fifo.out"
    kill -TERM "$srv"; wait "$srv" || true
    awk -v b="$b" -v n="$n" -v x="$before" -v y="$after" -v f="$fds" -v w="$workers" 'BEGIN {
        printf "%-6s %6d idle connections: RSS %.1f MiB -> %.1f MiB, %.0f bytes per connection (%d fds open, %d workers)\n",
               b, n, x/1024, y/1024, (y-x)*1024/n, f, w }'
done
