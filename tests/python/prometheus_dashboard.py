"""Every query of the Grafana dashboard returns data from a real Prometheus.

Usage: prometheus_dashboard.py HOST:PORT DASHBOARD.json

Starts Debian's `prometheus` on a free port, scraping HOST:PORT's /metrics
every second, waits until it has scraped (bounded), then asks it each
query of the dashboard (Grafana's variables replaced: every instance, a
30 s rate window) until each returns at least one series (bounded: 60 s
for all). Prints one line per query and "N passed, M failed"; exits 1 on
any failure. Prometheus is stopped on the way out.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

DEADLINE_SECS = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def queries(dashboard):
    """(panel title, expr) for every target of every panel, rows included."""
    out = []

    def walk(panels):
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                out.append((p["title"], t["expr"]))

    walk(dashboard["panels"])
    return out


def grafana_to_promql(expr):
    return (
        expr.replace("$__rate_interval", "30s")
        .replace("$__interval", "5s")
        .replace('"$instance"', '".*"')
    )


def get(port, path, params=None):
    url = f"http://127.0.0.1:{port}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def main():
    target, dashboard_path = sys.argv[1], sys.argv[2]
    with open(dashboard_path) as f:
        dashboard = json.load(f)
    exprs = queries(dashboard)
    assert exprs, "the dashboard has no queries"
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    work = tempfile.mkdtemp(prefix="ringwave-prometheus-")
    config = os.path.join(work, "prometheus.yml")
    with open(config, "w") as f:
        f.write(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: ringwave\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
    port = free_port()
    log = open(os.path.join(work, "prometheus.log"), "w")
    prom = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={os.path.join(work, 'data')}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    passed, failed = 0, 0
    try:
        deadline = time.monotonic() + DEADLINE_SECS
        up = None
        while time.monotonic() < deadline:
            if prom.poll() is not None:
                break
            try:
                r = json.loads(get(port, "/api/v1/query", {"query": 'up{job="ringwave"}'}))
                up = r["data"]["result"]
                if up and up[0]["value"][1] == "1":
                    break
            except OSError:
                pass
            time.sleep(0.2)
        if not up or up[0]["value"][1] != "1":
            with open(os.path.join(work, "prometheus.log")) as f:
                print(f.read()[-3000:])
            print(f"Prometheus did not scrape {target}: up = {up}")
            print("0 passed, 1 failed")
            sys.exit(1)
        print(f"Prometheus {port} scrapes {target}: up = 1")
        pending = {grafana_to_promql(e): title for title, e in exprs}
        results = {}
        while pending and time.monotonic() < deadline:
            for expr in list(pending):
                r = json.loads(get(port, "/api/v1/query", {"query": expr}))
                assert r["status"] == "success", r
                if r["data"]["result"]:
                    results[expr] = len(r["data"]["result"])
                    del pending[expr]
            if pending:
                time.sleep(0.5)
        for title, e in exprs:
            expr = grafana_to_promql(e)
            if expr in results:
                passed += 1
                print(f"ok   {title}: {expr} -> {results[expr]} series")
            else:
                failed += 1
                print(f"FAIL {title}: {expr} -> no data in {DEADLINE_SECS} s")
    finally:
        prom.terminate()
        try:
            prom.wait(timeout=10)
        except subprocess.TimeoutExpired:
            prom.kill()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
