"""After a network sync each hub records what the other now holds, so that the next USB
stick for that hub (``craftnet export --for DID``, :func:`plan_delta`) carries only what
arrived since: real hubs on 127.0.0.1, real LMDB stores."""

from __future__ import annotations

from pathlib import Path

import trio

from craftnet.archive.cid import Cid
from craftnet.archive.delta import plan_delta
from craftnet.archive.peer_state import PeerStates
from craftnet.archive.records import Record
from craftnet.node.hub import Hub
from tests.node.p2p.helpers import (
    HubSetup,
    has_record,
    make_hubs,
    publish_technique,
    start_hub,
    wait_for,
)


def synced_with(setup: HubSetup, did: str) -> bool:
    state = PeerStates(setup.store).get(did)
    return state is not None and state.via == "sync"


def delta_for(setup: HubSetup, did: str) -> tuple[int, set[Cid]]:
    """How many records a stick for ``did`` would carry, and its blocks, as ``setup``
    knows (what ``craftnet export --for DID`` plans)."""
    state = PeerStates(setup.store).get(did)
    assert state is not None
    with setup.store.read() as txn:
        plan = plan_delta(txn, state.summary)
    return plan.records, {cid for cid, _ in plan.blocks}


def test_a_sync_records_what_each_hub_holds_and_the_next_stick_carries_only_news(
    tmp_path: Path,
) -> None:
    alliance, (lisbon, highlands) = make_hubs(tmp_path, 2)
    ours = [publish_technique(lisbon.store, lisbon.key, f"Neo-Vernacular joinery {i}")
            for i in range(5)]
    theirs = [publish_technique(highlands.store, highlands.key, f"Rustic Futurism kiln {i}")
              for i in range(3)]
    # Nothing is known of the other hub before the sync: a stick would carry everything.
    assert PeerStates(lisbon.store).get(highlands.key.did) is None

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            a: Hub = await start_hub(nursery, lisbon, alliance)
            b: Hub = await start_hub(nursery, highlands, alliance, (a.addrs[0],))
            everything: list[Record] = ours + theirs
            await wait_for(
                lambda: all(has_record(s.store, r.cid) for s in (lisbon, highlands)
                            for r in everything),
                60, "both hubs to hold every record",
            )
            await wait_for(
                lambda: synced_with(lisbon, highlands.key.did)
                and synced_with(highlands, lisbon.key.did),
                60, "each hub to record what the other holds",
            )
            # The driver notes it once the worker thread's write is done: wait, not look.
            await wait_for(
                lambda: highlands.key.did in a.driver.synced.recorded
                and lisbon.key.did in b.driver.synced.recorded,
                10, "the drivers to note the syncs",
            )
            nursery.cancel_scope.cancel()

    trio.run(main)
    # The sync taught each hub that the other lacks nothing: an empty stick.
    assert delta_for(lisbon, highlands.key.did) == (0, set())
    assert delta_for(highlands, lisbon.key.did) == (0, set())
    # A design published after the sync is all the next stick carries.
    news = publish_technique(lisbon.store, lisbon.key, "Human Treasures weaving, after the sync")
    records, blocks = delta_for(lisbon, highlands.key.did)
    assert (records, news.cid in blocks) == (1, True)
    for setup in (lisbon, highlands):
        setup.store.close()
