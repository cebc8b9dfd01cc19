"""Five hubs in a line (0 - 1 - 2 - 3 - 4), each dialling its left neighbour only: what is
published at one end reaches every store, through hubs that relay announcements and
re-announce what they fetched."""

from __future__ import annotations

from pathlib import Path

import trio

from tests.node.p2p.helpers import (
    add_file,
    has_record,
    make_hubs,
    meshed,
    missing_blocks,
    publish_design,
    publish_technique,
    start_hub,
    wait_for,
)


def test_a_record_published_at_one_end_reaches_every_store(tmp_path: Path) -> None:
    alliance, setups = make_hubs(tmp_path, 5)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            hubs = [await start_hub(nursery, setups[0], alliance)]
            for setup in setups[1:]:
                hubs.append(await start_hub(nursery, setup, alliance, (hubs[-1].addrs[0],)))
            await wait_for(
                lambda: all(
                    len(h.engine.ready_peers()) == (1 if i in (0, 4) else 2)
                    for i, h in enumerate(hubs)
                ),
                15,
                "the line to connect",
            )
            await wait_for(lambda: meshed(*hubs), 15, "the gossip mesh")

            # By gossip (the latency figures are tests/bench/test_bench_sync.py's).
            record = publish_technique(setups[0].store, setups[0].key, "Ikat resist dyeing")
            await wait_for(
                lambda: all(has_record(s.store, record.cid) for s in setups),
                20,
                "the record in every store",
            )

            # A design brings its files along: the far end fetches every chunk.
            node = add_file(setups[4].store, bytes(range(256)) * 4096)  # 1 MiB
            design = publish_design(setups[4].store, setups[4].key, "Treadle loom frame", [node])
            await wait_for(
                lambda: (
                    all(has_record(s.store, design.cid) for s in setups)
                    and not any(missing_blocks(s.store) for s in setups)
                ),
                30,  # a ceiling for a loaded machine; quiet, it takes about a second
                "the design and its file everywhere",
            )
            nursery.cancel_scope.cancel()

    trio.run(main)
    for setup in setups:
        setup.store.close()
