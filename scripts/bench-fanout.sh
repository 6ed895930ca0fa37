#!/usr/bin/env bash
# Pub/sub fan-out benchmark: ringwave's feed app (uring and poll backends, one
# worker, and two workers) against Bun's pub/sub (server.publish, uWebSockets
# inside) and uWebSockets.js's (app.publish, run by Node), all speaking the
# same /feed JSON protocol.
#
#   scripts/bench-fanout.sh [--quick] [--tls] [--repeats N] [--subscribers N]
#                           [--rates "100 1000 10000"] [--servers "a b ..."]
#                           [--baseline BIN] [--nodes 2]
#
# One-worker servers run pinned to CPU 0 and the load generator
# (ringwave-bench fanout: N subscriber connections, one publisher at R
# publishes/s, 100-byte payloads stamped with the send time) to CPU 1. The
# two-worker ringwave ("-2w") gets CPUs 0 and 1, so it shares CPU 1 with the
# generator: on this two-core machine that shows the cross-worker path, not
# a second core's worth of speed. Runs are interleaved (A B C A B C ...) and
# the report takes medians: bench-results/<timestamp>-fanout/report.md,
# results.json, fanout.png.
#
# Slow-consumer policy: ringwave runs with --slow-consumer drop, Bun and
# uWebSockets.js with their backpressure handling (messages to a subscriber
# over its 1 MiB limit are skipped), so none closes subscribers mid-run; all
# buffer up to 1 MiB per subscriber.
#
# Rates: 100/s (1M deliveries/s offered, which every server here sustains on
# one core: latency is what differs) and the issue's 1,000/s and 10,000/s
# (10M and 100M offered: every server saturates; delivered messages/s counts
# every delivery arriving during the measured window, and latency is that of
# the publications sent in the window, most of which queue far behind).
#
# --quick: 2 repeats of 3 s. Default: 3 repeats of 5 s.
#
# Each run also records the server's peak RSS (VmHWM, every node's) and,
# for ringwave, the delivery lag its own /metrics measured
# (ringwave_delivery_lag_seconds): columns of the report beside the
# generator's end-to-end latency.
#
# --baseline BIN: also run another build of ringwave (the commit a change
# starts from, say) as baseline-uring, baseline-poll and baseline-uring-2w,
# interleaved with the rest.
#
# --tls: every subscriber and the publisher connect over wss:// (one ECDSA
# P-256 certificate made for the run with openssl; the generator verifies
# it). Every publication is then encrypted once per subscriber: that is the
# cost this mode shows.
#
# --nodes 2: pub/sub across nodes through NATS (Debian's nats-server, one
# started per run on a free port). The servers are then ringwave-uring and
# ringwave-poll as one node, ringwave-uring-nats1 (one node with the NATS
# bridge on, nobody else on NATS: what the bridge costs), and
# ringwave-uring-nats2 / ringwave-poll-nats2: two one-worker nodes with the
# subscribers split evenly over them, the publisher on the first, so half the
# deliveries cross NATS. Both nodes and nats-server share CPU 0 (the single
# node has it alone), the generator has CPU 1; server CPU is both nodes',
# nats-server's is its own column.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
repeats=""
subscribers=10000
rates="100 1000 10000"
servers="ringwave-uring ringwave-poll ringwave-uring-2w bun uwebsockets-js"
baseline=""
tls=0
nodes=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --repeats) repeats=$2; shift ;;
        --subscribers) subscribers=$2; shift ;;
        --rates) rates=$2; shift ;;
        --servers) servers=$2; shift ;;
        --baseline) baseline=$2; shift ;;
        --tls) tls=1 ;;
        --nodes) nodes=$2; shift ;;
        -h|--help) sed -n '2,50p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$nodes" in
    1) ;;
    2)
        [ "$tls" = 0 ] || { echo "--nodes 2 runs plaintext only" >&2; exit 2; }
        command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] \
            || { echo "--nodes 2 needs nats-server (apt-get install nats-server)" >&2; exit 2; }
        [[ "$servers" == *"nats"* ]] || servers="ringwave-uring ringwave-uring-nats1 ringwave-uring-nats2 ringwave-poll ringwave-poll-nats2"
        ;;
    *) echo "--nodes: 1 or 2" >&2; exit 2 ;;
