#!/usr/bin/env bash
# What topic history costs and what it buys, on both backends, one worker
# pinned to CPU 0 and the generator on CPU 1, runs interleaved:
#
#   fan-out   ringwave-bench ws-fanout: 10,000 /feed subscribers (HTTP/1.1),
#             one publisher at 100/s (1M deliveries/s offered), 100 B, with
#             --history bench=1000 and without: delivered/s, p99, server CPU
#             per delivery.
#   recover   ringwave-bench recover: the same 10,000 subscribers leave, miss
#             1,000 publications, and all reconnect at once with their last
#             position: time until each caught up (p50, p99, the last), the
#             server's CPU over the storm, per replayed publication.
#
#   scripts/bench-history.sh [--quick] [--repeats N] [--subscribers N] [--missed N]
#
# --quick: 1 repeat of 3 s fan-outs. Default: 3 repeats, 5 s.
# Report: bench-results/<timestamp>-history/report.md, fanout.csv, recover.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh

repeats=3
secs=5
subscribers=10000
missed=1000
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) repeats=1; secs=3 ;;
        --repeats) repeats="$2"; shift ;;
        --subscribers) subscribers="$2"; shift ;;
        --missed) missed="$2"; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
cargo build --release --quiet --bin ringwave
cargo build --release --quiet -p bench-harness --bin ringwave-bench
ulimit -n 20000
out="bench-results/$(date -u +%Y%m%dT%H%M%SZ)-history"
mkdir -p "$out"

start_server() { # backend [args...]: sets port and pid
    local backend=$1; shift
    port=$(free_port)
    taskset -c 0 target/release/ringwave --backend "$backend" --threads 1 \
        --listen "127.0.0.1:$port" --allow-client-publish --feed-sim off \
        --slow-consumer drop --log-level warn "$@" >/dev/null 2>&1 &
    pid=$!
    wait_port "$port" "ringwave ($backend)"
}
stop_server() { kill "$pid"; wait "$pid" 2>/dev/null || true; }
f() { grep -oP "$1" <<<"$line" | head -1; }

echo "backend,history,repeat,delivered_per_s,p99_us,missing,cpu_ns_per_delivery" > "$out/fanout.csv"
echo "backend,repeat,total_ms,p50_ms,p99_ms,recovered,wrong,server_cpu_ms,ns_per_replayed,generator_pct" > "$out/recover.csv"
for r in $(seq 1 "$repeats"); do
    for backend in uring poll; do
        for history in off on; do
            args=(); [ "$history" = on ] && args=(--history bench=1000)
            start_server "$backend" "${args[@]}"
            line=$(taskset -c 1 target/release/ringwave-bench ws-fanout --addr "127.0.0.1:$port" \
                -n "$subscribers" -r 100 -t "$secs" --server-pid "$pid" \
                --label "$backend-history-$history" 2>/dev/null | tail -1)
            echo "$line"
            stop_server
            echo "$backend,$history,$r,$(f 'delivered \K[0-9.]+'),$(f 'p99 \K[0-9.]+'),$(f 'missing \K[0-9]+'),$(f ', \K[0-9]+(?= ns per delivery)')" >> "$out/fanout.csv"
        done
        start_server "$backend" --history "bench=$((missed + 10))"
        line=$(taskset -c 1 target/release/ringwave-bench recover --addr "127.0.0.1:$port" \
            -n "$subscribers" -m "$missed" --server-pid "$pid" --label "$backend" 2>&1 | tail -1)
        echo "$line"
        stop_server
        echo "$backend,$r,$(f 'caught up in \K[0-9]+'),$(f 'p50 \K[0-9]+'),$(f 'p99 \K[0-9]+'),$(f 'recovered \K[0-9]+'),$(f 'wrong \K[0-9]+'),$(f 'server CPU \K[0-9]+'),$(f ', \K[0-9]+(?= ns per replayed)'),$(f 'generator CPU \K[0-9]+')" >> "$out/recover.csv"
    done
done

python3 - "$out" "$repeats" "$subscribers" "$missed" <<'PY'
import csv, statistics, sys
out, repeats, subs, missed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
med = statistics.median
def rng(v, fmt="{:,.0f}"):
    return f"{fmt.format(med(v))} ({fmt.format(min(v))}-{fmt.format(max(v))})"
lines = [f"# Topic history: fan-out with and without, and a reconnect storm\n",
         f"{repeats} interleaved repeats; one worker on CPU 0, ringwave-bench on CPU 1. Medians (min-max).\n",
         f"## Fan-out: {subs:,} /feed subscribers, one publisher at 100/s, 100 B\n",
         "| backend | history | delivered/s | p99 | server CPU per delivery | missing |",
         "|---|---|---:|---:|---:|---:|"]
groups = {}
for r in csv.DictReader(open(f"{out}/fanout.csv")):
    groups.setdefault((r["backend"], r["history"]), []).append(r)
for (b, h), rs in groups.items():
    d = [float(r["delivered_per_s"] or 0) for r in rs]
    p99 = [float(r["p99_us"] or 0) / 1000 for r in rs]
    ns = [float(r["cpu_ns_per_delivery"] or 0) for r in rs]
    miss = sum(int(r["missing"] or 0) for r in rs)
    lines.append(f"| {b} | {h} | {rng(d)} | {rng(p99, '{:.1f}')} ms | {rng(ns)} ns | {miss} |")
lines += ["", f"## Reconnect storm: {subs:,} subscribers back at once, {missed:,} publications behind\n",
          "| backend | all caught up | p50 | p99 | recovered | wrong | server CPU | per replayed publication | generator CPU |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
groups = {}
for r in csv.DictReader(open(f"{out}/recover.csv")):
    groups.setdefault(r["backend"], []).append(r)
for b, rs in groups.items():
    col = lambda k: [float(r[k] or 0) for r in rs]
    lines.append(f"| {b} | {rng(col('total_ms'))} ms | {rng(col('p50_ms'))} ms | {rng(col('p99_ms'))} ms "
                 f"| {int(min(col('recovered')))}/{subs} | {int(sum(col('wrong')))} | {rng(col('server_cpu_ms'))} ms "
                 f"| {rng(col('ns_per_replayed'))} ns | {med(col('generator_pct')):.0f}% |")
open(f"{out}/report.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
print(f"\nreport: {out}/report.md")
PY
