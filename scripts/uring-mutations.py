#!/usr/bin/env python3
"""Mutation check of the io_uring lifecycle tests (src/driver/uring/tests.rs).

Each mutation below breaks one rule of a connection's life in the driver;
the script applies it, runs the driver's unit tests, restores the file and
prints which tests failed. Every mutation must make at least one test fail
(rc=101): a mutation that survives names a rule no test holds.

Run from the repository root: python3 scripts/uring-mutations.py
"""
import subprocess,shutil,sys
muts=[
 ("src/driver/uring/mod.rs","        if !busy {\n            self.close_fd(index);","        if true {\n            self.close_fd(index);","close closes the socket with a send in flight"),
 ("src/driver/uring/mod.rs","if s.closing() && s.inflight() == 0 {","if s.closing() {","free a closing slot with ops in flight"),
 ("src/driver/uring/complete.rs","            if !op.done() {","            if false && !op.done() {","a short write is taken as done"),
 ("src/driver/uring/complete.rs",".filter(|s| s.generation == ud.generation)",".filter(|_| true)","stale completions act on the slot"),
 ("src/driver/uring/complete.rs","                    s.fail();\n","","EOF leaves the slot live"),
 ("src/driver/uring/slot.rs","self.recv_armed as u32 + self.shutting as u32 + self.send_in_flight() as u32","self.shutting as u32 + self.send_in_flight() as u32","the recv does not count as in flight"),
 ("src/driver/uring/complete.rs","        self.sends.release(op.kind);\n","","a completed send keeps its memory"),
]
for f,a,b,why in muts:
    src=open(f).read()
    assert src.count(a)>=1,(f,a)
    open(f,'w').write(src.replace(a,b,1))
    r=subprocess.run("cargo test -q --lib driver::uring 2>&1",shell=True,capture_output=True,text=True)
    open(f,'w').write(src)
    out=r.stdout
    failed=[l.split()[1] for l in out.splitlines() if l.startswith('test ') and l.endswith('FAILED')]
    fl=[l for l in out.splitlines() if l.strip().startswith('driver::uring') or 'FAILED' in l]
    survived = r.returncode == 0
    print(f"{'SURVIVED' if survived else 'killed'} mutation: {why}: rc={r.returncode} failing: {sorted(set(l.strip() for l in out.splitlines() if l.strip().startswith('driver::uring::')))}")
