"""The case runner the client scripts share: `@case` registers an async test,
`run()` runs them in order, prints "ok"/"FAIL" per case and
"N passed, N failed", and exits non-zero on any failure."""
import asyncio
import sys
import traceback

_cases = []


def case(fn):
    _cases.append(fn)
    return fn


async def _main():
    passed = failed = 0
    for fn in _cases:
        try:
            await fn()
            passed += 1
            print(f"ok   {fn.__name__}", flush=True)
        except Exception:
            failed += 1
            print(f"FAIL {fn.__name__}", flush=True)
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    return failed


def run():
    sys.exit(1 if asyncio.run(_main()) else 0)
