"""Python `websockets` clients against a running ringwave (URL in argv[1]).

Run by tests/server_python.rs on both backends; prints "N passed, N failed"
and exits non-zero on any failure.
"""
import asyncio
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

from cases import case, run

URL = sys.argv[1]


def text_of(n):
    s = ("aé€😀" * (n // 4 + 1)).encode()[:n]
    return s.decode("utf-8", errors="ignore")


@case
async def echo_every_size_with_deflate():
    async with connect(URL, max_size=None, compression="deflate") as ws:
        ext = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert "permessage-deflate" in ext, f"deflate not negotiated: {ext!r}"
        for n in (0, 125, 126, 64 * 1024, 16 << 20):
            t = text_of(n)
            await ws.send(t)
            got = await ws.recv()
            assert got == t, f"text of {n} bytes differs"
            b = bytes((i * 7) & 0xFF for i in range(n)) if n < 1 << 20 else bytes(range(256)) * (n // 256)
            await ws.send(b)
            got = await ws.recv()
            assert got == b, f"binary of {n} bytes differs"


@case
async def echo_without_compression():
    async with connect(URL, max_size=None, compression=None) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        await ws.send("plain")
        assert await ws.recv() == "plain"


@case
async def fragmented_message():
    async with connect(URL, compression=None) as ws:
        await ws.send(["Hel", "lo, ", "wörld"])
        assert await ws.recv() == "Hello, wörld"
        await ws.send([b"\x00\x01", b"\x02"])
        assert await ws.recv() == b"\x00\x01\x02"


@case
async def ping_pong():
    async with connect(URL) as ws:
        waiter = await ws.ping(b"py")
        latency = await asyncio.wait_for(waiter, 5)
        assert latency >= 0


@case
async def close_with_code():
    ws = await connect(URL)
    await ws.close(4001, "done")
    rcvd = ws.protocol.close_rcvd
    assert rcvd is not None and rcvd.code == 4001, rcvd


@case
async def oversized_message_closed_with_1009():
    # No context manager: the connection is already closed by the server
    # when the block would end.
    ws = await connect(URL, max_size=None, compression=None)
    try:
        # The server may fail the connection while this is still being
        # written; either way its close frame must arrive.
        await ws.send(b"x" * ((16 << 20) + 1))
        await asyncio.wait_for(ws.recv(), 10)
        raise AssertionError("oversized message was echoed")
    except ConnectionClosedError:
        pass
    rcvd = ws.protocol.close_rcvd
    assert rcvd is not None and rcvd.code == 1009, rcvd


@case
async def five_thousand_concurrent_connections():
    n = 5000
    sem = asyncio.Semaphore(500)  # bound the connect burst, not the total

    async def open_one(i):
        async with sem:
            return await connect(URL, compression=None, open_timeout=30)

    conns = await asyncio.gather(*(open_one(i) for i in range(n)))
    try:
        async def echo(i, ws):
            msg = f"conn {i}"
            await ws.send(msg)
            got = await asyncio.wait_for(ws.recv(), 30)
            assert got == msg, (got, msg)

        # Every connection is open at once, then all echo at once.
        await asyncio.gather(*(echo(i, ws) for i, ws in enumerate(conns)))
    finally:
        await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)


run()
