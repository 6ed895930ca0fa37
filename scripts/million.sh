#!/usr/bin/env bash
# Hold a million WebSocket connections (or N) on one ringwave process and
# print the checkpoint table and a chart of server RSS against connections.
#
#   scripts/million.sh [N] [--backend uring|poll] [--rate R] [--hold SECONDS]
#                      [--threads W]
#
# Defaults: N 1,000,000, io_uring, 20,000 new connections/s, held 60 s. The
# server runs on CPU 0 with W workers (default: one per 15,625 connections,
# at least one per CPU): on io_uring each worker's ring holds its sockets as
# direct descriptors, up to the open-file limit each (20,000 here), outside
# the process's descriptor table. poll needs a descriptor per connection, so
# there N must stay under the limit. The generator (ringwave-bench hold) runs
# on CPU 1, spread over processes of 19,000 connections with four loopback
# source addresses each (127.1.0.1 on).
#
# System settings it needs, set for the run and restored on exit (it says
# which): net.ipv4.ip_local_port_range at least 1024-65535,
# net.core.somaxconn and net.ipv4.tcp_max_syn_backlog at least 4096,
# fs.file-max above two sockets per connection. Needs root to change them;
# without root it names what is missing. Needs about 12 KB of memory per
# connection (both ends' kernel sockets, about 9.3 KB, and both processes).
#
# Bounded: the generator stops after 540 s whatever it reached, and the
# whole run is killed after 600 s. Results go to bench-results/<time>-million/.
set -euo pipefail
cd "$(dirname "$0")/.."

n=1000000
backend=uring
rate=20000
hold=60
threads=
while [ $# -gt 0 ]; do
    case "$1" in
        --backend) backend=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        --hold) hold=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        [0-9]*) n=$1; shift ;;
        *) echo "million.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
limit=$(ulimit -n)
if [ "$backend" = poll ] && [ "$n" -gt $((limit - 100)) ]; then
    echo "million.sh: poll needs one descriptor per connection; the limit is $limit, so N must stay under $((limit - 100))" >&2
    exit 2
fi
cpus=$(nproc)
if [ -z "$threads" ]; then
    threads=$(( (n + 15624) / 15625 ))
    [ "$threads" -ge "$cpus" ] || threads=$cpus
    [ "$backend" = poll ] && threads=1
fi
per_process=$(( limit - 1000 < 19000 ? limit - 1000 : 19000 ))

need_kib=$(( n * 12 ))
avail_kib=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
if [ "$avail_kib" -lt "$need_kib" ]; then
    echo "million.sh: $n connections need about $((need_kib / 1024)) MiB; $((avail_kib / 1024)) MiB are available" >&2
    exit 1
fi

# sysctl NAME WANT CHECK: set NAME to WANT when CHECK (a test on the current
# value $v) fails; remember the old value to restore.
restore=()
setting() {
    local name=$1 want=$2 check=$3 v
    v=$(sysctl -n "$name" | tr -s '\t' ' ')
    if eval "$check"; then return 0; fi
    if [ "$(id -u)" != 0 ]; then
        echo "million.sh: needs $name = $want (it is $v); run as root or set it first" >&2
        exit 1
    fi
    echo "setting $name = $want (was $v; restored on exit)"
    sysctl -q -w "$name=$want"
    restore+=("$name=$v")
}
cleanup() {
    [ -n "${srv:-}" ] && kill -KILL "$srv" 2>/dev/null || true
    wait 2>/dev/null || true
    for r in "${restore[@]}"; do
        echo "restoring ${r%%=*}"
        sysctl -q -w "$r" || true
    done
}
trap cleanup EXIT
setting net.ipv4.ip_local_port_range "1024 65535" '[ "${v%% *}" -le 1024 ] && [ "${v##* }" -ge 65535 ]'
setting net.core.somaxconn 4096 '[ "$v" -ge 4096 ]'
setting net.ipv4.tcp_max_syn_backlog 4096 '[ "$v" -ge 4096 ]'
setting fs.file-max $(( 2 * n + 100000 )) "[ \"\$v\" -ge $(( 2 * n + 100000 )) ]"

cargo build --release --quiet -p ringwave -p bench-harness
out="bench-results/$(date -u +%Y%m%dT%H%M%SZ)-million"
mkdir -p "$out"
port=9450
taskset -c 0 target/release/ringwave --listen "127.0.0.1:$port" --backend "$backend" \
    --threads "$threads" --log-level warn >"$out/server.log" 2>&1 &
srv=$!
for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
done
# Baseline once every worker is set up: RSS no longer moving.
prev=0
for _ in $(seq 100); do
    cur=$(awk '/^VmRSS:/ {print $2}' "/proc/$srv/status")
    [ "$cur" = "$prev" ] && break
    prev=$cur
    sleep 0.3
done
echo "server: ringwave --backend $backend --threads $threads (pid $srv), RSS $((cur / 1024)) MiB before any connection"
echo "generator: $n connections at $rate/s, $per_process per process, held $hold s"
status=0
taskset -c 1 timeout 600 target/release/ringwave-bench hold \
    --url "ws://127.0.0.1:$port/" -n "$n" -r "$rate" -t "$hold" \
    --per-process "$per_process" --server-pid "$srv" --server-metrics \
    --json "$out/checkpoints.jsonl" --max-seconds 540 | tee "$out/report.md" || status=$?
echo "results in $out"
exit "$status"
