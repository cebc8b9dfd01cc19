"""Benchmark: the hub's HTTP API and pages under load, against plain aiohttp on the same box.

An archive of 100,000 records (designs and techniques with varied words, several
authors, tags and materials) is written to a real LMDB store and indexed for search;
the hub then runs in its own process, and a load generator in this process keeps 16
clients busy over loopback. Measured in the same run:

* search (``/api/v1/search?q=...``; half the queries a common craft word, half one or
  two rare words): p50, p99 as the hub runs (answers cached until the index changes),
  for the common words alone, and again with the result cache off;
* the record page (``/records/{cid}``, HTML) and the record API (``/api/v1/records/{cid}``): p50;
* the ceiling: plain aiohttp in its own process answering a static 1 KiB response;
* file download: a 64 MiB design file from the hub vs aiohttp's ``FileResponse`` sending
  the same bytes from a plain file (throughput, median of 3).

Targets (issue 5): search p50 < 20 ms and p99 < 100 ms, record page p50 < 10 ms, file
download at least 50% of plain aiohttp. The figures are printed; nothing is asserted
about time (``make bench`` or ``pytest -s tests/bench/test_bench_web.py``).
"""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import multiprocessing
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from craftnet.archive import files, index
from craftnet.archive.bundle import export_car
from craftnet.archive.cid import Cid
from craftnet.archive.crdt.documents import Documents
from craftnet.archive.hlc import HybridClock
from craftnet.archive.index import publish_many
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.schemas import build
from craftnet.identity.keys import PrivateKey

N_RECORDS = int(os.environ.get("CRAFTNET_BENCH_WEB_RECORDS", "100000"))  # smaller: quick check
CLIENTS = 16
REQUESTS = 3_000
FILE_SIZE = 64 * 2**20
WORDS = [
    "raku",
    "kiln",
    "glaze",
    "loom",
    "heddle",
    "lamp",
    "shade",
    "stool",
    "bowl",
    "chair",
    "spoon",
    "basket",
    "indigo",
    "dye",
    "weave",
    "knot",
    "joint",
    "dovetail",
    "mortise",
    "tenon",
    "lattice",
    "panel",
    "bracket",
    "hinge",
    "gear",
    "pulley",
    "spindle",
    "whorl",
    "bobbin",
    "lace",
    "needle",
    "thimble",
    "clay",
    "stoneware",
    "porcelain",
    "slip",
    "terracotta",
    "copper",
    "brass",
    "bronze",
    "tin",
    "pewter",
    "oak",
    "ash",
    "birch",
    "walnut",
    "bamboo",
    "rattan",
    "willow",
    "hemp",
    "flax",
    "wool",
    "cotton",
    "silk",
    "linen",
    "leather",
    "felt",
    "cork",
    "resin",
    "beeswax",
]
MATERIALS = ("oak", "birch plywood", "pla", "recycled petg", "stoneware clay", "cotton yarn")
PROCESSES = ("3d-printing", "cnc-milling", "laser-cutting", "loom-weaving", "hand")
LICENCES = ("CC-BY-4.0", "CC-BY-SA-4.0", "CC0-1.0", "CERN-OHL-S-2.0")


def vocabulary(rng: random.Random) -> list[str]:
    """2,000 made-up rare words (names of local techniques, places, makers)."""
    syllables = ["ka", "lo", "mi", "ra", "ne", "tu", "so", "ve", "di", "ba", "zu", "qi", "fe"]
    words: set[str] = set()
    while len(words) < 2_000:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def make_drafts(
    rng: random.Random, rare: list[str], count: int
) -> list[tuple[str, dict[str, Any], tuple[Cid, ...]]]:
    """``count`` designs (70%) and techniques: a common craft word and rare ones each."""
    drafts = []
    for _ in range(count):
        common = rng.choice(WORDS)
        words = rng.sample(rare, 4)
        tags = [rng.choice(WORDS), rng.choice(rare)]
        if rng.random() < 0.7:
            built = build(
                "design",
                title=f"{words[0].title()} {common} {words[1]}",
                description=f"A {words[2]} {rng.choice(WORDS)} made at a community "
                f"hub with {words[3]}; tested at Maker's Fair 2035.",
                licence=rng.choice(LICENCES),
                process=rng.choice(PROCESSES),
                materials=[rng.choice(MATERIALS)],
            )
        else:
            built = build(
                "technique",
                title=f"{words[0].title()} {common} technique",
                summary=f"How the Intergenerational Making Cooperatives of {words[1]} "
                f"work {words[2]} and {rng.choice(WORDS)}.",
                steps=[f"Prepare the {words[3]}.", f"Finish with {rng.choice(WORDS)}."],
                licence=rng.choice(LICENCES),
                materials=[rng.choice(MATERIALS)],
            )
        body = dict(built.body)
        body["tags"] = tags
        drafts.append((built.type, body, built.links))
    return drafts


