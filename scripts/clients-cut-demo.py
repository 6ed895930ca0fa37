"""Both clients' tail commands (Node and Python) following `ticks` through
a TCP proxy that cuts their connections twice, 2 s apart: prints their
lines around each cut and whether the offsets run on with no gap and no
repeat.

    target/debug/ringwave --listen 127.0.0.1:9801 --history ticks=100000 &
    .venv/bin/python scripts/clients-cut-demo.py 9801

Needs clients/js built (npm ci && npm run build) and the venv of
scripts/test.sh."""
import asyncio
import os
import subprocess
import sys
import time
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "clients/python/tests"))
from conftest import Proxy

SERVER_PORT = int(sys.argv[1])

async def main():
    proxy = await Proxy(SERVER_PORT).start()
    url = f"ws://127.0.0.1:{proxy.port}/feed"
    procs = {
        "node": subprocess.Popen(["node", os.path.join(ROOT, "clients/js/bin/ringwave-tail.mjs"), url, "ticks"], stdout=subprocess.PIPE, text=True),
        "python": subprocess.Popen([os.path.join(ROOT, ".venv/bin/python"), "-m", "ringwave_client", "tail", url, "ticks"], stdout=subprocess.PIPE, text=True, cwd=os.path.join(ROOT, "clients/python")),
    }
    lines = {k: [] for k in procs}
    loop = asyncio.get_running_loop()
    def reader(name, p):
        for l in p.stdout:
            lines[name].append((time.monotonic(), l.rstrip("\n")))
    futs = [loop.run_in_executor(None, reader, n, p) for n, p in procs.items()]
    cuts = []
    for _ in range(2):
        await asyncio.sleep(2.0)
        cuts.append(time.monotonic())
        proxy.cut()
        print(f"-- cut {len(cuts)}: the proxy closed every connection", flush=True)
    await asyncio.sleep(2.0)
    for p in procs.values():
        p.terminate()
    await asyncio.gather(*futs)
    for name, ls in lines.items():
        offs = [int(l.split("\t")[0].split(":")[1]) for _, l in ls]
        ok = offs == list(range(offs[0], offs[0] + len(offs)))
        print(f"== {name}: {len(ls)} lines, offsets {offs[0]}..{offs[-1]}, contiguous with no repeat: {ok}")
        for c in cuts:
            i = next(i for i, (t, _) in enumerate(ls) if t > c)
            for t, l in ls[max(0, i - 2): i + 2]:
                print(f"   {'after ' if t > c else 'before'} cut: {l[:100]}")
    await proxy.close()

asyncio.run(main())
