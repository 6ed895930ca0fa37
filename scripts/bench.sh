#!/usr/bin/env bash
# Side-by-side benchmark of ringwave (uring and poll backends) against
# tokio-tungstenite, fastwebsockets, Bun and uWebSockets.js (uWebSockets' C++
# engine as a Node.js addon, without Bun's layer), each an echo server on one
# core.
#
#   scripts/bench.sh [--quick] [--tls] [--repeats N] [--servers "a b ..."]
#                    [--server-cpu PCT] [--baseline BIN] [--idle-only]
#                    [--latency-only RATE]
#
# Every server runs pinned to CPU 0 and the load generator (ringwave-bench) to
# CPU 1. Cases run in interleaved repeats, each repeat in the order of the
# one before rotated by one (A B C, B C A, C A B, ...), and the report takes
# medians. Writes bench-results/<timestamp>/report.md, results.json and
# PNG charts. Each result records the server's CPU use (utime+stime from
# /proc/PID/stat over the measured window) and the generator's, to show which
# side was saturated.
#
# --quick: 1 s warm-up + 2 s per run, 3 repeats, smaller connect/idle counts
# (under 10 minutes). Default: 1 s + 5 s per run, 5 repeats, 15,000 idle
# connections.
#
# The connect case (N connections, at most 100 handshakes at once, held
# until the run ends) runs three times per server start, as it lasts under
# a second, each once the connections before it are closed.
#
# Latency runs separately: 100 connections x 64 B, open loop, at one rate for
# every server (half the slowest server's median echo 100x20B rate, so that
# none saturates). On a shared machine one stall of a few milliseconds
# decides a window's p99, and stalls come in phases, so the servers are
# measured in many short windows close together in time: all of them run at
# once, each on its own port (idle ones cost nothing), and each round gives
# every server one window of 1 s after 0.25 s of warm-up, in the order of
# the round before rotated by one (40 rounds; --quick 10). The report ranks
# servers by the median of their windows' p99s, and pairs each ringwave
# build with each peer round by round with a sign test on which p99 was
# lower.
#
# --server-cpu PCT: cap every server at PCT% of its core (a cgroup CPU quota,
# 10 ms period; needs root and the cgroup cpu controller). On a loopback echo
# each message costs both ends about the same kernel work, so a one-core
# generator saturates about when a one-core server does; capped servers leave
# the generator headroom (its CPU column shows how much), and the ratios then
# compare servers at equal CPU budgets. Throttling adds stalls of up to the
# period, so latency percentiles under a cap are not comparable to uncapped
# ones.
#
# --latency-only RATE: only the latency case, at RATE msg/s for every
# server (say, the common rate of a full run's report, to take its latency
# again in its own sitting).
#
# --idle-only: only the idle memory case (15,000 connections, one sample per
# server), for a memory change without the half hour the full run takes.
#
# --baseline BIN: also run another build of ringwave (say, the commit a change
# starts from, built in a git worktree) as baseline-uring and baseline-poll,
# interleaved with everything else, so a change is compared with its base in
# one sitting.
#
# --tls: every server serves wss:// with the same ECDSA P-256 certificate
# (made for the run with openssl) and the generator speaks TLS (rustls,
# trusting that certificate, no session resumption): echo 100x20B and
# 10x16KiB, connect 5,000 (at most 100 at once: full TLS handshakes per
# second) and RSS per idle TLS connection. Peers: tokio-tungstenite over
# tokio-rustls, Bun (BoringSSL) and uWebSockets.js (SSLApp). No latency
# case.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
repeats=""
server_cpu=""
baseline=""
tls=0
idle_only=0
latency_rate=""
servers_given=""
servers="ringwave-uring ringwave-poll tokio-tungstenite fastwebsockets bun uwebsockets-js"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --repeats) repeats=$2; shift ;;
        --servers) servers=$2; servers_given=1; shift ;;
        --server-cpu) server_cpu=$2; shift ;;
        --baseline) baseline=$2; shift ;;
        --tls) tls=1 ;;
        --idle-only) idle_only=1 ;;
        --latency-only)
            latency_rate=$2; shift
            [[ "$latency_rate" =~ ^[1-9][0-9]*$ ]] || { echo "--latency-only takes a rate in msg/s, not '$latency_rate'" >&2; exit 2; }
            ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ -n "$baseline" ]; then
    [ -x "$baseline" ] || { echo "--baseline $baseline is not an executable" >&2; exit 2; }
    [[ " $servers " == *" baseline-"* ]] || servers="$servers baseline-uring baseline-poll"
