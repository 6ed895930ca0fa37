"""Headless Chromium runs the JavaScript client (the `GET /` page, which
loads `/client.js`) through a proxy that cuts every connection it carries,
again and again: the client reconnects each time, resumes from its
position, and the page's count of offsets missing or seen twice stays 0.

Usage:
    browser_client.py PORT      (a ringwave with --history ticks=... and
                                 the feed simulator on)
Prints "N passed, N failed"; exits non-zero on failure.
"""
import asyncio
import pathlib
import sys
import time

from cdp import page, run

# The proxy of the Python client's tests (clients/python/tests/conftest.py).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "clients" / "python" / "tests"))
from conftest import Proxy  # noqa: E402

PORT = int(sys.argv[1])
CUTS = 5


async def until(js, expr, what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = await js(expr)
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: {await js('JSON.stringify(window.ringwave && window.ringwave.feed)')}")


async def main():
    proxy = await Proxy(PORT).start()
    try:
        async with page() as (call, js):
            await call("Page.navigate", url=f"http://127.0.0.1:{proxy.port}/")
            await until(js, "window.ringwave && window.ringwave.feed && "
                        "window.ringwave.feed.state === 'connected' && window.ringwave.ticks >= 20",
                        "no ticks through the client")
            for cut in range(1, CUTS + 1):
                ticks = await js("window.ringwave.ticks")
                proxy.cut()
                # Connected again (a new connection), and ticks flow again.
                await until(js, f"window.ringwave.feed.connects > {cut} && "
                            f"window.ringwave.feed.state === 'connected' && "
                            f"window.ringwave.ticks > {ticks} + 10",
                            f"not back after cut {cut}")
            feed = await js("window.ringwave.feed")
            assert feed["recovered"] >= CUTS, feed
            assert feed["lost"] == 0, feed
            assert feed["holes"] == 0 and feed["repeats"] == 0, feed
            assert feed["gaps"] == 0, feed
            shown = await js("document.getElementById('recovered').textContent")
            assert shown == str(feed["recovered"]), shown
            print(f"{feed['connects']} connections, {feed['recovered']} resumed without a gap, "
                  f"{await js('window.ringwave.ticks')} ticks, last at {feed['epoch']}:{feed['offset']}")
    finally:
        await proxy.close()


run("chromium_client_recovers_through_cuts", main)
