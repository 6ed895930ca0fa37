"""Headless Chromium driven over the DevTools protocol (with the
`websockets` client): `async with page(flags) as (call, js): ...` starts
Chromium on a fresh profile, attaches to its page target, and yields
`call(method, **params)` (one DevTools command) and `js(expr)` (evaluate in
the page, by value). Chromium is stopped and its profile removed after.
`run(name, main)` runs a test's coroutine and prints its result line.
"""
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from websockets.asyncio.client import connect


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    raise SystemExit("chromium not found: scripts/test.sh installs Debian's chromium")


@contextlib.asynccontextmanager
async def page(flags=()):
    profile = tempfile.mkdtemp(prefix="ringwave-chromium-")
    proc = subprocess.Popen(
        [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", "--remote-debugging-port=0",
            *flags,
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.time() + 30
        while not os.path.exists(port_file) or not open(port_file).read().strip():
            if time.time() > deadline:
                raise AssertionError("chromium did not start its DevTools endpoint")
            await asyncio.sleep(0.05)
        port = open(port_file).read().split()[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        target = next(t for t in targets if t["type"] == "page")
        async with connect(target["webSocketDebuggerUrl"], max_size=None) as cdp:
            ids = iter(range(1, 1 << 30))

            async def call(method, **params):
                mid = next(ids)
                await cdp.send(json.dumps({"id": mid, "method": method, "params": params}))
                while True:
                    msg = json.loads(await cdp.recv())
                    if msg.get("id") == mid:
                        if "error" in msg:
                            raise AssertionError(f"{method}: {msg['error']}")
                        return msg["result"]

            async def js(expr):
                r = await call("Runtime.evaluate", expression=expr, returnByValue=True)
                return r["result"].get("value")

            yield call, js
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


def run(name, main, timeout=90):
    """Run the coroutine function `main` as the test `name` (bounded by
    `timeout` seconds) and print the "N passed, N failed" line the Rust side
    reads; exit non-zero on failure."""
    try:
        asyncio.run(asyncio.wait_for(main(), timeout))
        print(f"ok   {name}")
        print("1 passed, 0 failed")
    except BaseException as e:  # noqa: BLE001 - report any failure as a test failure
        print(f"FAIL {name}: {e!r}")
        print("0 passed, 1 failed")
        sys.exit(1)
