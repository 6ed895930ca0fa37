#!/usr/bin/env bash
# Soak: 15,000 WebSocket connections with churn (connect/close) and echo
# traffic against one release server, for a bounded time.
#
#   scripts/soak.sh [SECONDS] [BACKEND]     (default: 600 s, auto)
#   N=15000 CHURN=90 EVERY=2 WARMUP=60 scripts/soak.sh
#
# The clients (scripts/soak_clients.py, three processes from three source
# addresses, CHURN reconnects/s in total, one echo per connection every EVERY
# seconds on average) check every reply. Prints the server's RSS, open fds
# and error counts after the warm-up and at the end, every 30 s in between,
# and fails when any client saw an error or the server's RSS at the end is
# more than 10% above its post-warm-up level.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
backend=${2:-auto}
n=${N:-15000}
churn=${CHURN:-90}
every=${EVERY:-2}
warmup=${WARMUP:-60}
procs=3
port=${PORT:-9401}
(( secs > warmup )) || { echo "SECONDS must exceed the warm-up ($warmup s)" >&2; exit 2; }

cargo build --release --quiet
[ -x .venv/bin/python ] || python3 -m venv .venv
py=.venv/bin/python

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }
errors() {
    # Server-side errors: protocol closes and refused handshakes so far.
    curl -s "http://127.0.0.1:$port/metrics" | awk '
        /^ringwave_closes_total\{code="(1002|1006|1007|1008|1009|1011|other)"\}/ { c += $2 }
        /^ringwave_rejects_total/ { r += $2 }
        /^ringwave_connections_open / { open = $2 }
        END { printf "open %d, abnormal/error closes %d, refused %d", open, c, r }'
}

target/release/ringwave --listen "127.0.0.1:$port" --backend "$backend" --feed-sim off \
    --log-level warn >/dev/null &
srv=$!
cleanup() { kill "${clients[@]}" 2>/dev/null || true; kill "$srv" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.1
done

out=$(mktemp -d)
clients=()
for p in $(seq 1 $procs); do
    "$py" scripts/soak_clients.py 127.0.0.1 "$port" $((n / procs)) "$secs" "127.0.0.$((10 + p))" \
        "$(awk -v c="$churn" -v p=$procs 'BEGIN { print c / p }')" "$every" \
        >"$out/$p.out" 2>"$out/$p.err" &
    clients+=($!)
done
start=$(date +%s)
report() { printf '%5ss  RSS %7d KiB  fds %6d  %s\n' "$(( $(date +%s) - start ))" "$(rss_kib $srv)" "$(fds $srv)" "$(errors)"; }

sleep "$warmup"
report
base_rss=$(rss_kib "$srv")
base_fds=$(fds "$srv")
echo "   (post-warm-up baseline: RSS $base_rss KiB, $base_fds fds)"
# Sample every 30 s; the last sample (the end figures) 5 s before the
# clients stop, while all connections are still open.
while (( $(date +%s) - start < secs - 5 )); do
    left=$(( secs - 5 - ($(date +%s) - start) ))
    sleep $(( left < 30 ? left : 30 ))
    report
done
end_rss=$(rss_kib "$srv")
end_fds=$(fds "$srv")
status=0
for i in "${!clients[@]}"; do
    wait "${clients[$i]}" || status=1
done
report
echo "clients (connects, closes, echoes, errors per process):"
for p in $(seq 1 $procs); do
    tail -n 1 "$out/$p.out"
    head -n 5 "$out/$p.err"
done
kill -0 "$srv" || { echo "FAIL: the server died" >&2; exit 1; }
awk -v a="$base_rss" -v b="$end_rss" -v fa="$base_fds" -v fb="$end_fds" 'BEGIN {
    printf "RSS after warm-up %.1f MiB, at the end %.1f MiB (%+.1f%%); fds %d -> %d\n",
           a/1024, b/1024, (b-a)*100/a, fa, fb }'
if (( end_rss * 10 > base_rss * 11 )); then
    echo "FAIL: RSS grew more than 10% after the warm-up" >&2
    status=1
fi
[ "$status" -eq 0 ] && echo "soak passed" || echo "FAIL: clients saw errors (see above)" >&2
rm -rf "$out"
exit "$status"