esac
nats_bin=$(command -v nats-server || echo /usr/sbin/nats-server)
if [ -n "$baseline" ]; then
    [ -x "$baseline" ] || { echo "--baseline $baseline is not an executable" >&2; exit 2; }
    [[ " $servers " == *" baseline-"* ]] || servers="$servers baseline-uring baseline-poll baseline-uring-2w"
fi
if [ "$quick" = 1 ]; then dur=3; repeats=${repeats:-2}; else dur=5; repeats=${repeats:-3}; fi

started=$(date +%s)
out="bench-results/$(date -u +%Y%m%dT%H%M%SZ)-fanout"
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
cargo build --release --quiet -p bench-harness --bin ringwave-bench

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

gen=target/release/ringwave-bench
port=9600
srv_pid=""
# For the runs across nodes: the second node, nats-server, and what the
# generator is told about them.
node2_pid=""
nats_pid=""
gen_nodes=()
metrics=()
rw=(target/release/ringwave --feed-sim off --allow-client-publish --slow-consumer drop --log-level warn)

# wait_port (shared by the benchmark scripts)
source scripts/common.sh

start_server() {
    local name=$1
    port=$((port + 1))
    gen_nodes=()
    # A ringwave's /metrics (its plaintext port): the generator reads its
    # delivery-lag histogram at the end of the run.
    metrics=()
    case "$name" in
        ringwave-*|baseline-*)
            if [ "$tls" = 1 ]; then
                metrics=(--metrics-url "http://127.0.0.1:$((port + 10000))/metrics")
            else
                metrics=(--metrics-url "http://127.0.0.1:$port/metrics")
            fi
            ;;
    esac
    case "$name" in
        ringwave-*-nats*)
            local backend=${name#ringwave-}; backend=${backend%%-*}
            local nport=$((port + 20000))
            taskset -c 0 "$nats_bin" -a 127.0.0.1 -p "$nport" >/dev/null 2>&1 &
            nats_pid=$!
            wait_port "$nport" nats-server
            local n=(--nats "nats://127.0.0.1:$nport" --backend "$backend" --threads 1)
            taskset -c 0 "${rw[@]}" "${n[@]}" --listen "127.0.0.1:$port" >/dev/null &
            srv_pid=$!
            gen_nodes=(--broker-pid "$nats_pid")
            if [[ "$name" == *-nats2 ]]; then
                taskset -c 0 "${rw[@]}" "${n[@]}" --listen "127.0.0.1:$((port + 10000))" >/dev/null &
                node2_pid=$!
                wait_port $((port + 10000)) "$name (second node)"
                gen_nodes+=(--also-url "ws://127.0.0.1:$((port + 10000))/feed" --also-pid "$node2_pid")
            fi
            wait_port "$port" "$name"
            return 0
            ;;
    esac
    if [ "$tls" = 1 ]; then
        # The TLS port is the one measured; ringwave's plaintext listener
        # sits beside it unused.
        local t=(--listen "127.0.0.1:$((port + 10000))" --tls-listen "127.0.0.1:$port" --tls-cert "$cert" --tls-key "$key")
        case "$name" in
            ringwave-uring) taskset -c 0 "${rw[@]}" "${t[@]}" --backend uring --threads 1 >/dev/null & ;;
            ringwave-poll) taskset -c 0 "${rw[@]}" "${t[@]}" --backend poll --threads 1 >/dev/null & ;;
            ringwave-uring-2w) taskset -c 0,1 "${rw[@]}" "${t[@]}" --backend uring --threads 2 >/dev/null & ;;
            ringwave-poll-2w) taskset -c 0,1 "${rw[@]}" "${t[@]}" --backend poll --threads 2 >/dev/null & ;;
            baseline-uring) taskset -c 0 "$baseline" "${rw[@]:1}" "${t[@]}" --backend uring --threads 1 >/dev/null & ;;
            baseline-poll) taskset -c 0 "$baseline" "${rw[@]:1}" "${t[@]}" --backend poll --threads 1 >/dev/null & ;;
            baseline-uring-2w) taskset -c 0,1 "$baseline" "${rw[@]:1}" "${t[@]}" --backend uring --threads 2 >/dev/null & ;;
            bun) taskset -c 0 "$bun" "$bun_dir/pubsub.js" "$port" "$cert" "$key" >/dev/null & ;;
            uwebsockets-js) taskset -c 0 node "$uws_dir/pubsub.js" "$port" "$cert" "$key" >/dev/null & ;;
            *) echo "unknown server $name" >&2; exit 2 ;;
        esac
    else
    case "$name" in
        ringwave-uring) taskset -c 0 "${rw[@]}" --listen "127.0.0.1:$port" --backend uring --threads 1 >/dev/null & ;;
        ringwave-poll) taskset -c 0 "${rw[@]}" --listen "127.0.0.1:$port" --backend poll --threads 1 >/dev/null & ;;
        ringwave-uring-2w) taskset -c 0,1 "${rw[@]}" --listen "127.0.0.1:$port" --backend uring --threads 2 >/dev/null & ;;
        ringwave-poll-2w) taskset -c 0,1 "${rw[@]}" --listen "127.0.0.1:$port" --backend poll --threads 2 >/dev/null & ;;
        baseline-uring) taskset -c 0 "$baseline" "${rw[@]:1}" --listen "127.0.0.1:$port" --backend uring --threads 1 >/dev/null & ;;
        baseline-poll) taskset -c 0 "$baseline" "${rw[@]:1}" --listen "127.0.0.1:$port" --backend poll --threads 1 >/dev/null & ;;
        baseline-uring-2w) taskset -c 0,1 "$baseline" "${rw[@]:1}" --listen "127.0.0.1:$port" --backend uring --threads 2 >/dev/null & ;;
        bun) taskset -c 0 "$bun" "$bun_dir/pubsub.js" "$port" >/dev/null & ;;
        uwebsockets-js) taskset -c 0 node "$uws_dir/pubsub.js" "$port" >/dev/null & ;;
        *) echo "unknown server $name" >&2; exit 2 ;;
    esac
    fi
    srv_pid=$!
    wait_port "$port" "$name"
}

