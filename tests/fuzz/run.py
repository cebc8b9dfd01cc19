"""Coverage-guided fuzzing of one target with atheris (libFuzzer), for ``make fuzz``.

``python tests/fuzz/run.py TARGET [libFuzzer options] CORPUS_DIR`` instruments the
craftnet packages, then lets libFuzzer mutate the corpus towards new coverage. Besides
libFuzzer's own output it keeps ``build/fuzz/TARGET.json``: inputs run, the slowest
input (its CPU time and size; the input itself as ``build/fuzz/TARGET.slowest``) and the
process's peak memory. CPU time, not wall time: on a machine shared with other work, a
wall clock mostly measures when the scheduler let this process run. A crash (any
exception but a ``CraftnetError``) stops the run and libFuzzer writes the input to
``build/fuzz/crashes/TARGET/``; once fixed, copy it to ``tests/fuzz/crashes/TARGET/`` so
that ``make test`` replays it.

``python tests/fuzz/run.py --summary`` prints the table of all targets' figures.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE.parents[1] / "build" / "fuzz"
DUMP_EVERY = 5000


def summary() -> None:
    """Print one line of figures per target run so far."""
    print(f"{'target':<12} {'inputs':>8} {'slowest input (CPU)':>22} {'peak RSS':>9}")
    for path in sorted(OUT.glob("*.json")):
        s = json.loads(path.read_text())
        slowest = f"{s['slowest_ms']:.1f} ms ({s['slowest_len']} B)"
        print(f"{s['target']:<12} {s['inputs']:>8} {slowest:>22} {s['peak_rss_mib']:>5.0f} MiB")


def main() -> None:
    """Fuzz the target named by the first argument; the rest goes to libFuzzer."""
    if sys.argv[1:] == ["--summary"]:
        summary()
        return
    import atheris

    target = sys.argv.pop(1)
    sys.path.insert(0, str(HERE))
    with atheris.instrument_imports(include=["craftnet"]):
        from fuzz_targets import TARGETS, run_one
    if target not in TARGETS:
        raise SystemExit(f"unknown target {target!r}; one of {', '.join(sorted(TARGETS))}")
    OUT.mkdir(parents=True, exist_ok=True)
    stats: dict[str, Any] = {"target": target, "inputs": 0, "slowest_ms": 0.0, "slowest_len": 0}

    def dump() -> None:
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        stats["peak_rss_mib"] = peak_kib / 1024
        (OUT / f"{target}.json").write_text(json.dumps(stats, sort_keys=True))

    def one_input(data: bytes) -> None:
        start = time.process_time()
        try:
            run_one(target, data)
        finally:
            took = (time.process_time() - start) * 1000
            stats["inputs"] += 1
            if took > stats["slowest_ms"]:
                stats["slowest_ms"], stats["slowest_len"] = took, len(data)
                (OUT / f"{target}.slowest").write_bytes(data)
            if stats["inputs"] % DUMP_EVERY == 0:
                dump()

    (OUT / "crashes" / target).mkdir(parents=True, exist_ok=True)
    sys.argv.append(f"-artifact_prefix={OUT / 'crashes' / target}/")
    atheris.Setup(sys.argv, one_input)
    dump()
    atheris.Fuzz()


if __name__ == "__main__":
    main()
