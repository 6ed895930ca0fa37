"""Open N idle WebSocket connections to HOST:PORT and hold them.

Usage: idle_clients.py HOST PORT N HOLD_SECONDS
Prints "open N" once every connection completed its handshake, then holds
them for HOLD_SECONDS (or until stdin closes) and exits. Used by
scripts/idle-rss.sh; the caller measures the server.
"""
import asyncio
import sys

HOST, PORT, N, HOLD = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
REQ = (
    f"GET /idle HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
).encode()


async def one(sem):
    async with sem:
        r, w = await asyncio.open_connection(HOST, PORT)
        w.write(REQ)
        head = await r.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise SystemExit(f"handshake refused: {head[:40]!r}")
        return r, w


async def main():
    sem = asyncio.Semaphore(256)
    conns = await asyncio.gather(*(one(sem) for _ in range(N)))
    print(f"open {len(conns)}", flush=True)
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    await asyncio.wait([stdin_closed], timeout=HOLD)
    for _, w in conns:
        w.close()


asyncio.run(main())
