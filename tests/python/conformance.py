"""Conformance cases modelled on the Autobahn|Testsuite server sections 1-10.

Usage: conformance.py HOST PORT
Each case opens a raw connection, sends frames exactly as written (optionally
chopped into small writes), and checks what the server sends back: echoes,
pongs, the close code, and that the server closes TCP afterwards. "Fail fast"
cases send the rest of a message only after the server's close frame would
have to arrive, so a server that waits for the whole message fails them.
Prints "N passed, N failed"; exits non-zero on any failure.
"""
import asyncio
import os
import struct
import sys

HOST, PORT = sys.argv[1], int(sys.argv[2])
TIMEOUT = 10
REQ = (
    f"GET /conformance HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
).encode()

TEXT, BINARY, CLOSE, PING, PONG, CONT = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0


def frame(op, payload=b"", fin=True, rsv=0, mask=True):
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, m | 126, n)
    else:
        head = struct.pack("!BBQ", b0, m | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    k = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big") if n else b""
    return head + key + masked


def close_frame(code=None, reason=b""):
    return frame(CLOSE, (struct.pack("!H", code) if code is not None else b"") + reason)


class Peer:
    def __init__(self, r, w):
        self.r, self.w = r, w

    async def send(self, data, chop=None):
        if chop:
            for i in range(0, len(data), chop):
                self.w.write(data[i:i + chop])
                await self.w.drain()
        else:
            self.w.write(data)
            await self.w.drain()

    async def frame(self):
        """Next server frame as (opcode, payload), or None at EOF."""
        try:
            h = await asyncio.wait_for(self.r.readexactly(2), TIMEOUT)
        except asyncio.IncompleteReadError:
            return None
        assert h[1] & 0x80 == 0, "server frames must not be masked"
        assert h[0] & 0x70 == 0, "no RSV bits without an extension"
        n = h[1] & 0x7F
        if n == 126:
            n = struct.unpack("!H", await self.r.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await self.r.readexactly(8))[0]
        payload = await asyncio.wait_for(self.r.readexactly(n), TIMEOUT)
        op, fin = h[0] & 0x0F, h[0] & 0x80
        if op in (TEXT, BINARY) and not fin:
            # Reassemble a fragmented server message.
            while True:
                nxt = await self.frame()
                assert nxt is not None and nxt[0] in (CONT, -CONT), "fragment continues"
                payload += nxt[1]
                if nxt[0] == -CONT:
                    break
        if op == CONT:
            return (-CONT if fin else CONT, payload)
        return (op, payload)

    async def eof(self):
        try:
            rest = await asyncio.wait_for(self.r.read(), TIMEOUT)
        except (ConnectionResetError, asyncio.IncompleteReadError):
            return True
        return rest == b""


async def open_peer():
    r, w = await asyncio.open_connection(HOST, PORT, limit=64 << 20)
    w.write(REQ)
    head = await r.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head[:60]
    return Peer(r, w)


async def expect(p, *events):
    """Each event: ('text'|'binary'|'pong', payload) or ('close', {codes})."""
    for ev in events:
        f = await p.frame()
        assert f is not None, f"expected {ev[0]}, got EOF"
        op, payload = f
        if ev[0] == "close":
            assert op == CLOSE, f"expected close {ev[1]}, got opcode {op}"
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            assert code in ev[1], f"close code {code}, expected one of {sorted(ev[1])}"
            assert await p.eof(), "server closes TCP after its close frame"
            return
        want = {"text": TEXT, "binary": BINARY, "pong": PONG}[ev[0]]
        assert op == want, f"expected {ev[0]}, got opcode {op}"
        exp = ev[1].encode() if isinstance(ev[1], str) else ev[1]
        assert payload == exp, f"{ev[0]} payload differs ({len(payload)} vs {len(exp)} bytes)"


CASES = []


def case(name):
    def deco(fn):
        CASES.append((name, fn))
        return fn
    return deco


def echo_case(name, op, payload, chop=None, frag=None):
    async def run():
        p = await open_peer()
        if frag:
            data = b""
            chunks = [payload[i:i + frag] for i in range(0, len(payload), frag)] or [payload]
            for i, c in enumerate(chunks):
                data += frame(op if i == 0 else CONT, c, fin=i == len(chunks) - 1)
        else:
            data = frame(op, payload)
        await p.send(data, chop)
        await expect(p, ("text" if op == TEXT else "binary", payload))
        await p.send(close_frame(1000))
        await expect(p, ("close", {1000}))
    CASES.append((name, run))


def fail_case(name, data, codes, before=(), chop=None):
    """Send `data`; expect the events in `before`, then a close with `codes`."""
    async def run():
        p = await open_peer()
        await p.send(data, chop)
        await expect(p, *before, ("close", codes))
    CASES.append((name, run))


# 1. Framing
for n in (0, 125, 126, 127, 128, 65535, 65536):
    echo_case(f"1.1 text {n} bytes", TEXT, "*" * n)
    echo_case(f"1.2 binary {n} bytes", BINARY, bytes([0xFE]) * n)
echo_case("1.1.8 text 65536 bytes in 997-byte writes", TEXT, "*" * 65536, chop=997)
echo_case("1.2.8 binary 65536 bytes in 997-byte writes", BINARY, b"\xfe" * 65536, chop=997)

# 2. Pings and pongs
for name, payload in [("empty", b""), ("text", "Hello, world!"), ("binary", b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"), ("125 bytes", b"\xfe" * 125)]:
    async def ping_run(payload=payload):
        p = await open_peer()
        await p.send(frame(PING, payload))
        await expect(p, ("pong", payload))
        await p.send(close_frame(1000))
        await expect(p, ("close", {1000}))
    CASES.append((f"2 ping {name}", ping_run))
fail_case("2.5 ping with 126-byte payload", frame(PING, b"\xfe" * 126), {1002})


@case("2.6 ping 125 bytes in 1-byte writes")
async def _():
    p = await open_peer()
    await p.send(frame(PING, b"\xfe" * 125), chop=1)
    await expect(p, ("pong", b"\xfe" * 125))


@case("2.7-2.9 unsolicited pongs are ignored")
async def _():
    p = await open_peer()
    await p.send(frame(PONG) + frame(PONG, "unsolicited") + frame(PING, "ping"))
    await expect(p, ("pong", "ping"))
    await p.send(close_frame(1000))
    await expect(p, ("close", {1000}))


@case("2.10/2.11 ten pings, ten pongs (whole and in 1-byte writes)")
async def _():
    for chop in (None, 1):
        p = await open_peer()
        await p.send(b"".join(frame(PING, f"payload-{i}") for i in range(10)), chop)
        for i in range(10):
            await expect(p, ("pong", f"payload-{i}"))


# 3. Reserved bits
for rsv in range(1, 8):
    fail_case(f"3 RSV={rsv} on text", frame(TEXT, "Hello", rsv=rsv), {1002})
fail_case("3.2 echo, then RSV text, then ping: echo only",
          frame(TEXT, "Hello") + frame(TEXT, "Hello", rsv=2) + frame(PING), {1002}, before=[("text", "Hello")])
fail_case("3.3 same in 1-byte writes",
          frame(TEXT, "Hello") + frame(TEXT, "Hello", rsv=3) + frame(PING), {1002}, before=[("text", "Hello")], chop=1)
fail_case("3.5 RSV on binary", frame(BINARY, b"\x00\xff", rsv=5), {1002})
fail_case("3.6 RSV on ping", frame(PING, "Hello", rsv=6), {1002})
fail_case("3.7 RSV on close", frame(CLOSE, b"\x03\xe8", rsv=7), {1002})

# 4. Opcodes
for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15):
    fail_case(f"4 reserved opcode {op}", frame(op, "reserved"), {1002})
fail_case("4.1.3 echo, reserved opcode, ping: echo only",
          frame(TEXT, "Hello") + frame(5) + frame(PING), {1002}, before=[("text", "Hello")])

# 5. Fragmentation
fail_case("5.1 fragmented ping", frame(PING, "frag1", fin=False) + frame(CONT, "frag2"), {1002})
fail_case("5.2 fragmented pong", frame(PONG, "frag1", fin=False) + frame(CONT, "frag2"), {1002})
echo_case("5.3 text in two fragments", TEXT, "fragment1fragment2", frag=9)
echo_case("5.4 text in two fragments, 1-byte writes", TEXT, "fragment1fragment2", frag=9, chop=1)


@case("5.6/5.7 ping between fragments")
async def _():
    for chop in (None, 1):
        p = await open_peer()
        await p.send(frame(TEXT, "fragment1", fin=False) + frame(PING, "ping") + frame(CONT, "fragment2"), chop)
        await expect(p, ("pong", "ping"), ("text", "fragment1fragment2"))


fail_case("5.9 continuation with FIN and no start", frame(CONT, "x") + frame(TEXT, "after"), {1002})
fail_case("5.10 continuation without FIN and no start", frame(CONT, "x", fin=False), {1002})
fail_case("5.15 continuation after a finished message",
          frame(TEXT, "fragment1", fin=False) + frame(CONT, "fragment2") + frame(CONT, "fragment3", fin=False) + frame(CONT, "fragment4"),
          {1002}, before=[("text", "fragment1fragment2")])
fail_case("5.18 new text inside a fragmented text", frame(TEXT, "a", fin=False) + frame(TEXT, "b"), {1002})
echo_case("5.x binary in many small fragments", BINARY, bytes(range(256)) * 8, frag=7)

# 6. UTF-8
VALID = ["Hello-µ@ßöäüàá-UTF-8!!", "κόσμε", "\u0080", "\u07ff", "\u0800", "\uffff", "\U00010000", "\U0010ffff", "\ufffd"]
for i, s in enumerate(VALID):
    echo_case(f"6 valid UTF-8 #{i}", TEXT, s)
    echo_case(f"6 valid UTF-8 #{i}, fragmented per byte", TEXT, s, frag=1)
INVALID = [
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",  # surrogate
    b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf",  # overlong
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"\xf5\x80\x80\x80", b"\xfe", b"\xff", b"\x80", b"\xbf",
    b"\xc0", b"\xe0\x80", b"\xed\xbf\xbf",
    b"\xce\xba\xe1\xbd",  # truncated at the end
]
for i, s in enumerate(INVALID):
    fail_case(f"6 invalid UTF-8 #{i}", frame(TEXT, s), {1007})
    async def frag_run(s=s):
        p = await open_peer()
        await p.send(b"".join(frame(TEXT if j == 0 else CONT, s[j:j + 1], fin=j == len(s) - 1) for j in range(len(s))))
        await expect(p, ("close", {1007}))
    CASES.append((f"6 invalid UTF-8 #{i}, fragmented per byte", frag_run))


@case("6.4.1 fail fast: invalid second fragment, third never needed")
async def _():
    p = await open_peer()
    await p.send(frame(TEXT, "κόσμε", fin=False) + frame(CONT, b"\xf4\x90\x80\x80", fin=False))
    await expect(p, ("close", {1007}))


@case("6.4.3 fail fast: invalid bytes in the middle of one frame")
async def _():
    p = await open_peer()
    payload = "κόσμε".encode() + b"\xf4\x90\x80\x80" + "edited".encode()
    data = frame(TEXT, payload)
    head = len(data) - len(payload)
    # Only the header, the valid part and the invalid sequence; the rest of
    # the frame is never sent.
    await p.send(data[:head + len("κόσμε".encode()) + 4])
    await expect(p, ("close", {1007}))


# 7. Close handling
@case("7.1.1 echo, then close")
async def _():
    p = await open_peer()
    await p.send(frame(TEXT, "Hello") + close_frame(1000))
    await expect(p, ("text", "Hello"), ("close", {1000}))


@case("7.1.2-7.1.4 nothing answered after a close")
async def _():
    p = await open_peer()
    await p.send(close_frame(1000) + close_frame(1000) + frame(PING) + frame(TEXT, "late"))
    await expect(p, ("close", {1000}))


@case("7.1.5 fragment, close, continuation")
async def _():
    p = await open_peer()
    await p.send(frame(TEXT, "fragment1", fin=False) + close_frame(1000) + frame(CONT, "fragment2"))
    await expect(p, ("close", {1000}))


@case("7.1.6 large message, close, ping")
async def _():
    p = await open_peer()
    await p.send(frame(TEXT, "BAsd7&jh23" * 26214) + close_frame(1000) + frame(PING))
    await expect(p, ("text", "BAsd7&jh23" * 26214), ("close", {1000}))


@case("7.3.1 empty close is answered")
async def _():
    p = await open_peer()
    await p.send(frame(CLOSE))
    await expect(p, ("close", {1005, 1000}))


fail_case("7.3.2 close with 1-byte payload", frame(CLOSE, b"\x03"), {1002})
for code, reason in [(1000, b""), (1000, b"Hello World!"), (1000, b"*" * 123)]:
    fail_case(f"7.3 close {code} reason {len(reason)} bytes", close_frame(code, reason), {code})
fail_case("7.3.6 close reason of 124 bytes", close_frame(1000, b"*" * 124), {1002})
fail_case("7.5.1 close reason with invalid UTF-8", close_frame(1000, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"), {1007})
for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999):
    fail_case(f"7.7 valid close code {code} is echoed", close_frame(code), {code})
for code in (0, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535):
    fail_case(f"7.9/7.13 invalid close code {code}", close_frame(code), {1002})

# 9. Limits and performance (messages up to 16 MiB)
for size in (64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20):
    echo_case(f"9.1 text {size} bytes", TEXT, "*" * size)
    echo_case(f"9.2 binary {size} bytes", BINARY, b"\xfe" * size)
for frag in (64, 256, 1024, 4096, 16384, 65536, 262144, 1 << 20, 4 << 20):
    echo_case(f"9.3 text 4 MiB in {frag}-byte fragments", TEXT, "*" * (4 << 20), frag=frag)
    echo_case(f"9.4 binary 4 MiB in {frag}-byte fragments", BINARY, b"\xfe" * (4 << 20), frag=frag)
for chop in (64, 128, 256, 512, 1024, 2048, 4096):
    echo_case(f"9.5 text 1 MiB in {chop}-byte writes", TEXT, "*" * (1 << 20), chop=chop)
    echo_case(f"9.6 binary 1 MiB in {chop}-byte writes", BINARY, b"\xfe" * (1 << 20), chop=chop)


@case("9.7/9.8 1000 round trips of 0..64 KiB")
async def _():
    for op in (TEXT, BINARY):
        p = await open_peer()
        for i in range(1000):
            size = (i * 65) % 65537
            payload = "*" * size if op == TEXT else b"\xfe" * size
            await p.send(frame(op, payload))
            await expect(p, ("text" if op == TEXT else "binary", payload))


# 10. Misc
echo_case("10.1 text 64 KiB in 1300-byte fragments", TEXT, "*" * 65536, frag=1300)


async def main():
    passed = failed = 0
    for name, fn in CASES:
        try:
            await asyncio.wait_for(fn(), 60)
            passed += 1
        except BaseException as e:  # noqa: BLE001 - every failure is reported
            failed += 1
            print(f"FAIL {name}: {e!r}", flush=True)
    print(f"{passed} passed, {failed} failed")
    return failed


sys.exit(1 if asyncio.run(main()) else 0)
