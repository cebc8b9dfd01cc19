"""CID construction, hashing and equality: every decoded link and every dict of CIDs.

Run with ``pytest -s tests/bench/test_bench_cid.py``. Prints CPU nanoseconds per CID
(best of 7 rounds over 1,000 CIDs), in this process (interpreted) and, when mypyc and a
C compiler are at hand, in simnet's compiled build.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

from craftnet.simnet import compiled

N = 1_000


def _best(fn: Callable[[], object], reps: int = 100) -> float:
    """CPU nanoseconds per CID of ``fn`` (which handles N of them), best of 7 rounds."""
    best = float("inf")
    for _ in range(7):
        started = time.process_time()
        for _ in range(reps):
            fn()
        best = min(best, (time.process_time() - started) / (reps * N) * 1e9)
    return best


def measure() -> str:
    """One line of figures for the Cid of this process."""
    from craftnet.archive.cid import RAW, Cid

    cids = [Cid.of(i.to_bytes(4, "big")) for i in range(N)]
    raws = [c.bytes for c in cids]
    links = [b"\x00" + r for r in raws]
    digests = [c.digest for c in cids]
    twins = [Cid.from_bytes(r) for r in raws]
    by_cid = {c: 1 for c in cids}
    figures = {
        "from_bytes": _best(lambda: [Cid.from_bytes(r) for r in raws]),
        "from_link": _best(lambda: [Cid.from_link(r) for r in links]),
        "Cid(codec, digest)": _best(lambda: [Cid(RAW, d) for d in digests]),
        "dict lookup": _best(lambda: [by_cid[c] for c in twins]),
        "==": _best(lambda: [a == b for a, b in zip(cids, twins, strict=True)]),
    }
    return ", ".join(f"{name} {ns:.0f} ns" for name, ns in figures.items())


def test_cid_operations() -> None:
    print(f"\ninterpreted: {measure()} (load {os.getloadavg()[0]:.1f})")
    build = compiled.ensure_build(print)
    argv, env = compiled.child_command(build, [__file__])
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    print(f"compiled:    {done.stdout.strip()} (load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    compiled.check_child()
    print(measure())
    sys.exit(0)
