#!/usr/bin/env bash
# The one test command: formatting, lints, and every test in the workspace,
# including the integration tests that drive the real server with Python's
# `websockets` client and headless Chromium on both backends.
#
# Installs what the tests need when missing: a Python venv under .venv with
# the packages in tests/python/requirements.txt (websockets, h2, wsproto,
# PyJWT, cryptography and pytest),
# and Debian's chromium, curl, nghttp2-client, nats-server and prometheus.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "test dependencies"
# apt waits for another apt run's lock (up to 10 minutes) rather than
# failing at once.
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@"; }
if [ ! -x .venv/bin/python ]; then
    # Debian's python3 makes venvs only with python3-venv installed.
    if ! python3 -m venv .venv; then
        [ "$(id -u)" -eq 0 ] || { echo "python3 -m venv failed: install python3-venv" >&2; exit 1; }
        rm -rf .venv
        apt_get update -qq
        apt_get install -y -qq python3-venv >/dev/null
        python3 -m venv .venv
    fi
fi
if ! .venv/bin/python -c "import websockets, prometheus_client, h2, wsproto, jwt, cryptography, pytest" 2>/dev/null; then
    .venv/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
fi
# Debian packages: chromium for the browser tests, curl and openssl for the
# TLS tests (SSE over https, a renegotiation attempt), a TrueType font for
# the benchmark report's charts.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# nats-server for the NATS bridge tests (tests/server_nats.rs starts its own
# on free ports, one per test).
[ -x /usr/sbin/nats-server ] || [ -x /usr/bin/nats-server ] || missing+=(nats-server)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
# nghttp (and h2load for the benchmarks) for the HTTP/2 tests.
command -v nghttp >/dev/null 2>&1 || missing+=(nghttp2-client)
# Prometheus for the dashboard test (tests/server_prometheus.rs starts its
# own on a free port; the package's service is not used).
[ -x /usr/bin/prometheus ] || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        apt_get update -qq
        apt_get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "missing Debian packages (${missing[*]}) and this is not root: install them" >&2
        exit 1
    fi
fi
.venv/bin/python -c "import websockets; print('python websockets', websockets.__version__)"
chromium --version

step "layers (no cycle, no file over 900 lines) and documentation links"
python3 scripts/layers.py --self-test
python3 scripts/layers.py
python3 scripts/doclinks.py

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo doc (no warnings: every link resolves, none to a private item)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p ringwave --quiet

step "cargo test --workspace"
cargo test --workspace

# The Python client (clients/python), installed as a user would, against
# the server cargo test built: pytest starts its own servers and a proxy
# that cuts their connections.
step "Python client: pip install ./clients/python, pytest"
.venv/bin/pip install --quiet --disable-pip-version-check ./clients/python
RINGWAVE_BIN=target/debug/ringwave .venv/bin/python -m pytest -q -p no:cacheprovider clients/python/tests

# The JavaScript client (clients/js): its packages (the TypeScript compiler)
# into its git-ignored node_modules, built, and Node's test runner against
# the same server.
step "JavaScript client: npm ci, npm run build, npm test"
(cd clients/js && npm ci --no-audit --no-fund --silent && npm run --silent build &&
    RINGWAVE_BIN="$PWD/../../target/debug/ringwave" npm test --silent)
# The demo page's copy of the client (served on /client.js, built into the
# binary) is this build's.
if ! cmp -s clients/js/dist/index.js src/server/client.js; then
    echo "src/server/client.js is not the build of clients/js/src: run (cd clients/js && npm run page)" >&2
    exit 1
fi

# The io_uring backend accepts into direct descriptors (the ring's fixed file
# table) when the kernel has them; its tests run again on regular
# descriptors, forced by the variable the server reads.
step "io_uring tests on regular descriptors (RINGWAVE_URING_NO_DIRECT=1)"
RINGWAVE_URING_NO_DIRECT=1 cargo test --workspace -- uring

# Every fuzz target for a short bounded time from its seeds (scripts/fuzz.sh
# runs them long); installs cargo-fuzz when missing.
step "fuzz smoke (${FUZZ_SMOKE_SECS:=15} s per target)"
scripts/fuzz.sh "$FUZZ_SMOKE_SECS"