fi
lat_window=1; lat_warm=0.25
if [ "$quick" = 1 ]; then
    dur=2; warm=1; repeats=${repeats:-3}; lat_repeats=10; connect_n=5000; idle_n=15000
else
    dur=5; warm=1; repeats=${repeats:-5}; lat_repeats=40; connect_n=10000; idle_n=15000
fi
if [ "$tls" = 1 ]; then
    connect_n=5000
    [ -n "$servers_given" ] || servers="ringwave-uring ringwave-poll tokio-tungstenite bun uwebsockets-js"
    [[ " $servers " != *" fastwebsockets "* ]] || { echo "--tls: the fastwebsockets peer has no TLS" >&2; exit 2; }
fi

# The cgroup that caps servers (--server-cpu): v2 when the cpu controller is
# available there, else v1.
cgroup=""
if [ -n "$server_cpu" ]; then
    if ! [[ "$server_cpu" =~ ^[0-9]+$ ]] || [ "$server_cpu" -lt 1 ] || [ "$server_cpu" -gt 100 ]; then
        echo "--server-cpu takes a whole percentage from 1 to 100, not '$server_cpu'" >&2
        exit 2
    fi
    quota=$((server_cpu * 100)) # µs per 10,000 µs period
    if grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
        cgroup=/sys/fs/cgroup/ringwave-bench
        echo +cpu >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
        mkdir -p "$cgroup" && echo "$quota 10000" >"$cgroup/cpu.max" || cgroup=""
    elif [ -d /sys/fs/cgroup/cpu ]; then
        cgroup=/sys/fs/cgroup/cpu/ringwave-bench
        mkdir -p "$cgroup" && echo 10000 >"$cgroup/cpu.cfs_period_us" &&
            echo "$quota" >"$cgroup/cpu.cfs_quota_us" || cgroup=""
    fi
    if [ -z "$cgroup" ]; then
        echo "--server-cpu needs a writable cgroup cpu controller (run as root)" >&2
        exit 2
    fi
fi

started=$(date +%s)
out="bench-results/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
results="$out/results.jsonl"
scheme=ws
host=127.0.0.1
tls_gen=()
if [ "$tls" = 1 ]; then
    t="$out/tls"; cert="$t/cert.pem"; key="$t/key.pem"
    scripts/make-cert.sh "$t" 2 >/dev/null
    scheme=wss; host=localhost; tls_gen=(--ca "$t/ca.pem")
fi

echo "==> building (release)"
cargo build --release --quiet --bin ringwave -p ringwave
cargo build --release --quiet -p bench-harness
bun_dir=bench-harness/peers/bun
bun="$bun_dir/node_modules/@oven/bun-linux-x64/bin/bun"
if [[ " $servers " == *" bun "* ]] && [ ! -x "$bun" ]; then
    echo "==> installing Bun from npm into $bun_dir/node_modules"
    (cd "$bun_dir" && npm install --no-audit --no-fund --silent)
fi
uws_dir=bench-harness/peers/uws
if [[ " $servers " == *" uwebsockets-js "* ]] && [ ! -d "$uws_dir/node_modules/uws-pack" ]; then
    echo "==> installing uWebSockets.js (uws-pack) from npm into $uws_dir/node_modules"
    (cd "$uws_dir" && npm install --no-audit --no-fund --silent)
