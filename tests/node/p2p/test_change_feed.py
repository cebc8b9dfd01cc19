"""A record another process writes into a running hub's store is announced: the hub reads
the store's change feed, so the CLI publishing beside ``craftnet serve`` reaches the
alliance without waiting for the next reconcile."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trio
from libp2p.peer.id import ID

from craftnet.archive.cid import Cid
from craftnet.archive.recon_index import ReconIndex
from tests.node.p2p.helpers import has_record, make_hubs, start_hub, wait_for

# Another process: opens the hub's store beside it and publishes, as `craftnet publish` does.
PUBLISHER = r"""
import sys
from craftnet.archive.index import publish
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.identity.keys import PrivateKey

with LmdbStore(sys.argv[1]) as store:
    record = publish(store, PrivateKey.from_seed(b"maker-s-fair-2035-visitor-000001"),
                     "technique", {"title": "Bobbin lace from the Living Heritage Program",
                                   "steps": [{"text": "wind the bobbins", "media": []}],
                                   "licence": "CC-BY-4.0"})
print(record.cid)
"""


def test_a_record_published_by_another_process_is_announced(tmp_path: Path) -> None:
    alliance, (lisbon, oaxaca) = make_hubs(tmp_path, 2)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            # Reconciling only every 300 s: within this test, only an announcement delivers.
            a = await start_hub(nursery, lisbon, alliance)
            b = await start_hub(nursery, oaxaca, alliance, (a.addrs[0],))
            await wait_for(
                lambda: bool(a.engine.ready_peers()) and bool(b.engine.ready_peers()),
                15,
                "the hubs to connect",
            )
            # GossipSub builds its mesh on its 1 s heartbeat: publish once it holds b.
            b_id = ID.from_base58(b.peer_id)
            await wait_for(
                lambda: b_id in a.network.router.mesh.get(a.network.topic, set()),
                15,
                "the gossip mesh",
            )
            done = await trio.to_thread.run_sync(
                lambda: subprocess.run(
                    [sys.executable, "-c", PUBLISHER, str(lisbon.home / "store")],
                    capture_output=True,
                    text=True,
                    check=True,
                )
            )
            cid = Cid.parse(done.stdout.strip())
            assert has_record(lisbon.store, cid)
            await wait_for(lambda: has_record(oaxaca.store, cid), 20, "the announced record")
            nursery.cancel_scope.cancel()

    trio.run(main)
    for setup in (lisbon, oaxaca):
        with setup.store.read() as txn:
            assert ReconIndex().problems(txn) == []
        setup.store.close()
