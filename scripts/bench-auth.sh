#!/usr/bin/env bash
# What verifying a token costs a connection: the connect case (N WebSocket
# handshakes, at most 100 at once) against ringwave (io_uring, one thread)
# without tokens, with an HS256 token and with an ES256 token (`--jwt-key`,
# the token on the URL as ?token=...).
#
#   scripts/bench-auth.sh [--repeats N] [--connections N]
#
# The server runs pinned to CPU 0, the generator to CPU 1; the three servers
# in interleaved repeats (each repeat's order rotated by one), three connect
# runs per server start. Writes bench-results/<timestamp>-auth/report.md
# (median connections/s with the range, median server CPU ns per
# connection) and results.json. Tokens and keys are made by PyJWT in the
# venv scripts/test.sh builds (.venv).
set -euo pipefail
cd "$(dirname "$0")/.."

repeats=5
n=5000
while [ $# -gt 0 ]; do
    case "$1" in
        --repeats) repeats=$2; shift ;;
        --connections) n=$2; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
py=.venv/bin/python
[ -x "$py" ] || { echo "no $py: run scripts/test.sh once, which builds the venv with PyJWT" >&2; exit 2; }

started=$(date +%s)
out="bench-results/$(date -u +%Y%m%dT%H%M%SZ)-auth"
mkdir -p "$out"
results="$out/results.jsonl"
keys="$out/keys"
"$py" tests/python/jwt_clients.py keys "$keys" >/dev/null
token() { # alg keyfile
    "$py" -c 'import jwt, sys, time
key = open(sys.argv[2], "rb").read().rstrip(b"\n")
print(jwt.encode({"sub": "bench", "exp": int(time.time()) + 86400,
                  "topics": {"subscribe": ["*"]}}, key, algorithm=sys.argv[1]))' "$1" "$2"
}
declare -A tok=(
    [ringwave-uring]=""
    [ringwave-jwt-hs256]="?token=$(token HS256 "$keys/hs.key")"
    [ringwave-jwt-es256]="?token=$(token ES256 "$keys/ec.priv.pem")"
)
declare -A keyfile=([ringwave-jwt-hs256]="$keys/hs.key" [ringwave-jwt-es256]="$keys/ec.pem")
servers=(ringwave-uring ringwave-jwt-hs256 ringwave-jwt-es256)

echo "==> building (release)"
cargo build --release --quiet --bin ringwave -p ringwave
cargo build --release --quiet -p bench-harness --bin ringwave-bench
gen=target/release/ringwave-bench
source scripts/common.sh
port=9700
srv_pid=""
trap 'kill -TERM "$srv_pid" 2>/dev/null || true' EXIT

echo "==> connect $n, $repeats interleaved repeats over: ${servers[*]}"
for r in $(seq "$repeats"); do
    k=$(( (r - 1) % ${#servers[@]} ))
    for s in "${servers[@]:k}" "${servers[@]:0:k}"; do
        port=$((port + 1))
        jwt=()
        [ -z "${keyfile[$s]:-}" ] || jwt=(--jwt-key "${keyfile[$s]}")
        taskset -c 0 target/release/ringwave --listen "127.0.0.1:$port" --backend uring --threads 1 \
            --feed-sim off --log-level warn "${jwt[@]}" >/dev/null &
        srv_pid=$!
        wait_port "$port" "$s"
        for _ in 1 2 3; do
            wait_closed "$port"
            taskset -c 1 "$gen" connect -n "$n" -k 100 --sources 4 --url "ws://127.0.0.1:$port/${tok[$s]}" \
                --label "$s" --server-pid "$srv_pid" --json "$results" --repeat "$r" --quiet
        done
        kill -TERM "$srv_pid"; wait "$srv_pid" 2>/dev/null || true
    done
done

python3 - "$results" "$out" "$repeats" "$n" "$(( $(date +%s) - started ))" <<'EOF'
import json, statistics, sys
path, out, repeats, n, took = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
json.dump(rows, open(f"{out}/results.json", "w"), indent=1)
lines = [
    "# What verifying a token costs a connection", "",
    f"Command: `scripts/bench-auth.sh --repeats {repeats} --connections {n}`, took {took} s.", "",
    f"Connect {n} WebSocket handshakes (at most 100 at once, 4 source addresses) to ringwave "
    "(io_uring, one thread, CPU 0; generator on CPU 1), three runs per server start, "
    f"{repeats} interleaved repeats. Any errors are counted.", "",
    "| server | connections/s (median) | range | server CPU ns per connection (median) | range | errors |",
    "| --- | ---: | --- | ---: | --- | ---: |",
]
base = None
for s in ["ringwave-uring", "ringwave-jwt-hs256", "ringwave-jwt-es256"]:
    mine = [r for r in rows if r["server"] == s]
    rate = [r["rate"] for r in mine]
    ns = [r["server_cpu_ns_per_op"] for r in mine if r.get("server_cpu_ns_per_op")]
    errs = sum(r["errors"] for r in mine)
    lines.append(f"| {s} | {statistics.median(rate):,.0f} | {min(rate):,.0f}–{max(rate):,.0f} | "
                 f"{statistics.median(ns):,.0f} | {min(ns):,.0f}–{max(ns):,.0f} | {errs} |")
open(f"{out}/report.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
echo "==> report: $out/report.md"
