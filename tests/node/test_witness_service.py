"""The hub's witness: batches signed while it runs, and witnesses counted by organisation
at a hub that only ever saw them on a stick."""

from __future__ import annotations

from pathlib import Path

import trio

from craftnet.archive import index
from craftnet.archive.alliance import load_membership
from craftnet.archive.cid import Cid
from craftnet.archive.delta import plan_all, write_bundles
from craftnet.archive.index import ingest_records
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.receive import receive_bundle
from craftnet.archive.witness import MINE_DB, make_batch, store_batch, verify_witnesses
from craftnet.identity.errors import IdentityError
from craftnet.identity.keys import PrivateKey
from craftnet.identity.membership import Membership
from craftnet.node.hub import Hub, hlc_now
from craftnet.node.witness import WitnessService
from tests.node.p2p.helpers import make_hubs, publish_technique, settings, wait_for


def witnessed_here(store: LmdbStore, cid: Cid) -> bool:
    return batch_of(store, cid) is not None


def batch_of(store: LmdbStore, cid: Cid) -> bytes | None:
    with store.read() as txn:
        return txn.get(MINE_DB, cid.bytes)


def test_a_running_hub_signs_batches_every_interval(tmp_path: Path) -> None:
    alliance, (setup,) = make_hubs(tmp_path, 1)

    async def main() -> None:
        hub = Hub(setup.home, setup.store, setup.key, settings(alliance), witness_interval=0.05)
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: hub.run(task_status=task_status))
            first = publish_technique(setup.store, setup.key, "Ikat dyeing")
            await wait_for(lambda: witnessed_here(setup.store, first.cid), 30, "a first batch")
            second = publish_technique(setup.store, setup.key, "Raku firing")
            await wait_for(lambda: witnessed_here(setup.store, second.cid), 30, "a second batch")
            # Two intervals, two batches (each signed once).
            assert batch_of(setup.store, first.cid) != batch_of(setup.store, second.cid)
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        setup.store.close()


def test_witnesses_of_three_organisations_check_out_offline(tmp_path: Path) -> None:
    alliance, hubs = make_hubs(tmp_path, 3)
    founder, lisbon, highlands = hubs
    outsider = PrivateKey.generate()
    verifier = LmdbStore(tmp_path / "verifier" / "store")
    try:
        for hub, name in ((lisbon, "Lisbon Makers Co-op"), (highlands, "Highland Weavers")):
            cert = index.publish(
                founder.store, founder.key, "membership",
                {"alliance": Cid.parse(alliance), "member": hub.key.did,
                 "expires": hlc_now() + (30 * 86_400_000 << 16), "organisation": name},
                [Cid.parse(alliance)],
            )
            for other in (lisbon, highlands):
                ingest_records(other.store, [cert.block], strict=True)
        design = publish_technique(lisbon.store, lisbon.key, "Neo-Vernacular stool joint")
        for hub in (founder, highlands):
            ingest_records(hub.store, [design.block], strict=True)
        for hub in hubs:
            assert WitnessService(hub.store, hub.key).flush()
        # An outsider's batch, with a certificate it issued itself: it must not count.
        forged = index.publish(
            lisbon.store, outsider, "membership",
            {"alliance": Cid.parse(alliance), "member": outsider.did, "expires": 2**60,
             "organisation": "Not A Member Ltd"},
            [Cid.parse(alliance)],
        )
        batch = make_batch(outsider, [(design.cid, hlc_now())], hlc_now(), [forged.cid])
        lisbon.store.transact(lambda txn: store_batch(txn, batch, mine=False))

        for n, hub in enumerate(hubs):  # sticks only: whole-archive bundles
            with hub.store.read() as txn:
                part = write_bundles(txn, plan_all(txn), tmp_path / f"stick{n}.car")[0]
            with part.path.open("rb") as stream:
                receive_bundle(verifier, stream, tmp_path / "verifier", now=hlc_now())

        def membership_of(alliance_id: str) -> Membership | None:
            try:
                return load_membership(verifier, alliance_id)
            except IdentityError:
                return None

        found = verify_witnesses(verifier, design.cid, membership_of)
        assert found.hubs == 3 and found.organisations == 3
        organisations = {w.organisation for w in found.valid}
        assert {"Lisbon Makers Co-op", "Highland Weavers", founder.key.did} == organisations
        assert all(w.member_of == alliance for w in found.valid)
        refused = [w for w in found.witnesses if not w.ok]
        assert [w.hub for w in refused] == [outsider.did]
        assert "not a member" in refused[0].problems[0]
        assert found.agreed_by(2) is not None and found.earliest is not None
    finally:
        verifier.close()
        for hub in hubs:
            hub.store.close()