stop_server() {
    local p
    for p in "$srv_pid" $node2_pid $nats_pid; do
        kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    node2_pid=""
    nats_pid=""
}
trap 'kill -TERM "$srv_pid" $node2_pid $nats_pid 2>/dev/null || true' EXIT

echo "==> fanout: $subscribers subscribers at rates [$rates]/s, $repeats interleaved repeats over: $servers"
for r in $(seq "$repeats"); do
    for rate in $rates; do
        for s in $servers; do
            start_server "$s"
            taskset -c 1 "$gen" fanout -n "$subscribers" -r "$rate" -s 100 -t "$dur" --warmup 1 \
                --url "$scheme://$host:$port/feed" "${tls_gen[@]}" "${gen_nodes[@]}" "${metrics[@]}" --label "$s" --server-pid "$srv_pid" \
                --sources 4 --json "$results" --repeat "$r" --quiet
            stop_server
        done
    done
done

# Across nodes: how long a delivery takes directly (publisher and
# subscribers on one node with the bridge on, which is how a node's own
# publications reach its subscribers) and through NATS (subscribers on the
# second node, the publisher on the first): 100 subscribers, 1,000
# publishes/s, nobody saturated.
if [ "$nodes" = 2 ]; then
    echo "==> direct against through NATS: 100 subscribers at 1000/s, $repeats interleaved repeats"
    for r in $(seq "$repeats"); do
        for how in direct through-nats; do
            start_server ringwave-uring-nats2
            a="ws://127.0.0.1:$port/feed"; b="ws://127.0.0.1:$((port + 10000))/feed"
            if [ "$how" = direct ]; then sub=$a; else sub=$b; fi
            taskset -c 1 "$gen" fanout -n 100 -r 1000 -s 100 -t "$dur" --warmup 1 \
                --url "$sub" --publish-url "$a" --label "ringwave-uring, $how" --server-pid "$srv_pid" \
                --also-pid "$node2_pid" --broker-pid "$nats_pid" \
                --json "$results" --repeat "$r" --quiet
            stop_server
        done
    done
fi

took=$(( $(date +%s) - started ))
cat > "$out/preface.md" <<EOF2
Command: \`scripts/bench-fanout.sh $( [ "$quick" = 1 ] && echo --quick ) $( [ "$tls" = 1 ] && echo --tls ) $( [ "$nodes" = 2 ] && echo --nodes 2 ) --repeats $repeats --subscribers $subscribers --rates "$rates"\`, took ${took} s.
Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), Linux $(uname -r).
EOF2
"$gen" report --input "$results" --out "$out" --preface "$out/preface.md"
echo "==> report: $out/report.md (took ${took} s)"
