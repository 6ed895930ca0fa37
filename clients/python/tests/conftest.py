"""A real ringwave for the client's tests, and a TCP proxy in between that
can cut every connection it carries or refuse new ones."""

from __future__ import annotations

import asyncio
import os
import pathlib
import re
import socket
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]


def ringwave_bin() -> str:
    path = os.environ.get("RINGWAVE_BIN") or str(REPO / "target" / "debug" / "ringwave")
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: build it (cargo build) or set RINGWAVE_BIN")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """ringwave on 127.0.0.1:PORT with ARGS, until stopped."""

    def __init__(self, args: list[str], port: int = 0):
        self.args = args
        self.proc = subprocess.Popen(
            [ringwave_bin(), "--listen", f"127.0.0.1:{port}", "--threads", "1",
             "--feed-sim", "off", "--log-level", "warn", *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"ws://127\.0\.0\.1:(\d+)", line)
        if not m:
            self.stop()
            pytest.fail(f"ringwave did not start: {line!r}")
        self.port = int(m.group(1))

    @property
    def feed(self) -> str:
        return f"ws://127.0.0.1:{self.port}/feed"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def server_factory():
    servers: list[Server] = []

    def start(args: list[str], port: int = 0) -> Server:
        s = Server(args, port)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


class Proxy:
    """Forwards 127.0.0.1:port to the server's port; ``cut()`` closes every
    connection it carries, ``refuse`` closes new ones at once, ``pause()``
    stops reading what the server sends (until ``resume()``)."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.refuse = False
        self.cuts = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> "Proxy":
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def feed(self) -> str:
        return f"ws://127.0.0.1:{self.port}/feed"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.close()
            return
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_w))

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter, gated: bool) -> None:
            try:
                while True:
                    if gated:
                        await self._flowing.wait()
                    data = await r.read(65536)
                    if not data:
                        break
                    w.write(data)
                    await w.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                w.close()

        try:
            await asyncio.gather(pipe(reader, up_w, False), pipe(up_r, writer, True))
        except asyncio.CancelledError:
            # The loop is ending with the connection still open: nothing to
            # report (asyncio would log a cancelled connection handler).
            pass
        self._writers.discard(writer)
        self._writers.discard(up_w)

    def pause(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def cut(self) -> None:
        self.cuts += 1
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
