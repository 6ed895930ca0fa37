#!/usr/bin/env bash
# HTTP/2 beside HTTP/1.1 on the same server, measured with h2load (Debian's
# nghttp2-client): the page (GET /, about 5 KB) and /healthz, over
#   h2      cleartext HTTP/2 by prior knowledge, 10 connections x 10 streams
#   h2-tls  HTTP/2 over TLS (ALPN h2), 10 connections x 10 streams
#   h1      HTTP/1.1, 10 connections kept alive (before 496946c ringwave
#           answered a plain HTTP request and closed, so runs of earlier
#           commits opened a connection per request)
# on both backends, one worker pinned to CPU 0, h2load on CPU 1. Runs are
# interleaved (every case once, then again) and the report gives medians
# with the min-max range of requests/s and of server CPU per request (the
# server's user+system time over the run, from /proc).
#
# Then fan-out to SSE streams (ringwave-bench sse-fanout) and to /feed
# WebSockets (ringwave-bench ws-fanout; over HTTP/2 RFC 8441 streams):
# 10,000 subscribers as 100 HTTP/2 connections x 100 streams against 10,000
# HTTP/1.1 connections, one publisher at 100/s (1M deliveries/s offered)
# over HTTP/2, 100-byte payloads: delivered/s, p50/p99, server CPU per
# delivery and the server's RSS, interleaved the same way. The generator needs 10,000 descriptors:
# the script raises its own soft limit (ulimit -n).
#
#   scripts/bench-h2.sh [--quick] [--repeats N] [--requests N]
#                       [--subscribers N] [--rate R] [--no-fanout]
#
# --quick: 2 repeats of 20,000 requests and 3 s fan-outs. Default: 5 repeats
# of 100,000 requests and 5 s fan-outs.
# Report: bench-results/<timestamp>-h2/report.md, results.csv, fanout.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh

repeats=5
requests=100000
secs=5
subscribers=10000
rate=100
fanout=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) repeats=2; requests=20000; secs=3 ;;
        --repeats) repeats="$2"; shift ;;
        --requests) requests="$2"; shift ;;
        --subscribers) subscribers="$2"; shift ;;
        --rate) rate="$2"; shift ;;
        --no-fanout) fanout=0 ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
command -v h2load >/dev/null || { echo "h2load missing: apt-get install -y nghttp2-client" >&2; exit 1; }
cargo build --release --quiet --bin ringwave
cargo build --release --quiet -p bench-harness --bin ringwave-bench
ulimit -n 20000
out="bench-results/$(date -u +%Y%m%dT%H%M%SZ)-h2"
mkdir -p "$out"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$out/key.pem" -out "$out/cert.pem" 2>/dev/null
tick_ns=$(( 1000000000 / $(getconf CLK_TCK) ))
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

echo "backend,case,path,repeat,req_per_s,cpu_ns_per_req,failed" > "$out/results.csv"
for r in $(seq 1 "$repeats"); do
    for backend in uring poll; do
        port=$(free_port); tport=$(free_port)
        taskset -c 0 target/release/ringwave --backend "$backend" --threads 1 \
            --listen "127.0.0.1:$port" --tls-listen "127.0.0.1:$tport" \
            --tls-cert "$out/cert.pem" --tls-key "$out/key.pem" \
            --log-level warn >/dev/null 2>&1 &
        pid=$!
        wait_port "$port"
        for case in h2 h2-tls h1; do
            for path in /healthz /; do
                case "$case" in
                    h2) args=(-c 10 -m 10 "http://127.0.0.1:$port$path") ;;
                    h2-tls) args=(-c 10 -m 10 "https://127.0.0.1:$tport$path") ;;
                    h1) args=(--h1 -c 10 -m 1 "http://127.0.0.1:$port$path") ;;
                esac
                before=$(cpu_ticks "$pid")
                line=$(taskset -c 1 h2load -n "$requests" "${args[@]}" 2>&1)
                after=$(cpu_ticks "$pid")
                rps=$(grep -oP 'finished in [0-9.]+m?s, \K[0-9.]+' <<<"$line")
                failed=$(grep -oP 'succeeded, \K[0-9]+(?= failed)' <<<"$line")
                ns=$(( (after - before) * tick_ns / requests ))
                echo "$backend,$case,$path,$r,$rps,$ns,$failed" >> "$out/results.csv"
                printf '%-6s %-7s %-9s repeat %d: %10.0f req/s, %6d ns server CPU per request, %s failed\n' \
                    "$backend" "$case" "$path" "$r" "$rps" "$ns" "$failed"
            done
        done
        kill "$pid"; wait "$pid" 2>/dev/null || true
    done
done

