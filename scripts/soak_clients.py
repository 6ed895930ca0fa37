"""Soak load for scripts/soak.sh: hold N WebSocket connections with churn and
echo traffic for a bounded time, checking every reply.

Usage: soak_clients.py HOST PORT N SECONDS SOURCE_ADDR [CHURN_PER_S] [ECHO_EVERY_S]

Each connection sends a text message every ECHO_EVERY_S seconds on average
(default 2) and checks the echo; CHURN_PER_S connections per second (default
30) are closed with a close handshake and replaced by new ones. Prints
"open N" once the first N are up, then a JSON line of counts at the end.
Exits 1 if any error was seen. Standard library only.
"""
import asyncio
import json
import os
import random
import struct
import sys

HOST, PORT, N, SECONDS, SRC = (
    sys.argv[1],
    int(sys.argv[2]),
    int(sys.argv[3]),
    float(sys.argv[4]),
    sys.argv[5],
)
CHURN = float(sys.argv[6]) if len(sys.argv) > 6 else 30.0
EVERY = float(sys.argv[7]) if len(sys.argv) > 7 else 2.0
REQ = (
    f"GET /soak HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
).encode()
counts = {
    "connects": 0,
    "closes": 0,
    "echoes": 0,
    "handshake_errors": 0,
    "echo_errors": 0,
    "unexpected_closes": 0,
}


def client_frame(opcode, payload):
    # Masked with the all-zero key, so the payload goes as it is.
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


async def read_frame(r):
    b0, b1 = await r.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await r.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await r.readexactly(8))
    return b0 & 0x0F, await r.readexactly(n)


async def connect(sem):
    async with sem:
        try:
            r, w = await asyncio.wait_for(
                asyncio.open_connection(HOST, PORT, local_addr=(SRC, 0)), 10
            )
            w.write(REQ)
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            counts["handshake_errors"] += 1
            print(f"handshake failed: {e!r}", file=sys.stderr)
            return None
        if not head.startswith(b"HTTP/1.1 101"):
            counts["handshake_errors"] += 1
            print(f"handshake refused: {head[:40]!r}", file=sys.stderr)
            w.close()
            return None
        counts["connects"] += 1
        return r, w


async def echo_once(r, w, seq):
    msg = f"soak {os.getpid()} {seq}".encode()
    w.write(client_frame(0x1, msg))
    while True:
        op, payload = await asyncio.wait_for(read_frame(r), 10)
        if op == 0x9:  # a keep-alive ping: answer it
            w.write(client_frame(0xA, payload))
            continue
        if (op, payload) != (0x1, msg):
            counts["echo_errors"] += 1
            print(f"bad echo: {op} {payload[:40]!r}", file=sys.stderr)
        else:
            counts["echoes"] += 1
        return


async def close(r, w):
    w.write(client_frame(0x8, struct.pack("!H", 1000)))
    try:
        while True:
            op, _ = await asyncio.wait_for(read_frame(r), 10)
            if op == 0x8:
                break
        counts["closes"] += 1
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        counts["unexpected_closes"] += 1
    w.close()


async def connection(sem, end, leave, ready):
    """One slot: a connection that echoes until it is churned, then a new one."""
    seq = 0
    first = True
    while asyncio.get_running_loop().time() < end:
        c = await connect(sem)
        if first:
            ready.release()
            first = False
        if c is None:
            await asyncio.sleep(1)
            continue
        r, w = c
        try:
            while asyncio.get_running_loop().time() < end:
                await asyncio.sleep(random.expovariate(1 / EVERY))
                seq += 1
                await echo_once(r, w, seq)
                if leave():
                    break
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            counts["unexpected_closes"] += 1
            print(f"connection lost: {e!r}", file=sys.stderr)
            w.close()
            continue
        await close(r, w)


async def main():
    loop = asyncio.get_running_loop()
    end = loop.time() + SECONDS
    sem = asyncio.Semaphore(200)
    ready = asyncio.Semaphore(0)
    # Each echo leaves with this probability: CHURN departures per second.
    p_leave = min(1.0, CHURN / (N / EVERY))
    tasks = [
        asyncio.create_task(connection(sem, end, lambda: random.random() < p_leave, ready))
        for _ in range(N)
    ]
    for _ in range(N):
        await ready.acquire()
    print(f"open {counts['connects']}", flush=True)
    await asyncio.gather(*tasks)
    print(json.dumps(counts), flush=True)
    errors = (
        counts["handshake_errors"] + counts["echo_errors"] + counts["unexpected_closes"]
    )
    sys.exit(1 if errors else 0)


asyncio.run(main())
