"""simnet benchmarks: kernel speed against a plain heapq loop, and the scale of a run.

Run with ``pytest -s tests/bench/test_bench_simnet.py``. By default the scale test is
issue 6's full measurement, 10,000 hubs and 1,000 records (about ten minutes); the
environment makes it smaller for a quick look:

    SIMNET_BENCH_HUBS=2000 SIMNET_BENCH_RECORDS=100 pytest -s tests/bench/test_bench_simnet.py
"""

from __future__ import annotations

import gc
import heapq
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from craftnet.simnet import compiled
from craftnet.simnet.kernel import Kernel
from craftnet.simnet.scenario import parse
from craftnet.simnet.sim import Simulation

TIMERS = 1_000
EVENTS = 200_000


def _timer_work(rng: random.Random) -> float:
    # The same work per event in both loops: draw the next delay.
    return rng.expovariate(1.0)


def kernel_run() -> float:
    """Events per second of the bare kernel: TIMERS timers, each re-arming itself."""
    k = Kernel()
    rng = random.Random(1)
    left = [EVENTS]

    def fire(_: Any) -> None:
        left[0] -= 1
        if left[0] > 0:
            k.after(_timer_work(rng), fire)

    for _ in range(TIMERS):
        k.at(_timer_work(rng), fire)
    start = time.perf_counter()
    k.run(float("inf"))
    return EVENTS / (time.perf_counter() - start)


def plain_run() -> float:
    """Events per second of a plain heapq loop doing the same timer work."""
    rng = random.Random(1)
    heap: list[tuple[float, int]] = []
    seq = 0
    for _ in range(TIMERS):
        seq += 1
        heapq.heappush(heap, (_timer_work(rng), seq))
    left = EVENTS
    start = time.perf_counter()
    while heap:
        now, _ = heapq.heappop(heap)
        left -= 1
        if left > 0:
            seq += 1
            heapq.heappush(heap, (now + _timer_work(rng), seq))
    return EVENTS / (time.perf_counter() - start)


def test_kernel_speed_against_a_plain_heapq_loop() -> None:
    kernel, plain = [], []
    for _ in range(5):
        kernel.append(kernel_run())
        plain.append(plain_run())
    k, p = statistics.median(kernel), statistics.median(plain)
    print(
        f"\nkernel: {k:,.0f} events/s; plain heapq loop: {p:,.0f} events/s; "
        f"ratio {k / p:.2f} (target >= 0.5), medians of 5"
    )


