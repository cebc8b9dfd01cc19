"""Co-edited documents travel over the network too: operations made on two hubs reach
each other and both hubs show the same merged entry."""

from __future__ import annotations

from pathlib import Path

import trio

from craftnet.archive.crdt.documents import Documents
from tests.node.p2p.helpers import has_record, make_hubs, start_hub, wait_for


def test_edits_on_two_hubs_merge_on_both(tmp_path: Path) -> None:
    alliance, (lisbon, oaxaca) = make_hubs(tmp_path, 2)
    here, there = Documents(lisbon.store), Documents(oaxaca.store)
    genesis = here.create(lisbon.key, "technique", lambda b: b.set("title", "Azulejo glazing"),
                          mode="alliance")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            a = await start_hub(nursery, lisbon, alliance)
            await start_hub(nursery, oaxaca, alliance, (a.addrs[0],))
            await wait_for(lambda: has_record(oaxaca.store, genesis.cid), 10, "the document")
            await wait_for(lambda: there.heads(genesis.cid) == [genesis.cid], 5, "its state")
            edit_here = here.edit(lisbon.key, genesis.cid,
                                  lambda b: b.add("materials", "tin glaze"))
            edit_there = there.edit(oaxaca.key, genesis.cid,
                                    lambda b: b.add("materials", "cobalt oxide"))
            await wait_for(
                lambda: all(has_record(s.store, e.cid)
                            for s in (lisbon, oaxaca) for e in (edit_here, edit_there))
                and here.view(genesis.cid) == there.view(genesis.cid),
                10, "both edits merged on both hubs",
            )
            nursery.cancel_scope.cancel()

    trio.run(main)
    view = here.view(genesis.cid)
    assert "tin glaze" in str(view) and "cobalt oxide" in str(view)
    for setup in (lisbon, oaxaca):
        setup.store.close()