fi
if [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] && [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >/dev/null
fi

gen=target/release/ringwave-bench
port=9400
srv_pid=""

# wait_port (shared by the benchmark scripts)
source scripts/common.sh

start_server() {
    local name=$1
    port=$((port + 1))
    if [ "$tls" = 1 ]; then
        # The TLS port is the one measured; ringwave's plaintext listener sits
        # beside it unused.
        local rw=(--listen "127.0.0.1:$((port + 10000))" --tls-listen "127.0.0.1:$port" --tls-cert "$cert" --tls-key "$key" --threads 1 --feed-sim off --log-level warn)
        case "$name" in
            ringwave-uring) taskset -c 0 target/release/ringwave --backend uring "${rw[@]}" >/dev/null & ;;
            ringwave-poll) taskset -c 0 target/release/ringwave --backend poll "${rw[@]}" >/dev/null & ;;
            baseline-uring) taskset -c 0 "$baseline" --backend uring "${rw[@]}" >/dev/null & ;;
            baseline-poll) taskset -c 0 "$baseline" --backend poll "${rw[@]}" >/dev/null & ;;
            tokio-tungstenite) taskset -c 0 target/release/peer-tokio-tungstenite "127.0.0.1:$port" "$cert" "$key" >/dev/null & ;;
            bun) taskset -c 0 "$bun" "$bun_dir/server.js" "$port" "$cert" "$key" >/dev/null & ;;
            uwebsockets-js) taskset -c 0 node "$uws_dir/server.js" "$port" "$cert" "$key" >/dev/null & ;;
            *) echo "server $name has no TLS mode" >&2; exit 2 ;;
        esac
    else
    case "$name" in
        ringwave-uring) taskset -c 0 target/release/ringwave --listen "127.0.0.1:$port" --backend uring --threads 1 --feed-sim off --log-level warn >/dev/null & ;;
        ringwave-poll) taskset -c 0 target/release/ringwave --listen "127.0.0.1:$port" --backend poll --threads 1 --feed-sim off --log-level warn >/dev/null & ;;
        baseline-uring) taskset -c 0 "$baseline" --listen "127.0.0.1:$port" --backend uring --threads 1 --feed-sim off --log-level warn >/dev/null & ;;
        baseline-poll) taskset -c 0 "$baseline" --listen "127.0.0.1:$port" --backend poll --threads 1 --feed-sim off --log-level warn >/dev/null & ;;
        tokio-tungstenite) taskset -c 0 target/release/peer-tokio-tungstenite "127.0.0.1:$port" >/dev/null & ;;
        fastwebsockets) taskset -c 0 target/release/peer-fastwebsockets "127.0.0.1:$port" >/dev/null & ;;
        bun) taskset -c 0 "$bun" "$bun_dir/server.js" "$port" >/dev/null & ;;
        uwebsockets-js) taskset -c 0 node "$uws_dir/server.js" "$port" >/dev/null & ;;
        *) echo "unknown server $name" >&2; exit 2 ;;
    esac
    fi
    srv_pid=$!
    if [ -n "$cgroup" ]; then
        echo "$srv_pid" >"$cgroup/cgroup.procs"
    fi
    wait_port "$port" "$name"
}

stop_server() {
    kill -TERM "$srv_pid" 2>/dev/null || true
    wait "$srv_pid" 2>/dev/null || true
}
trap 'kill -TERM "$srv_pid" 2>/dev/null || true' EXIT

run() { # server case-args...
    local name=$1; shift
    taskset -c 1 "$gen" "$@" --url "$scheme://$host:$port/" "${tls_gen[@]}" --label "$name" \
        --server-pid "$srv_pid" --json "$results" --quiet
}

echo_cases=("-c 1 -s 20" "-c 100 -s 20" "-c 1000 -s 20" "-c 10 -s 1024" "-c 10 -s 16384")
[ "$tls" = 0 ] || echo_cases=("-c 100 -s 20" "-c 10 -s 16384")