echo "backend,kind,protocol,repeat,delivered_per_s,p50_us,p99_us,missing,cpu_ns_per_delivery,rss_mib" > "$out/fanout.csv"
if [ "$fanout" = 1 ]; then
    for r in $(seq 1 "$repeats"); do
        for backend in uring poll; do
          for kind in sse ws; do
            for proto in h2 h1; do
                port=$(free_port)
                taskset -c 0 target/release/ringwave --backend "$backend" --threads 1 \
                    --listen "127.0.0.1:$port" --allow-client-publish --feed-sim off \
                    --slow-consumer drop --log-level warn >/dev/null 2>&1 &
                pid=$!
                wait_port "$port"
                per=100; [ "$proto" = h1 ] && per=0
                line=$(taskset -c 1 target/release/ringwave-bench "$kind-fanout" --addr "127.0.0.1:$port" \
                    -n "$subscribers" --streams-per-conn "$per" -r "$rate" -t "$secs" \
                    --server-pid "$pid" --label "$backend-$proto" 2>/dev/null | tail -1)
                echo "$line"
                kill "$pid"; wait "$pid" 2>/dev/null || true
                f() { grep -oP "$1" <<<"$line" | head -1; }
                echo "$backend,$kind,$proto,$r,$(f 'delivered \K[0-9.]+'),$(f 'p50 \K[0-9.]+'),$(f 'p99 \K[0-9.]+'),$(f 'missing \K[0-9]+'),$(f ', \K[0-9]+(?= ns per delivery)'),$(f 'RSS \K[0-9.]+')" >> "$out/fanout.csv"
            done
          done
        done
    done
fi

python3 - "$out" "$repeats" "$requests" "$subscribers" "$rate" <<'EOF'
import csv, statistics, sys
out, repeats, requests = sys.argv[1], sys.argv[2], sys.argv[3]
rows = list(csv.DictReader(open(f"{out}/results.csv")))
groups = {}
for r in rows:
    groups.setdefault((r["backend"], r["path"], r["case"]), []).append(r)
lines = [f"# HTTP/2 beside HTTP/1.1 (h2load)\n",
         f"{repeats} interleaved repeats of {requests} requests; server: one worker on CPU 0, h2load on CPU 1.",
         "Medians, with the min-max range; server CPU is user+system time per request.\n",
         "| backend | path | protocol | requests/s | server CPU per request | failed |",
         "|---|---|---|---:|---:|---:|"]
for (backend, path, case), rs in groups.items():
    rps = [float(r["req_per_s"]) for r in rs]
    ns = [int(r["cpu_ns_per_req"]) for r in rs]
    failed = sum(int(r["failed"] or 0) for r in rs)
    lines.append(f"| {backend} | `{path}` | {case} | {statistics.median(rps):,.0f} ({min(rps):,.0f}-{max(rps):,.0f}) "
                 f"| {statistics.median(ns)/1000:.1f} µs ({min(ns)/1000:.1f}-{max(ns)/1000:.1f}) | {failed} |")
subs, rate = sys.argv[4], sys.argv[5]
fan = list(csv.DictReader(open(f"{out}/fanout.csv")))
if fan:
    lines += ["", f"## Fan-out: {int(subs):,} subscribers, one publisher at {rate}/s, 100 B", "",
              "SSE streams or /feed WebSockets. HTTP/2: 100 streams per connection; HTTP/1.1: a connection per subscriber. Medians (min-max).", "",
              "| backend | subscribers | protocol | delivered/s | p50 | p99 | server CPU per delivery | server RSS | missing |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    fg = {}
    for r in fan:
        fg.setdefault((r["backend"], r["kind"], r["protocol"]), []).append(r)
    def col(rs, k, f=float):
        v = [f(r[k]) for r in rs if r[k]]
        return v or [0]
    for (backend, kind, proto), rs in fg.items():
        d, p50, p99 = col(rs, "delivered_per_s"), col(rs, "p50_us"), col(rs, "p99_us")
        ns, rss, miss = col(rs, "cpu_ns_per_delivery"), col(rs, "rss_mib"), col(rs, "missing", int)
        med = statistics.median
        lines.append(f"| {backend} | {'SSE' if kind == 'sse' else 'WebSocket'} | {'HTTP/2' if proto == 'h2' else 'HTTP/1.1'} | {med(d):,.0f} ({min(d):,.0f}-{max(d):,.0f}) "
                     f"| {med(p50)/1000:.1f} ms | {med(p99)/1000:.1f} ms ({min(p99)/1000:.1f}-{max(p99)/1000:.1f}) "
                     f"| {med(ns):,.0f} ns ({min(ns):,.0f}-{max(ns):,.0f}) | {med(rss):.1f} MiB | {sum(miss)} |")
open(f"{out}/report.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
print(f"\nreport: {out}/report.md")
EOF
