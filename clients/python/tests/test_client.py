"""The client against a real ringwave: every publication once and in order
while a proxy cuts the connection every second; a server restarted (a new
epoch: the client says the position was lost and takes a snapshot); a
token refreshed in band; gap events for what the server skipped; the tail
command."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import urllib.request

import jwt
from websockets.asyncio.client import connect

from conftest import Proxy, free_port

from ringwave_client import Client, Gap, Publication, Resubscribed


async def publish(ws, topic: str, data: str, key: str | None = None) -> None:
    msg = {"op": "publish", "topic": topic, "data": data}
    if key:
        msg["key"] = key
    await ws.send(json.dumps(msg))


async def subscribed(client: Client, topic: str) -> None:
    """Until the client's first `subscribed` for `topic` came (at most 10 s)."""

    async def poll() -> None:
        while not (topic in client._subs and client._subs[topic]._subscribed_once):
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), 10)


def test_every_publication_once_and_in_order_while_the_connection_is_cut(server_factory):
    n = 3000
    srv = server_factory(["--history", "t=100000", "--allow-client-publish"])

    async def run() -> None:
        proxy = await Proxy(srv.port).start()
        pub = await connect(srv.feed)
        async with Client(proxy.feed, backoff_base=0.05, backoff_cap=0.5) as client:
            sub = client.subscribe("t")
            await subscribed(client, "t")

            async def cutter() -> None:
                while True:
                    await asyncio.sleep(1.0)
                    proxy.cut()

            async def publish_all() -> None:
                for i in range(n):
                    await publish(pub, "t", f"p{i + 1}")
                    if i % 100 == 99:
                        await asyncio.sleep(0.1)  # about 1,000 a second

            cutting = asyncio.create_task(cutter())
            publishing = asyncio.create_task(publish_all())
            got: list[int] = []

            async def collect() -> None:
                async for ev in sub:
                    if isinstance(ev, Resubscribed):
                        assert ev.recovered, ev
                        continue
                    assert isinstance(ev, Publication), ev
                    assert ev.data == f"p{ev.offset}", ev
                    got.append(ev.offset)
                    if ev.offset == n:
                        return

            await asyncio.wait_for(collect(), 60)
            cutting.cancel()
            await publishing
            assert got == list(range(1, n + 1)), "missing or repeated offsets"
            assert proxy.cuts >= 2 and client.connects >= 3, (proxy.cuts, client.connects)
            print(f"{n} publications once and in order over {client.connects} connections")
        await pub.close()
        await proxy.close()

    asyncio.run(run())


def test_publications_the_server_skipped_come_as_gap_events(server_factory):
    n = 4000
    srv = server_factory(
        ["--history", "g=100000", "--topic-policy", "g=drop", "--max-buffered", "65536",
         "--allow-client-publish"]
    )

    def drops() -> int:
        text = urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/metrics", timeout=10).read()
        return int(re.search(rb"^ringwave_slow_consumer_drops_total (\d+)", text, re.M).group(1))

    async def run() -> None:
        proxy = await Proxy(srv.port).start()
        pub = await connect(srv.feed)
        async with Client(proxy.feed) as client:
            sub = client.subscribe("g")
            await subscribed(client, "g")
            # The subscriber's connection stops being read: its unsent bytes
            # pass --max-buffered once the socket buffers are full (16 MB).
            proxy.pause()
            body = "x" * 4000
            for i in range(1, n + 1):
                await publish(pub, "g", f"{i} {body}")
            deadline = time.time() + 20
            while drops() == 0:
                assert time.time() < deadline, "nothing dropped"
                await asyncio.sleep(0.05)
            proxy.resume()

            # A gap is told ahead of the next publication the subscriber
            # gets: publish "end" until one arrives (one published while it
            # is still behind is skipped too).
            async def ender() -> None:
                while True:
                    await publish(pub, "g", "end")
                    await asyncio.sleep(0.1)

            ending = asyncio.create_task(ender())
            seen: dict[int, int] = {}
            gaps = 0
            last = 0

            async def collect() -> None:
                nonlocal gaps, last
                async for ev in sub:
                    if isinstance(ev, Gap):
                        gaps += 1
                        assert ev.dropped == ev.to_offset - ev.from_offset + 1, ev
                        for o in range(ev.from_offset, ev.to_offset + 1):
                            seen[o] = seen.get(o, 0) + 1
                        continue
                    assert isinstance(ev, Publication), ev
                    seen[ev.offset] = seen.get(ev.offset, 0) + 1
                    if ev.data == "end":
                        last = ev.offset
                        return

            await asyncio.wait_for(collect(), 30)
            ending.cancel()
            # Every offset up to the first "end" received either arrived or
            # was in a gap, once.
            assert gaps >= 1, "no gap event"
            assert last > n, last
            assert sorted(seen) == list(range(1, last + 1)), "an offset missing or out of range"
            assert set(seen.values()) == {1}, "an offset twice"
            print(f"{gaps} gap events; {len(seen)} offsets each received or in a gap once; {drops()} dropped")
        await pub.close()
        await proxy.close()

    asyncio.run(run())


