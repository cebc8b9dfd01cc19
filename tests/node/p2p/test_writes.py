"""Write batching: whatever moment a hub is stopped at, every block the engine accepted
is in the store when the driver's run ends (``craftnet sync`` stops the hub the moment
nothing is wanted, while the last batch may be on its way to the disk)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import trio

from craftnet.archive.blocks import has_block
from craftnet.archive.cid import RAW, Cid
from craftnet.archive.index import has_record
from craftnet.archive.meta import get_meta
from craftnet.archive.records import Record
from craftnet.node.hub import Hub
from craftnet.node.p2p.writes import WANTS_KEY
from craftnet.protocol.blocks import BlockExchange, DictBlocks
from craftnet.protocol.events import BlocksWanted, StoreBlocks, StoredBlock
from tests.node.p2p.helpers import make_hubs, settings


def test_a_batch_is_written_however_a_stop_lands(tmp_path: Path) -> None:
    alliance, (setup,) = make_hubs(tmp_path, 1)
    hub = Hub(setup.home, setup.store, setup.key, settings(alliance))
    writer = hub.driver.writer
    # Stop after 0, 1, 2, ... scheduling steps: among them, between the flusher taking
    # the batch and its worker thread starting (a cancelled thread call never starts).
    for steps in range(16):
        data = os.urandom(4096)
        cid = Cid.of(data, RAW)

        async def main(steps: int = steps, data: bytes = data, cid: Cid = cid) -> None:
            async with trio.open_nursery() as nursery:
                writer.running = True
                nursery.start_soon(writer.flusher)
                writer.add(StoreBlocks((StoredBlock(cid, data),)))
                writer.kick(True)
                for _ in range(steps):
                    await trio.lowlevel.checkpoint()
                nursery.cancel_scope.cancel()
            writer.running = False
            writer.flush_now()  # as the driver does on its way out

        trio.run(main)
        with setup.store.read() as txn:
            assert has_block(txn, cid), f"the block was lost when stopped after {steps} steps"
    setup.store.close()


def test_the_saved_want_list_names_every_wanted_block_after_each_batch(tmp_path: Path) -> None:
    alliance, (setup,) = make_hubs(tmp_path, 1)
    hub = Hub(setup.home, setup.store, setup.key, settings(alliance))
    writer, engine = hub.driver.writer, hub.driver.engine
    chunks = [f"Neo-Vernacular loom card {i}".encode() for i in range(8)]
    cids = [Cid.of(c, RAW) for c in chunks]

    def saved() -> bytes:
        with setup.store.read() as txn:
            return get_meta(txn, WANTS_KEY) or b""

    def write(i: int) -> None:
        writer.add(StoreBlocks((StoredBlock(cids[i], chunks[i]),)))
        writer.flush_now()

    def restored() -> set[Cid]:
        fresh = BlockExchange(DictBlocks(), random.Random(0))
        fresh.import_wants(saved())
        return set(fresh.wants)

    hub.driver.handle(BlocksWanted(tuple(cids[4:7])))
    write(0)
    first = saved()
    assert restored() >= set(cids[4:7])
    write(1)  # nothing new was wanted: the list on disk still names it all
    assert saved() == first
    hub.driver.handle(BlocksWanted((cids[7],)))
    write(2)  # a new want: saved with this batch
    assert restored() >= set(cids[4:8])
    writer.save_wants()  # as on the way out: exactly what is wanted now
    assert restored() == set(engine.exchange.wants)
    setup.store.close()


def test_a_record_the_engine_parsed_is_stored_without_decoding_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alliance, (setup, other) = make_hubs(tmp_path, 2)
    hub = Hub(setup.home, setup.store, setup.key, settings(alliance))
    writer = hub.driver.writer
    record = Record.create(other.key, "technique", {
        "title": "Rustic Futurism raku", "steps": [{"text": "fire", "media": []}],
        "licence": "CC-BY-4.0",
    })
    stray = Record.create(other.key, "technique", {
        "title": "Rustic Futurism pit firing", "steps": [{"text": "dig", "media": []}],
        "licence": "CC-BY-4.0",
    })
    decoded: list[Cid] = []
    original = Record.from_block.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Record], block: bytes, cid: Cid | None = None) -> Record:
        decoded.append(cid or Cid.of(block))
        return original(cls, block, cid)  # type: ignore[no-any-return]

    monkeypatch.setattr(Record, "from_block", classmethod(counting))
    writer.add(StoreBlocks((StoredBlock(record.cid, record.block, record.ts, record),)))
    # A record object that is not the one of these bytes is not trusted: decoded again.
    writer.add(StoreBlocks((StoredBlock(stray.cid, stray.block, stray.ts, record),)))
    writer.flush_now()
    assert decoded == [stray.cid]
    with setup.store.read() as txn:
        assert has_record(txn, record.cid) and has_record(txn, stray.cid)
    for s in (setup, other):
        s.store.close()
