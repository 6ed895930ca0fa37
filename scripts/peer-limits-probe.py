#!/usr/bin/env python3
"""Measure what two slow or lying peers cost a ringwave binary (issue 41,
findings 2 and 3), on both backends: the seconds until a connection that
sends `PRI ` and then one more preface byte every 3 s is closed (with
--handshake-timeout 5; at most 60 s), and the address space taken by 100
request heads that declare 16 MiB bodies and send none.

    scripts/peer-limits-probe.py BINARY LABEL [--no-trickle]

Compare two builds by running it on each. Not a test: tests/server_peer_bytes.rs
and src/runtime/tests.rs hold the same behaviour to account."""
import os, socket, subprocess, sys, threading, time

BIN, LABEL = sys.argv[1], sys.argv[2]
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

def start(backend, *args):
    p = subprocess.Popen([BIN, "--listen", "127.0.0.1:0", "--backend", backend, "--threads", "1",
                          "--feed-sim", "off", *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    port = int(line.split("ws://127.0.0.1:")[1].split()[0])
    return p, port

def vmsize(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmSize:"):
            return int(l.split()[1])

def trickle(backend, out):
    p, port = start(backend, "--handshake-timeout", "5", "--ping-interval", "10", "--idle-timeout", "20")
    s = socket.create_connection(("127.0.0.1", port))
    t0 = time.monotonic()
    s.sendall(PREFACE[:4])
    s.settimeout(3)
    i = 4
    closed = None
    while time.monotonic() - t0 < 60:
        try:
            if s.recv(4096) == b"":
                closed = time.monotonic() - t0
                break
        except socket.timeout:
            pass
        except ConnectionError:
            closed = time.monotonic() - t0
            break
        try:
            s.sendall(PREFACE[i:i + 1] if i < len(PREFACE) else b"\0")
        except OSError:
            closed = time.monotonic() - t0
            break
        i += 1
    p.kill()
    out[backend] = f"closed after {closed:.1f} s" if closed else "still open at 60 s"

def declared(backend):
    p, port = start(backend, "--allow-client-publish")
    time.sleep(0.3)
    before = vmsize(p.pid)
    socks = []
    for _ in range(100):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /publish/t HTTP/1.1\r\nHost: x\r\nContent-Length: 16777216\r\n\r\n")
        socks.append(s)
    # The heads are read within a turn or two; wait until VmSize stops moving.
    last, stable = None, 0
    for _ in range(100):
        v = vmsize(p.pid)
        stable = stable + 1 if v == last else 0
        last = v
        if stable >= 5:
            break
        time.sleep(0.05)
    p.kill()
    return (last - before) / 1024

out = {}
threads = [threading.Thread(target=trickle, args=(b, out)) for b in ("uring", "poll")]
for t in threads: t.start() if "--no-trickle" not in sys.argv else None
for b in ("uring", "poll"):
    print(f"{LABEL} {b}: 100 heads declaring 16 MiB: address space +{declared(b):.0f} MiB")
if "--no-trickle" in sys.argv: sys.exit(0)
for t in threads: t.join()
for b in ("uring", "poll"):
    print(f"{LABEL} {b}: PRI then one byte every 3 s (--handshake-timeout 5): {out[b]}")