def build_archive(home: Path) -> tuple[list[Cid], list[str]]:
    """Write and index the archive; return the CIDs of some records, and the rare words.

    Each title has one common craft word (so a common word matches about 1 record in
    55, 1,800 of 100,000) and two rare ones; descriptions add more of both.
    """
    from craftnet.node.web.search import SearchIndex

    rng = random.Random(2035)
    rare = vocabulary(rng)
    keys = [
        PrivateKey.from_seed(f"bench-web-artisan-{i:02d}".encode().ljust(32, b"-"))
        for i in range(20)
    ]
    store = LmdbStore(home / "store")
    clock = HybridClock()
    cids: list[Cid] = []
    try:
        for start in range(0, N_RECORDS, 2_000):
            key = keys[(start // 2_000) % len(keys)]
            records = publish_many(store, key, make_drafts(rng, rare, 2_000), clock)
            cids.extend(r.cid for r in records[::50])
        index = SearchIndex(home / "search.sqlite", store, Documents(store))
        index.catch_up(batch=5_000)
        index.close()
    finally:
        store.close()
    return cids, rare


def _run_hub(home: str, ready: Any, cache: bool = True) -> None:
    """Child process: serve the hub until SIGTERM (with or without the search cache)."""
    from craftnet.identity.keystore import Keystore
    from craftnet.node.config import HubConfig
    from craftnet.node.web import auth
    from craftnet.node.web.context import NodeContext
    from craftnet.node.web.server import serve_until_stopped

    config = HubConfig(home=Path(home), http_port=0)
    store = LmdbStore(config.store_path)
    token_path = config.token_path
    auth.ensure_token(token_path)
    ctx = NodeContext.open(
        config, store, Keystore.for_home(home), auth.Gate(auth.load_token_hash(token_path))
    )
    if not cache:
        ctx.search._cache_size = 0
    asyncio.run(serve_until_stopped(ctx, "127.0.0.1", 0, ready.put))
    ctx.close()
    store.close()


def _run_plain(folder: str, ready: Any) -> None:
    """Child process: plain aiohttp, a static 1 KiB answer and a plain file."""
    payload = b"x" * 1024

    async def small(request: web.Request) -> web.Response:
        return web.Response(body=payload, content_type="application/json")

    async def file(request: web.Request) -> web.FileResponse:
        return web.FileResponse(Path(folder) / "design.bin")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/static", small)
        app.router.add_get("/file", file)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        ready.put(f"http://{host}:{port}/")
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


def _start(target: Callable[..., None], arg: str, *extra: Any) -> tuple[Any, str]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    proc = context.Process(target=target, args=(arg, queue, *extra), daemon=True)
    proc.start()
    return proc, queue.get(timeout=120)


def _stop(proc: Any) -> None:
    os.kill(proc.pid, signal.SIGTERM)
    proc.join(30)


async def _load(base: str, paths: list[str]) -> list[float]:
    """Latencies (s) of GETting ``paths`` with CLIENTS concurrent clients."""
    latencies: list[float] = []
    queue = list(reversed(paths))
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(base, connector=connector) as session:

        async def client() -> None:
            while queue:
                path = queue.pop()
                start = time.perf_counter()
                async with session.get(path) as response:
                    await response.read()
                    assert response.status == 200, (path, response.status)
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return latencies


async def _download(url: str) -> float:
    """Seconds to download ``url`` once, body read and dropped."""
    async with aiohttp.ClientSession() as session:
        start = time.perf_counter()
        async with session.get(url) as response:
            async for _ in response.content.iter_chunked(1 << 20):
                pass
        return time.perf_counter() - start


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def test_bench_web(tmp_path: Path) -> None:
    from craftnet.archive import files

    home = tmp_path / "hub"
    home.mkdir()
    began = time.perf_counter()
    cids, rare = build_archive(home)
    data = random.Random(7).randbytes(FILE_SIZE)
    (tmp_path / "design.bin").write_bytes(data)
    store = LmdbStore(home / "store")
    file_cid = files.add_file(store, io.BytesIO(data), name="design.stl").cid
    store.close()
    print(
        f"\narchive: {N_RECORDS:,} records written and indexed in "
        f"{time.perf_counter() - began:.1f} s"
    )

    rng = random.Random(11)
    # Half the queries name a common craft word (about 1,800 matches each), half one or
    # two rare words, as people look for a technique by its name.
    searches = [
        "/api/v1/search?q="
        + (
            rng.choice(WORDS)
            if rng.random() < 0.5
            else "+".join(rng.sample(rare, rng.choice((1, 2))))
        )
        for _ in range(REQUESTS)
    ]
    dense = [f"/api/v1/search?q={rng.choice(WORDS)}" for _ in range(REQUESTS // 3)]
    pages = [f"/records/{rng.choice(cids)}" for _ in range(REQUESTS)]
    api_records = [f"/api/v1/records/{rng.choice(cids)}" for _ in range(REQUESTS)]

    hub, hub_url = _start(_run_hub, str(home))
    plain, plain_url = _start(_run_plain, str(tmp_path))
    try:
        asyncio.run(_load(hub_url, searches[:200] + pages[:200]))  # warm caches
        asyncio.run(_load(plain_url, ["/static"] * 200))
        static = asyncio.run(_load(plain_url, ["/static"] * REQUESTS))
        search = asyncio.run(_load(hub_url, searches))
        common = asyncio.run(_load(hub_url, dense))
        page = asyncio.run(_load(hub_url, pages))
        record = asyncio.run(_load(hub_url, api_records))
        hub_dl = statistics.median(
            asyncio.run(_download(f"{hub_url}api/v1/files/{file_cid}")) for _ in range(3)
        )
        plain_dl = statistics.median(asyncio.run(_download(f"{plain_url}file")) for _ in range(3))
    finally:
        _stop(hub)
    hub, hub_url = _start(_run_hub, str(home), False)
    try:
        asyncio.run(_load(hub_url, searches[:100]))
        uncached = asyncio.run(_load(hub_url, searches))
    finally:
        _stop(hub)
        _stop(plain)

    static_p50 = _pct(static, 0.5)
    print(f"{CLIENTS} clients on loopback, {REQUESTS} requests each kind")
    print(
        f"  static 1 KiB (plain aiohttp): p50 {static_p50:6.2f} ms  "
        f"p99 {_pct(static, 0.99):6.2f} ms"
    )
    for name, values, target in (
        ("search", search, "p50 < 20, p99 < 100"),
        ("search, common words only", common, ""),
        ("search, no result cache", uncached, ""),
        ("record page (HTML)", page, "p50 < 10"),
        ("record API (JSON)", record, ""),
    ):
        p50, p99 = _pct(values, 0.5), _pct(values, 0.99)
        print(
            f"  {name:28s} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
            f"({p50 / static_p50:4.1f}x static p50) {'target ' + target if target else ''}"
        )
    mb = FILE_SIZE / 2**20
    print(
        f"  download {mb:.0f} MiB: hub {mb / hub_dl:7.1f} MiB/s, plain FileResponse "
        f"{mb / plain_dl:7.1f} MiB/s, ratio {plain_dl / hub_dl:.2f} (target >= 0.5)"
    )


# --- search and the home page at 100,000 records, through the public HTTP API only -----

SEARCH_QUERIES = 200
HOME_RENDERS = 21


def _craftnet(home: Path, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "craftnet", "--home", str(home), *args],
        check=True, capture_output=True, text=True, **kwargs,
    )


def _mixed_queries(rng: random.Random, rare: list[str]) -> list[str]:
    """Common craft words, rare names, two words, a prefix, no match."""
    queries = []
    for i in range(SEARCH_QUERIES):
        kind = i % 5
        if kind == 0:
            q = rng.choice(WORDS)
        elif kind == 1:
            q = rng.choice(rare)
        elif kind == 2:
            q = f"{rng.choice(WORDS)} {rng.choice(WORDS)}"
        elif kind == 3:
            q = rng.choice(rare)[:3]  # the last word also matches as a prefix
        else:
            q = f"{rng.choice(rare)} {rng.choice(rare)} nothingmatches"
        queries.append("/api/v1/search?q=" + q.replace(" ", "+"))
    return queries


NARROWED_QUERIES = 40


def _filtered_queries(rng: random.Random, rare: list[str]) -> list[str]:
    """Searches narrowed by facets (licence, process, type, a tag): measured apart, as
    each took 7-12 s at 100,000 records before the facets joined the FTS5 query."""
    queries = []
    for i in range(NARROWED_QUERIES):
        word = rng.choice(WORDS) if i % 2 else rng.choice(rare)
        narrow = (
            f"licence={rng.choice(LICENCES)}",
            f"process={rng.choice(PROCESSES)}",
            f"type=design&licence={rng.choice(LICENCES)}",
            f"tag={rng.choice(WORDS)}",
        )[i % 4]
        queries.append(f"/api/v1/search?q={word}&{narrow}")
    return queries


def _timed_gets(conn: http.client.HTTPConnection, paths: list[str]) -> list[float]:
    times = []
    for path in paths:
        start = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        times.append(time.perf_counter() - start)
        assert response.status == 200, (path, response.status)
    return times


def test_bench_search_and_home_page_at_100k(tmp_path: Path) -> None:
    """p50/p99 of 200 mixed searches, of 40 narrowed by facets, and the home page's
    render time, one client.

    The archive is made with the archive's own publishing, carried into a hub by
    ``craftnet import`` of a bundle, and served by ``craftnet serve``: the bench
    touches the hub only through its CLI and HTTP API, whatever the web code inside.
    """
    rng = random.Random(2035)
    rare = vocabulary(rng)
    keys = [PrivateKey.from_seed(f"bench-search-artisan-{i:02d}".encode().ljust(32, b"-"))
            for i in range(20)]
    began = time.perf_counter()
    bundle = tmp_path / "archive.car"
    with LmdbStore(tmp_path / "source", sync=False) as source:
        clock = HybridClock()
        for start in range(0, N_RECORDS, 2_000):
            publish_many(source, keys[(start // 2_000) % len(keys)],
                         make_drafts(rng, rare, 2_000), clock)
        with bundle.open("wb") as out:
            export_car(source, out)
    made = time.perf_counter() - began
    home = tmp_path / "hub"
    _craftnet(home, "init", "--no-passphrase")
    began = time.perf_counter()
    _craftnet(home, "import", str(bundle))
    imported = time.perf_counter() - began

    began = time.perf_counter()
    hub = subprocess.Popen(
        [sys.executable, "-m", "craftnet", "--home", str(home), "serve",
         "--host", "127.0.0.1", "--port", "0", "--no-mdns"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert hub.stdout is not None
        url = ""
        for line in hub.stdout:
            if line.startswith("craftnet hub serving at "):
                url = line.split(" at ", 1)[1].strip()
                break
        assert url, "the hub did not start"
        parsed = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=600)
        status = json.loads(_get(conn, "/api/v1/status"))
        started = time.perf_counter() - began
        first_home = _timed_gets(conn, ["/"])[0]
        queries = _mixed_queries(rng, rare)
        first_search = _timed_gets(conn, queries[:1])[0]
        searches = _timed_gets(conn, queries)
        again = _timed_gets(conn, queries)  # the same queries: answers cached by the hub
        homes = _timed_gets(conn, ["/"] * HOME_RENDERS)
        filtered = _timed_gets(conn, _filtered_queries(rng, rare))
        conn.close()
    finally:
        hub.send_signal(signal.SIGINT)
        try:
            hub.wait(60)
        except subprocess.TimeoutExpired:
            hub.kill()
            hub.wait()

    print(f"\nsearch at {N_RECORDS:,} records (one client, loopback; load "
          f"{os.getloadavg()[0]:.1f}): archive made in {made:.0f} s, "
          f"`craftnet import` {imported:.0f} s, `serve` ready in {started:.1f} s")
    print(f"  hub status: {status.get('records')} records, searchable "
          f"{json.dumps(status.get('searchable'))[:80]}")
    print(f"  {SEARCH_QUERIES} mixed searches: p50 {_pct(searches, 0.5):6.2f} ms  "
          f"p99 {_pct(searches, 0.99):6.2f} ms  (first one {first_search * 1e3:.1f} ms)")
    print(f"  the same again (cached):  p50 {_pct(again, 0.5):6.2f} ms  "
          f"p99 {_pct(again, 0.99):6.2f} ms")
    print(f"  {NARROWED_QUERIES} searches narrowed by facets: p50 {_pct(filtered, 0.5):6.2f} ms  "
          f"p99 {_pct(filtered, 0.99):6.2f} ms  ({_pct(filtered, 0.5) / _pct(searches, 0.5):.1f}x "
          "the mixed p50)")
    print(f"  home page: first render {first_home * 1e3:.1f} ms, then p50 "
          f"{_pct(homes, 0.5):6.2f} ms  max {max(homes) * 1e3:.2f} ms ({HOME_RENDERS} renders)")


def _get(conn: http.client.HTTPConnection, path: str) -> bytes:
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200, (path, response.status)
    return body
# -- the home page of a small hub, with pictures -------------------------------------------

HOME_RECORDS = 200


def _small_archive(home: Path) -> None:
    """200 records as artisans publish them: designs with an STL, techniques with a photo."""
    from craftnet.archive.demo import png, stl_solid
    from craftnet.archive.schemas import build as build_body

    store = LmdbStore(home / "store")
    key = PrivateKey.from_seed(b"bench-home-artisan-rustic-future")
    rng = random.Random(200)
    try:
        for n in range(HOME_RECORDS):
            if n % 2:
                model = stl_solid([(30 + n % 7, 0), (20, 30), (10 + n % 5, 60)], 24)
                cid = files.add_file(store, io.BytesIO(model), name=f"lamp-{n}.stl").cid
                body = build_body(
                    "design",
                    title=f"{rng.choice(WORDS).title()} lamp {n}",
                    files=[cid],
                    licence=rng.choice(LICENCES),
                ).body
            else:
                shade = n % 200
                photo = png(64, 48, lambda x, y, s=shade: (s, (x * 3) % 256, (y * 5) % 256))
                cid = files.add_file(store, io.BytesIO(photo), name=f"hands-{n}.png").cid
                body = build_body(
                    "technique",
                    title=f"{rng.choice(WORDS).title()} technique {n}",
                    steps=[{"text": "Prepare the clay.", "media": [cid]}],
                    licence=rng.choice(LICENCES),
                ).body
            index.publish(store, key, "technique" if n % 2 == 0 else "design", body, [cid])
    finally:
        store.close()


async def _times(url: str, count: int) -> list[float]:
    """Seconds for ``count`` GETs of ``url``, one after another."""
    out = []
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            start = time.perf_counter()
            async with session.get(url) as response:
                await response.read()
                assert response.status == 200, url
            out.append(time.perf_counter() - start)
    return out


def test_bench_home_page_of_a_200_record_hub(tmp_path: Path) -> None:
    """Issue 12's target: the home page of a 200-record archive renders in under 300 ms.

    Measured two ways in one run: the server's answer for ``/`` (median of 50), and a
    cold Chromium load of the page with every thumbnail (median of 5, new context each
    time, until the load event), each against plain aiohttp's 1 KiB answer.
    """
    from playwright.sync_api import sync_playwright

    home = tmp_path / "hub"
    home.mkdir()
    _small_archive(home)
    hub, hub_url = _start(_run_hub, str(home))
    plain, plain_url = _start(_run_plain, str(tmp_path))
    try:
        asyncio.run(_times(hub_url, 5))
        static = asyncio.run(_times(plain_url + "static", 50))
        server = asyncio.run(_times(hub_url, 50))
        loads = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=[
                    "--no-sandbox",
                    "--headless",
                    "--disable-gpu",
                    "--disable-background-networking",
                ],
            )
            for _ in range(6):
                context = browser.new_context(viewport={"width": 390, "height": 844})
                tab = context.new_page()
                start = time.perf_counter()
                tab.goto(hub_url, wait_until="load")
                loads.append(time.perf_counter() - start)
                pictures = tab.locator(".card img.thumb").count()
                context.close()
            browser.close()
    finally:
        _stop(hub)
        _stop(plain)
    base = statistics.median(static) * 1000
    answer = statistics.median(server) * 1000
    page = statistics.median(loads[1:]) * 1000  # the first warms the preview drawings
    print(f"\nhome page of a {HOME_RECORDS}-record hub ({pictures} pictures on its cards):")
    print(f"  plain aiohttp 1 KiB answer   median {base:7.2f} ms")
    print(f"  hub's answer for /           median {answer:7.2f} ms  ({answer / base:5.1f}x plain)")
    print(
        f"  Chromium cold load, pictures median {page:7.2f} ms  ({page / base:5.1f}x plain) "
        "target < 300 ms"
    )