if [ "$idle_only" = 0 ]; then
# Repeat r runs the servers in the list's order rotated by r-1: this
# machine has slow phases lasting minutes, and a fixed order would put the
# same server at the same point of each repeat.
rotated() { # repeat
    local list=($servers) k
    k=$(( ($1 - 1) % ${#list[@]} ))
    echo "${list[@]:k}" "${list[@]:0:k}"
}

if [ -z "$latency_rate" ]; then
echo "==> echo and connect: $repeats interleaved repeats over: $servers"
for r in $(seq "$repeats"); do
    for s in $(rotated "$r"); do
        start_server "$s"
        for c in "${echo_cases[@]}"; do
            # shellcheck disable=SC2086
            run "$s" echo $c -t "$dur" --warmup "$warm" --repeat "$r"
        done
        # A connect run lasts a third of a second: three per start, so one
        # stall of the machine weighs less in the median p99. Each starts
        # once the server has torn down what the run before left (closing
        # thousands of connections takes it tens of milliseconds, which
        # would otherwise land in the handshakes' tail).
        for k in 1 2 3; do
            wait_closed "$port"
            run "$s" connect -n "$connect_n" -k 100 --sources 4 --repeat "$r"
        done
        stop_server
    done
done
fi

if [ "$tls" = 1 ]; then
    lat_repeats=0
else
    echo "==> latency: $lat_repeats rounds of a window per server at one rate, all servers up at once"
fi
max_of() {
    python3 - "$results" "$1" <<'EOF'
import json, statistics, sys
rates = [r["rate"] for r in map(json.loads, open(sys.argv[1]))
         if r["server"] == sys.argv[2] and r["case"] == "echo 100x20B d1"]
print(int(statistics.median(rates)))
EOF
}
common=""
if [ -n "$latency_rate" ]; then
    common=$latency_rate
else
    for s in $servers; do
        m=$(max_of "$s")
        if [ -z "$common" ] || [ "$m" -lt "$common" ]; then common=$m; fi
    done
    common=$((common / 2)) # 50% of the slowest server's maximum: a rate every server sustains
fi
[ "$lat_repeats" -gt 0 ] || common=0
if [ "$lat_repeats" -gt 0 ]; then
    declare -A lat_port lat_pid
    for s in $servers; do
        start_server "$s"
        lat_port[$s]=$port
        lat_pid[$s]=$srv_pid
    done
    # On exit, whichever server runs: these, or the one started after them.
    trap 'kill -TERM "$srv_pid" "${lat_pid[@]}" 2>/dev/null || true' EXIT
    for r in $(seq "$lat_repeats"); do
        for s in $(rotated "$r"); do
            port=${lat_port[$s]} srv_pid=${lat_pid[$s]}
            run "$s" latency -c 100 -s 64 --rate "$common" -t "$lat_window" --warmup "$lat_warm" --repeat "$r" \
                --case "latency 100x64B at ${common}/s"
        done
    done
    for s in $servers; do
        srv_pid=${lat_pid[$s]}
        stop_server
    done
fi
fi

if [ -z "$latency_rate" ]; then
echo "==> idle memory: $idle_n connections"
for s in $servers; do
    start_server "$s"
    # Warm up allocator and tables, then measure RSS growth for idle_n.
    taskset -c 1 "$gen" idle -n 1000 -t 0 --url "$scheme://$host:$port/" "${tls_gen[@]}" --quiet >/dev/null </dev/null
    run "$s" idle -n "$idle_n" -t 0 --sources 4 --repeat 1 </dev/null
    stop_server
done
fi

took=$(( $(date +%s) - started ))
if [ -n "$cgroup" ]; then
    rmdir "$cgroup" 2>/dev/null || true
fi
preface="$out/preface.md"
{
    echo "Run: \`scripts/bench.sh $([ "$quick" = 1 ] && echo --quick) $([ "$tls" = 1 ] && echo --tls) $([ "$idle_only" = 1 ] && echo --idle-only) $([ -n "$latency_rate" ] && echo --latency-only "$latency_rate")\` on $(date -u +%Y-%m-%d), took ${took} s."
    echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), Linux $(uname -r)."
    echo "Per run: ${warm} s warm-up, ${dur} s measured; $repeats repeats (latency: all servers up at once, $lat_repeats rounds of one ${lat_window} s window per server after ${lat_warm} s warm-up)."
    if [ "$tls" = 1 ]; then
        echo "TLS: every server serves wss:// with one ECDSA P-256 certificate; the generator (rustls, ring) makes full handshakes (no resumption)."
    fi
    if [ -n "$cgroup" ]; then
        echo "Every server capped at ${server_cpu}% of its core (cgroup CPU quota, 10 ms period): compare servers at equal CPU budgets; latency under throttling is not comparable to uncapped runs."
    fi
    echo
} >"$preface"
"$gen" report --input "$results" --out "$out" --preface "$preface"
echo "==> wrote $out/report.md (${took} s)"
