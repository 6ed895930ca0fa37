#!/usr/bin/env python3
"""Memory per subscription and per queued publication in a ringwave server.

Starts `target/release/ringwave` (one worker, simulator off), opens S /feed
connections that subscribe to K topics each, then stops reading while a
publisher sends M publications of P bytes to a topic they all subscribe to.
Nothing is sent meanwhile (receive windows are tiny), so the server holds
S x M queued publications. Reports the server's RSS growth per subscription
and per queued publication, next to what a copy per subscriber would cost.

Then the same again with history on for the publishers' topic (`--history
q=M`: the queues hold the history's own publications), and a topic with
history and no subscriber (`--history-entries`, 20,000 by default): bytes
per history entry, against its frame.

    scripts/pubsub-memory.py [--backend uring|poll] [-s 1000] [-k 10] [-m 2000] [-p 1024] [--no-history]

Standard library only; build first with `cargo build --release`.
"""
import argparse
import base64
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def frame(text):
    data = text.encode()
    key = os.urandom(4)
    n = len(data)
    head = bytes([0x81])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(data))


def connect(port, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET /feed HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("handshake failed")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s, rest


def read_frames(s, pending, count):
    """Read `count` server frames; returns (frames, leftover bytes)."""
    out = []
    while len(out) < count:
        if len(pending) >= 2:
            n = pending[1] & 0x7F
            off = 2
            if n == 126:
                n, off = struct.unpack(">H", pending[2:4])[0], 4
            elif n == 127:
                n, off = struct.unpack(">Q", pending[2:10])[0], 10
            if len(pending) >= off + n:
                out.append(pending[off : off + n])
                pending = pending[off + n :]
                continue
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed")
        pending += chunk
    return out, pending


def metric(port, name):
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="uring")
    ap.add_argument("-s", "--subscribers", type=int, default=1000)
    ap.add_argument("-k", "--topics", type=int, default=10, help="topics per subscriber")
    ap.add_argument("-m", "--publications", type=int, default=2000)
    ap.add_argument("-p", "--payload", type=int, default=1024)
    ap.add_argument("--port", type=int, default=9701)
    ap.add_argument("--no-history", action="store_true", help="skip the run with history")
    ap.add_argument("--history-entries", type=int, default=20000,
                    help="publications kept on the topic without subscribers")
    a = ap.parse_args()
    binary = os.path.join(ROOT, "target/release/ringwave")
    if not os.path.exists(binary):
        sys.exit("build first: cargo build --release")
    plain = run(a, binary, history=False)
    if a.no_history:
        return
    print()
    kept = run(a, binary, history=True)
    print(f"history alone (topic h, {a.history_entries} publications, no subscriber): "
          f"{kept['per_entry']:.0f} bytes per entry for a frame of {kept['frame_len']} B "
          f"({kept['per_entry'] - kept['frame_len']:.0f} B over it; a copy of the payload would be "
          f"{kept['frame_len']} B more)")
    print(f"queued publications with history on q: {kept['per_queued']:.1f} bytes per subscriber, "
          f"{plain['per_queued']:.1f} without: the queues share the history's publications")


def run(a, binary, history):
    extra = (["--history", f"q={a.publications}", "--history", f"h={a.history_entries}"]
             if history else [])
    srv = subprocess.Popen(
        [
            binary, "--listen", f"127.0.0.1:{a.port}", "--backend", a.backend, "--threads", "1",
            "--feed-sim", "off", "--allow-client-publish", "--max-buffered", str(1 << 30),
            "--log-level", "warn", *extra,
        ],
        stdout=subprocess.PIPE,
    )
    try:
        srv.stdout.readline()
        # Warm-up: allocator arenas and tables reach their working size.
        warm = [connect(a.port)[0] for _ in range(200)]
        for s in warm:
            s.close()
        time.sleep(0.5)
        subs = [connect(a.port, rcvbuf=4096) for _ in range(a.subscribers)]
        time.sleep(0.5)
        rss_open = rss(srv.pid)
        topics = [f"topic-{i}" for i in range(a.topics - 1)] + ["q"]
        pending = []
        for s, rest in subs:
            s.sendall(b"".join(frame(json.dumps({"op": "subscribe", "topic": t})) for t in topics))
        for s, rest in subs:
            acks, left = read_frames(s, rest, len(topics))
            assert all(b"subscribed" in x for x in acks), acks[:2]
            pending.append(left)
        time.sleep(0.5)
        rss_subscribed = rss(srv.pid)
        n_subs = a.subscribers * len(topics)
        assert metric(a.port, "ringwave_subscriptions") == n_subs
        pub, _ = connect(a.port)
        payload = "x" * a.payload
        before = metric(a.port, "ringwave_deliveries_total")
        out_before = metric(a.port, "ringwave_bytes_out_total")
        for i in range(a.publications):
            pub.sendall(frame(json.dumps({"op": "publish", "topic": "q", "data": payload})))
        want = before + a.subscribers * a.publications
        deadline = time.time() + 120
        while metric(a.port, "ringwave_deliveries_total") < want:
            if time.time() > deadline:
                sys.exit("publications were not all queued")
            time.sleep(0.1)
        time.sleep(0.5)
        rss_queued = rss(srv.pid)
        # Publications the kernel took (the subscribers' socket buffers) are
        # no longer queued in the server: count only what is still held.
        frame_len = a.payload + (2 if a.payload < 126 else 4 if a.payload < 65536 else 10)
        sent = (metric(a.port, "ringwave_bytes_out_total") - out_before) / frame_len
        queued = a.subscribers * a.publications - int(sent)
        per_sub = (rss_subscribed - rss_open) / n_subs
        frames = a.publications * frame_len
        per_queued = (rss_queued - rss_subscribed - frames) / queued
        print(f"backend {a.backend}, history {'on' if history else 'off'}: "
              f"{a.subscribers} connections x {len(topics)} topics = {n_subs} subscriptions")
        print(f"  RSS after open {rss_open / 1e6:.1f} MB, subscribed {rss_subscribed / 1e6:.1f} MB, "
              f"{a.publications} x {a.payload} B queued to each {rss_queued / 1e6:.1f} MB")
        print(f"  per subscription: {per_sub:.0f} bytes")
        print(f"  still queued: {queued} publications ({int(sent)} went to the kernel)")
        print(f"  per queued publication per subscriber: {per_queued:.1f} bytes "
              f"(payload {a.payload} B, framed once: {frames / 1e6:.1f} MB for all {a.publications}, "
              f"and at most once more per worker where a turn joins several into one entry)")
        print(f"  a copy per subscriber would need {queued * a.payload / 1e6:.0f} MB; "
              f"the server grew {(rss_queued - rss_subscribed) / 1e6:.1f} MB")
        result = {"per_queued": per_queued, "frame_len": frame_len}
        if history:
            # A topic nobody subscribes to: only the history holds it.
            before = metric(a.port, "ringwave_history_entries")
            rss_before = rss(srv.pid)
            for i in range(a.history_entries):
                pub.sendall(frame(json.dumps({"op": "publish", "topic": "h", "data": payload})))
            deadline = time.time() + 120
            while metric(a.port, "ringwave_history_entries") < before + a.history_entries:
                if time.time() > deadline:
                    sys.exit("the history did not take every publication")
                time.sleep(0.1)
            time.sleep(0.5)
            result["per_entry"] = (rss(srv.pid) - rss_before) / a.history_entries
        for s, _ in subs:
            s.close()
        pub.close()
        return result
    finally:
        srv.terminate()
        srv.wait(20)


if __name__ == "__main__":
    main()
