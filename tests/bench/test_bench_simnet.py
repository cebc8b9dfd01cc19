"""simnet benchmarks: kernel speed against a plain heapq loop, and the scale of a run.

Run with ``pytest -s tests/bench/test_bench_simnet.py``. By default the scale test is
issue 6's full measurement, 10,000 hubs and 1,000 records (about ten minutes); the
environment makes it smaller for a quick look:

    SIMNET_BENCH_HUBS=2000 SIMNET_BENCH_RECORDS=100 pytest -s tests/bench/test_bench_simnet.py
"""

from __future__ import annotations

import gc
import heapq
import os
import random
import resource
import statistics
import time
from typing import Any

import psutil

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


def test_scale_of_a_large_run() -> None:
    """Issue 6's scale target, measured whole: build, connect, publish, converge.

    Run in a fresh process (``pytest -s tests/bench/test_bench_simnet.py -k scale``) so the
    peak RSS is this run's.
    """
    hubs = int(os.environ.get("SIMNET_BENCH_HUBS", "10000"))
    records = int(os.environ.get("SIMNET_BENCH_RECORDS", "1000"))
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