SCALE = """
name = "scale"
hubs = {hubs}
max_time_s = 3600
sample_interval_s = 30
verify = "shared"
[topology]
kind = "random_regular"
degree = 6
[engine]
seen_announcements = 64
[workload]
records = {records}
start_s = 1
window_s = {window}
"""


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def _peak_rss() -> int:
    """The process's peak resident set so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(args: list[str], compiled_build: Path | None) -> subprocess.CompletedProcess[str]:
    """This file run as a script in a fresh Python: with the compiled build, or without."""
    if compiled_build is not None:
        argv, env = compiled.child_command(compiled_build, [__file__, *args])
    else:
        argv, env = [sys.executable, "-P", __file__, *args], dict(os.environ)
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_scale_of_a_large_run() -> None:
    """Issue 6's scale target, measured whole: build, connect, publish, converge.

    Runs in a child process, so that the peak RSS is this run's, and in simnet's compiled
    mode (``craftnet sim run --compiled``) unless ``SIMNET_BENCH_COMPILED=0``.
    """
    hubs = os.environ.get("SIMNET_BENCH_HUBS", "10000")
    records = os.environ.get("SIMNET_BENCH_RECORDS", "1000")
    mode = os.environ.get("SIMNET_BENCH_COMPILED", "1") != "0"
    build = compiled.ensure_build(print) if mode else None
    print(f"\n{'compiled' if mode else 'interpreted'} (SIMNET_BENCH_COMPILED={int(mode)})")
    print(_child(["scale", hubs, records], build).stdout, end="")


def test_compiled_against_interpreted() -> None:
    """CPU of the same run, compiled and interpreted, alternating (3 each, medians)."""
    hubs = os.environ.get("SIMNET_BENCH_CMP_HUBS", "1000")
    records = os.environ.get("SIMNET_BENCH_CMP_RECORDS", "100")
    build = compiled.ensure_build(print)
    cpu: dict[str, list[float]] = {"interpreted": [], "compiled": []}
    outputs = set()
    for _ in range(3):
        for mode, where in (("interpreted", None), ("compiled", build)):
            line = _child(["cpu", hubs, records], where).stdout.strip().splitlines()[-1]
            result = json.loads(line)
            cpu[mode].append(result.pop("cpu"))
            outputs.add(json.dumps(result, sort_keys=True))
    i, c = statistics.median(cpu["interpreted"]), statistics.median(cpu["compiled"])
    print(
        f"\n{hubs} hubs x {records} records, CPU of the run: interpreted {i:.2f} s, compiled "
        f"{c:.2f} s (medians of 3, alternating): compiled/interpreted {c / i:.2f}; "
        f"load {os.getloadavg()[0]:.1f}"
    )
    assert len(outputs) == 1, outputs  # the same summary and event counts either way


def _cpu_of_a_run(hubs: int, records: int) -> dict[str, Any]:
    """The CPU seconds of one run, with what it computed (to compare the two modes)."""
    scenario = parse(SCALE.format(hubs=hubs, records=records, window=0.6 * records), "cmp")
    sim = Simulation(scenario, 1)
    cpu = time.process_time()
    result = sim.run()
    cpu = time.process_time() - cpu
    return {"cpu": cpu, "events": sim.kernel.events, "summary": result.metrics.summary()}


def _measure_scale(hubs: int, records: int) -> None:
    """Build, run and report one scale run (in the child process)."""
    window = 600.0 * records / 1000
    scenario = parse(SCALE.format(hubs=hubs, records=records, window=window), "scale")
    before = _rss()
    started = time.perf_counter()
    sim = Simulation(scenario, 1)
    build_s = time.perf_counter() - started
    built = _rss()
    t1 = time.perf_counter()
    cpu1 = time.process_time()
    result = sim.run()
    run_s = time.perf_counter() - t1
    run_cpu = time.process_time() - cpu1
    peak = _peak_rss()
    s = result.metrics.summary()
    wall = build_s + run_s
    deliveries = hubs * records - records
    # Largest N for 1,000 records in 30 minutes, if the cost grows linearly in N and in
    # records (it grows a little faster in N: bigger heaps and dicts): an upper estimate.
    per_hub = (build_s + run_s * 1000 / max(records, 1)) / hubs
    largest = int(1800 / per_hub)
    print(
        f"\n{hubs} hubs, {records} records over {window:.0f} s simulated: "
        f"converged={s['converged']} at {s['converged_at_s']} s simulated; "
        f"records everywhere {s['records_everywhere']}"
        f"\n  wall {wall:.1f} s (build {build_s:.1f} s, run {run_s:.1f} s; "
        f"target < 300 s for 10,000 x 1,000); the run took {run_cpu:.1f} s of CPU "
        f"(load average {os.getloadavg()[0]:.1f} at the end)"
        f"\n  kernel events {sim.kernel.events:,} ({sim.kernel.events / run_s:,.0f}/s), engine "
        f"events {s['traffic']['engine_events']:,}, deliveries {deliveries:,} "
        f"({run_s / max(deliveries, 1) * 1e6:.1f} us each, "
        f"{run_cpu / max(deliveries, 1) * 1e6:.1f} us of CPU)"
        f"\n  memory: {(built - before) / hubs / 1024:.1f} KiB per hub after build, "
        f"{(peak - before) / hubs / 1024:.1f} KiB per hub at peak; peak RSS "
        f"{peak / 2**30:.2f} GiB (target < 4 GiB)"
        f"\n  largest network with 1,000 records in 30 min: ~{largest:,} hubs "
        f"(linear estimate from this run)"
        f"\n  signatures: {s['verify']['verified']:,} verified, {s['verify']['shared']:,} "
        f"verdicts shared (verify = shared: each distinct signature checked once per run)"
    )
    assert s["records_everywhere"] == records


def test_retained_memory_per_hub_and_per_held_record() -> None:
    """What stays allocated (tracemalloc, after the run): per hub, and per record per hub.

    RSS after a big run is a high-water mark of messages in flight; this measures what a
    hub keeps, to scale to 10,000 hubs x 1,000 records.
    """
    import tracemalloc

    hubs = int(os.environ.get("SIMNET_BENCH_MEM_HUBS", "300"))
    counts = (20, 120)
    retained = []
    for records in counts:
        scenario = parse(SCALE.format(hubs=hubs, records=records, window=records * 0.6), "m")
        gc.collect()
        tracemalloc.start()
        sim = Simulation(scenario, 1)
        sim.run()
        sim.kernel._heap.clear()  # events still pending are not state a hub keeps
        gc.collect()
        retained.append(tracemalloc.get_traced_memory()[0])
        tracemalloc.stop()
        del sim
    per_record_hub = (retained[1] - retained[0]) / ((counts[1] - counts[0]) * hubs)
    per_hub = (retained[0] - per_record_hub * counts[0] * hubs) / hubs
    est = (per_hub + per_record_hub * 1000) * 10_000
    print(
        f"\nretained memory ({hubs} hubs, {counts} records): {per_hub / 1024:.1f} KiB per hub "
        f"+ {per_record_hub:.0f} B per record held per hub; scaled to 10,000 hubs x 1,000 "
        f"records: {est / 2**30:.2f} GiB (estimate)"
    )


if __name__ == "__main__":
    # A child of the tests above: `scale HUBS RECORDS` or `cpu HUBS RECORDS`.
    compiled.check_child()
    what, n_hubs, n_records = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if what == "scale":
        print(f"engine: {'compiled' if compiled.is_compiled() else 'interpreted'}")
        _measure_scale(n_hubs, n_records)
    else:
        print(json.dumps(_cpu_of_a_run(n_hubs, n_records), default=str))
