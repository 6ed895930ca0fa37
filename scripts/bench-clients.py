#!/usr/bin/env python3
"""How the two clients keep up with a busy topic: the Node tail
(clients/js/bin/ringwave-tail.mjs) and the Python tail (`python -m
ringwave_client tail`) follow `ticks`, which the server's simulator
publishes at RATE a second (default 10,000), for SECS seconds after a
2-second warm-up. For each: publications received per second against the
topic's own rate (its offsets, read through /api/position), how far behind
the client ended (publications between the topic's newest offset and the
last line the client printed), and the client's CPU (user+system of its
processes, /proc) per publication.

The server runs one worker on CPU 0 (this script's reading of the
client's lines there too); the client on CPU 1. Repeats are interleaved
(node, python, node, ...); the report gives medians with the min-max range.

    scripts/bench-clients.py [--rate 10000] [--secs 10] [--repeats 3]

Needs a release build (cargo build --release), clients/js built (npm ci &&
npm run build in clients/js) and the Python client installed in .venv
(scripts/test.sh does both). Report: bench-results/<timestamp>-clients/
report.md and results.csv.
"""
import argparse
import csv
import json
import os
import pathlib
import socket
import statistics
import subprocess
import threading
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[1]
TOKEN = "bench-clients"
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(pid):
    """`pid` and its descendants (the Node tail runs itself again with the
    flag that turns WebSocket on)."""
    pids = [pid]
    for p in pids:
        for task in os.listdir(f"/proc/{p}/task"):
            try:
                pids += [int(c) for c in open(f"/proc/{p}/task/{task}/children").read().split()]
            except OSError:
                pass
    return pids


def cpu_seconds(pid):
    """User and system time of `pid` and its descendants."""
    total = 0
    for p in tree(pid):
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(f[11]) + int(f[12])
    return total / TICK


def position(port):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/position?topic=ticks",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    return json.load(urllib.request.urlopen(req, timeout=10))["offset"]


def run(client, port, secs):
    url = f"ws://127.0.0.1:{port}/feed"
    cmd = {
        "node": ["node", str(REPO / "clients/js/bin/ringwave-tail.mjs"), url, "ticks"],
        "python": [str(REPO / ".venv/bin/python"), "-m", "ringwave_client", "tail", url, "ticks"],
    }[client]
    p = subprocess.Popen(["taskset", "-c", "1", *cmd], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    state = {"lines": 0, "last": 0}

    def read():
        for line in p.stdout:
            state["lines"] += 1
            state["last"] = int(line.split(b"\t", 1)[0].split(b":")[1])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.time() + 10
        while state["lines"] == 0:
            if time.time() > deadline:
                raise SystemExit(f"{client}: no line in 10 s")
            time.sleep(0.05)
        time.sleep(2)  # warm-up: connect, JIT, the first replay
        lines0, cpu0, pos0, t0 = state["lines"], cpu_seconds(p.pid), position(port), time.time()
        time.sleep(secs)
        lines1, cpu1, pos1, t1 = state["lines"], cpu_seconds(p.pid), position(port), time.time()
        behind = pos1 - state["last"]
    finally:
        p.kill()
        p.wait()
    got = lines1 - lines0
    return {
        "received_per_s": got / (t1 - t0),
        "published_per_s": (pos1 - pos0) / (t1 - t0),
        "behind": behind,
        "cpu_us_per_pub": (cpu1 - cpu0) / got * 1e6 if got else float("nan"),
        "cpu_share": (cpu1 - cpu0) / (t1 - t0),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--secs", type=float, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    os.sched_setaffinity(0, {0})
    out = REPO / "bench-results" / (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-clients")
    out.mkdir(parents=True)
    rows = []
    for r in range(1, a.repeats + 1):
        for client in ("node", "python"):
            port = free_port()
            srv = subprocess.Popen(
                ["taskset", "-c", "0", str(REPO / "target/release/ringwave"), "--threads", "1",
                 "--listen", f"127.0.0.1:{port}", "--feed-sim", f"20:{a.rate}",
                 "--history", "ticks=100000", "--api-token", TOKEN, "--log-level", "warn"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                deadline = time.time() + 10
                while True:
                    try:
                        socket.create_connection(("127.0.0.1", port), 0.2).close()
                        break
                    except OSError:
                        if time.time() > deadline:
                            raise
                        time.sleep(0.05)
                res = run(client, port, a.secs)
            finally:
                srv.kill()
                srv.wait()
            res.update(client=client, repeat=r)
            rows.append(res)
            print(f"{client:6} repeat {r}: {res['received_per_s']:8.0f} received/s of {res['published_per_s']:8.0f} "
                  f"published/s, {res['behind']:5d} behind at the end, {res['cpu_us_per_pub']:6.1f} µs CPU each "
                  f"({res['cpu_share'] * 100:.0f} % of a core)", flush=True)
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)

    def span(vals, fmt):
        return f"{fmt.format(statistics.median(vals))} ({fmt.format(min(vals))}-{fmt.format(max(vals))})"

    lines = ["# Clients following a busy topic\n",
             f"The server's simulator publishes `ticks` at {a.rate:,}/s; each client's tail follows it for "
             f"{a.secs:g} s after a 2 s warm-up, {a.repeats} interleaved repeats. Server: one worker on CPU 0; "
             "client on CPU 1. Medians with the min-max range.\n",
             "| client | received/s | topic's rate/s | behind at the end (publications) | client CPU per publication | share of a core |",
             "|---|---:|---:|---:|---:|---:|"]
    for client in ("node", "python"):
        rs = [x for x in rows if x["client"] == client]
        lines.append(f"| {client} | {span([x['received_per_s'] for x in rs], '{:,.0f}')} "
                     f"| {span([x['published_per_s'] for x in rs], '{:,.0f}')} "
                     f"| {span([x['behind'] for x in rs], '{:,.0f}')} "
                     f"| {span([x['cpu_us_per_pub'] for x in rs], '{:.1f} µs')} "
                     f"| {span([x['cpu_share'] * 100 for x in rs], '{:.0f} %')} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"report: {out}/report.md")


if __name__ == "__main__":
    main()
