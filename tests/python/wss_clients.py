"""Python `websockets` clients over wss:// against a running ringwave.

Usage: wss_clients.py wss://localhost:PORT/echo CA.pem
Run by tests/server_tls.rs on both backends with a CA made at test time;
prints "N passed, N failed" and exits non-zero on any failure.
"""
import asyncio
import ssl
import sys

from websockets.asyncio.client import connect

from cases import case, run

URL, CA = sys.argv[1], sys.argv[2]
CTX = ssl.create_default_context(cafile=CA)


@case
async def echo_every_size_with_deflate():
    async with connect(URL, ssl=CTX, max_size=None, compression="deflate") as ws:
        ext = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert "permessage-deflate" in ext, f"deflate not negotiated: {ext!r}"
        for n in (0, 125, 64 * 1024, 16 << 20):
            t = ("aé€😀" * (n // 4 + 1)).encode()[:n].decode("utf-8", errors="ignore")
            await ws.send(t)
            assert await ws.recv() == t, f"text of {n} bytes differs"
            b = bytes(range(256)) * (n // 256) + bytes(n % 256)
            await ws.send(b)
            assert await ws.recv() == b, f"binary of {n} bytes differs"


@case
async def echo_every_size_without_compression():
    async with connect(URL, ssl=CTX, max_size=None, compression=None) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        for n in (0, 125, 64 * 1024, 16 << 20):
            b = bytes((i * 7) & 0xFF for i in range(min(n, 1 << 16))) * max(1, n >> 16)
            b = b[:n]
            await ws.send(b)
            assert await ws.recv() == b, f"binary of {n} bytes differs"


@case
async def thousand_concurrent_connections():
    sem = asyncio.Semaphore(200)  # bound the handshake burst, not the total

    async def open_one():
        async with sem:
            return await connect(URL, ssl=CTX, compression=None, open_timeout=30)

    conns = await asyncio.gather(*(open_one() for _ in range(1000)))
    try:
        async def echo(i, ws):
            await ws.send(f"conn {i}")
            assert await asyncio.wait_for(ws.recv(), 30) == f"conn {i}"

        await asyncio.gather(*(echo(i, ws) for i, ws in enumerate(conns)))
    finally:
        await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)


run()