def test_a_restarted_server_is_a_lost_position_and_a_snapshot(server_factory):
    args = ["--history", "t=1000", "--allow-client-publish"]
    port = free_port()
    first = server_factory(args, port)

    async def run() -> None:
        proxy = await Proxy(port).start()
        async with Client(proxy.feed, backoff_base=0.05, backoff_cap=0.2) as client:
            sub = client.subscribe("t", snapshot=True)
            await subscribed(client, "t")
            pub = await connect(first.feed)
            await publish(pub, "t", "old", key="k")
            ev = await asyncio.wait_for(sub.__anext__(), 10)
            assert (ev.data, ev.offset) == ("old", 1), ev
            old_epoch = ev.epoch
            await pub.close()
            # The server restarts while no client can reach it; the new one
            # has a new epoch and a value per key before the client is back.
            proxy.refuse = True
            first.stop()
            proxy.cut()
            second = server_factory(args, port)
            pub = await connect(second.feed)
            for key, value in [("k", "new-k"), ("j", "new-j"), ("k", "newer-k")]:
                await publish(pub, "t", value, key=key)
            proxy.refuse = False
            resub = await asyncio.wait_for(sub.__anext__(), 10)
            assert isinstance(resub, Resubscribed) and resub.lost, resub
            assert resub.epoch != old_epoch
            snapshot = [await asyncio.wait_for(sub.__anext__(), 10) for _ in range(2)]
            assert all(isinstance(p, Publication) and p.snapshot for p in snapshot), snapshot
            assert sorted((p.key, p.data) for p in snapshot) == [("j", "new-j"), ("k", "newer-k")]
            # Then live publications, in the new epoch.
            await publish(pub, "t", "live")
            live = await asyncio.wait_for(sub.__anext__(), 10)
            assert (live.data, live.epoch, live.snapshot) == ("live", resub.epoch, False), live
            await pub.close()
        await proxy.close()

    asyncio.run(run())


def test_a_token_refreshed_in_band_keeps_the_connection(server_factory, tmp_path):
    secret = b"a secret for the client test, 32 bytes or more"
    (tmp_path / "hs.key").write_bytes(secret)
    srv = server_factory(["--jwt-key", str(tmp_path / "hs.key"), "--allow-client-publish"])
    issued: list[float] = []

    async def get_token() -> str:
        now = time.time()
        issued.append(now)
        claims = {"sub": "py", "exp": int(now) + 3, "topics": {"subscribe": ["t"], "publish": ["t"]}}
        return jwt.encode(claims, secret, algorithm="HS256")

    async def run() -> None:
        async with Client(srv.feed, get_token=get_token, refresh_at=0.5) as client:
            sub = client.subscribe("t")
            await subscribed(client, "t")
            # Past two lifetimes of the first token (3 s, and the server's
            # 2 s of leeway), publications still arrive on one connection.
            deadline = time.monotonic() + 7
            i = 0
            while time.monotonic() < deadline:
                i += 1
                await client.publish("t", f"m{i}")
                ev = await asyncio.wait_for(sub.__anext__(), 5)
                assert isinstance(ev, Publication) and ev.data == f"m{i}", ev
                await asyncio.sleep(0.2)
            assert client.connects == 1, f"reconnected: {client.connects}"
            assert len(issued) >= 4, f"tokens issued: {len(issued)}"

    asyncio.run(run())


def test_tail_prints_epoch_offset_and_data(server_factory):
    srv = server_factory(["--history", "t=100", "--allow-client-publish"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "ringwave_client", "tail", srv.feed, "t"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines: list[str] = []
        asyncio.run(publish_loop(srv.feed, proc, lines))
        for line in lines:
            assert re.fullmatch(r"[0-9a-f]{8}:\d+\tm\d+", line), line
        offsets = [int(line.split("\t")[0].split(":")[1]) for line in lines]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets), lines
    finally:
        proc.kill()
        proc.wait(timeout=10)


async def publish_loop(feed: str, proc: subprocess.Popen, lines: list[str]) -> None:
    """Publish m1, m2, … every 50 ms (at most 200) until the tail printed
    three lines."""
    pub = await connect(feed)
    loop = asyncio.get_running_loop()
    assert proc.stdout is not None
    reading = loop.run_in_executor(None, lambda: [proc.stdout.readline().rstrip("\n") for _ in range(3)])
    for i in range(200):
        if reading.done():
            break
        await publish(pub, "t", f"m{i + 1}")
        await asyncio.sleep(0.05)
    lines.extend(await asyncio.wait_for(reading, 10))
    await pub.close()
