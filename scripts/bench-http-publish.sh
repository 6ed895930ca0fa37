#!/usr/bin/env bash
# Publishing over HTTP/1.1 (POST /publish/<topic>, a 10-byte JSON body),
# measured with h2load (Debian's nghttp2-client), with one connection kept
# alive for every request against a new connection per request
# (`Connection: close`: the server answers and closes, h2load connects
# again), for
#   c1    one publisher sending one request at a time (a backend's loop)
#   c10   ten such publishers at once
# on both backends, one worker pinned to CPU 0, h2load on CPU 1. Runs are
# interleaved (every case once, then again) and the report gives medians
# with the min-max range of publications/s and of server CPU per
# publication (the server's user+system time over the run, from /proc).
#
#   scripts/bench-http-publish.sh [--repeats N] [--requests N]
#
# Default: 5 repeats of 20,000 requests per case.
# Report: bench-results/<timestamp>-http-publish/report.md and results.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh

repeats=5
requests=20000
while [ $# -gt 0 ]; do
    case "$1" in
        --repeats) repeats="$2"; shift ;;
        --requests) requests="$2"; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
command -v h2load >/dev/null || { echo "h2load missing: apt-get install -y nghttp2-client" >&2; exit 1; }
cargo build --release --quiet --bin ringwave
out="bench-results/$(date -u +%Y%m%dT%H%M%SZ)-http-publish"
mkdir -p "$out"
printf '{"px":1.5}' > "$out/body.json"
tick_ns=$(( 1000000000 / $(getconf CLK_TCK) ))
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
conns() { curl -s "http://127.0.0.1:$1/metrics" | awk '/^ringwave_connections_total /{print $2}'; }

echo "backend,case,clients,repeat,pub_per_s,cpu_ns_per_pub,connections,failed" > "$out/results.csv"
for r in $(seq 1 "$repeats"); do
    for backend in uring poll; do
        port=$(free_port)
        taskset -c 0 target/release/ringwave --backend "$backend" --threads 1 \
            --listen "127.0.0.1:$port" --allow-client-publish --feed-sim off \
            --log-level warn >/dev/null 2>&1 &
        pid=$!
        wait_port "$port"
        for clients in 1 10; do
            for case in keepalive close; do
                args=(--h1 -n "$requests" -c "$clients" -m 1 -d "$out/body.json")
                [ "$case" = close ] && args+=(-H "Connection: close")
                c0=$(conns "$port")
                before=$(cpu_ticks "$pid")
                line=$(taskset -c 1 timeout 300 h2load "${args[@]}" "http://127.0.0.1:$port/publish/t" 2>&1)
                after=$(cpu_ticks "$pid")
                c1=$(conns "$port")
                rps=$(grep -oP 'finished in [0-9.]+m?s, \K[0-9.]+' <<<"$line")
                failed=$(grep -oP 'succeeded, \K[0-9]+(?= failed)' <<<"$line")
                ns=$(( (after - before) * tick_ns / requests ))
                # The connections the run opened (the /metrics request
                # before it is one of them).
                opened=$(( ${c1%.*} - ${c0%.*} - 1 ))
                echo "$backend,$case,$clients,$r,$rps,$ns,$opened,$failed" >> "$out/results.csv"
                printf '%-6s %-9s c%-3s repeat %d: %8.0f publications/s, %6d ns server CPU each, %6d connections, %s failed\n' \
                    "$backend" "$case" "$clients" "$r" "$rps" "$ns" "$opened" "$failed"
            done
        done
        kill "$pid"; wait "$pid" 2>/dev/null || true
    done
done

python3 - "$out" "$repeats" "$requests" <<'EOF'
import csv, statistics, sys
out, repeats, requests = sys.argv[1], sys.argv[2], sys.argv[3]
rows = list(csv.DictReader(open(f"{out}/results.csv")))
groups = {}
for r in rows:
    groups.setdefault((r["backend"], r["clients"], r["case"]), []).append(r)
lines = ["# Publishing over HTTP/1.1: one kept-alive connection against a new connection per request (h2load)\n",
         f"{repeats} interleaved repeats of {requests} `POST /publish/t` (10-byte body) per case; "
         "server: one worker on CPU 0, h2load on CPU 1. Medians, with the min-max range; "
         "server CPU is user+system time per publication.\n",
         "| backend | publishers | connections | publications/s | server CPU per publication | connections opened | failed |",
         "|---|---:|---|---:|---:|---:|---:|"]
med = {}
for (backend, clients, case), rs in sorted(groups.items()):
    rps = [float(r["pub_per_s"]) for r in rs]
    ns = [int(r["cpu_ns_per_pub"]) for r in rs]
    opened = statistics.median(int(r["connections"]) for r in rs)
    failed = sum(int(r["failed"] or 0) for r in rs)
    med[(backend, clients, case)] = (statistics.median(rps), statistics.median(ns))
    label = "one kept alive" if case == "keepalive" else "new per request"
    lines.append(f"| {backend} | {clients} | {label} | {statistics.median(rps):,.0f} ({min(rps):,.0f}-{max(rps):,.0f}) "
                 f"| {statistics.median(ns)/1000:.1f} µs ({min(ns)/1000:.1f}-{max(ns)/1000:.1f}) | {opened:,.0f} | {failed} |")
lines.append("\nKept alive against a new connection per request (ratio of the medians):\n")
for (backend, clients, case), (rps, ns) in sorted(med.items()):
    if case != "keepalive":
        continue
    crps, cns = med[(backend, clients, "close")]
    lines.append(f"- {backend}, {clients} publisher(s): {rps / crps:.2f}x the publications/s, "
                 f"{ns / cns:.2f}x the server CPU per publication")
open(f"{out}/report.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
