"""Only members sync and announce: a hub outside the alliance gets nothing in and nothing
out, and a member whose membership is revoked is cut off while the revocation spreads."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import trio

from craftnet.archive.alliance import accept_token, create_alliance, invite, revoke_member
from craftnet.archive.index import publish
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.identity.keys import PrivateKey
from craftnet.node.hub import Hub
from craftnet.node.p2p.libp2p_net import Libp2pNetwork, topic_for
from craftnet.protocol.events import Validation
from tests.node.p2p.helpers import (
    LOOPBACK,
    HubSetup,
    has_record,
    make_hubs,
    meshed,
    publish_technique,
    start_hub,
    wait_for,
)


def test_a_non_member_can_neither_sync_nor_announce(tmp_path: Path) -> None:
    # hub0 founds, hub1 is admitted, hub2 holds the genesis but no certificate.
    alliance, setups = make_hubs(tmp_path, 3, members=2)
    founder, member, outsider = setups

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            a = await start_hub(nursery, founder, alliance)
            b = await start_hub(nursery, member, alliance, (a.addrs[0],))
            x = await start_hub(nursery, outsider, alliance, (a.addrs[0], b.addrs[0]))
            await wait_for(lambda: a.engine.ready_peers() == [b.peer_id], 10, "the member")
            inside = publish_technique(founder.store, founder.key, "Raku firing")
            outside = publish_technique(outsider.store, outsider.key, "Counterfeit raku")
            await wait_for(lambda: has_record(member.store, inside.cid), 5, "member sync")
            # Both members refused the outsider, and the outsider was told why.
            for hub in (a, b):
                await wait_for(lambda hub=hub: x.peer_id in hub.driver.closed, 10, "refusal")
                assert "not a member" in hub.driver.closed[x.peer_id].reason
                # The refusal travels to the outsider after the member has closed its side.
                await wait_for(
                    lambda hub=hub: x.driver.refusal(hub.peer_id) is not None, 10, "the reason"
                )
                reason = x.driver.refusal(hub.peer_id) or ""
                assert reason.startswith(f"{hub.peer_id} refused us") and "not a member" in reason
            assert not has_record(outsider.store, inside.cid)
            assert not has_record(founder.store, outside.cid)
            assert not has_record(member.store, outside.cid)
            assert x.engine.ready_peers() == []
            assert x.peer_id not in a.engine.ready_peers()
            nursery.cancel_scope.cancel()

    trio.run(main)
    for setup in setups:
        setup.store.close()


def test_a_revoked_member_is_cut_off_and_the_revocation_spreads(tmp_path: Path) -> None:
    alliance, setups = make_hubs(tmp_path, 3)
    founder, kept, revoked = setups

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            a = await start_hub(nursery, founder, alliance)
            c = await start_hub(nursery, kept, alliance, (a.addrs[0],))
            b = await start_hub(nursery, revoked, alliance, (a.addrs[0],))
            await wait_for(lambda: len(a.engine.ready_peers()) == 2, 10, "both members")
            before = publish_technique(revoked.store, revoked.key, "Bobbin lace")
            await wait_for(lambda: has_record(founder.store, before.cid), 5, "sync before")

            revocation = revoke_member(founder.store, founder.key, alliance, revoked.key.did,
                                       "the hub's key was stolen")
            await wait_for(lambda: b.peer_id not in a.engine.ready_peers(), 5, "the cut")
            await wait_for(lambda: has_record(kept.store, revocation.cid), 5, "the revocation")
            await wait_for(lambda: not c.is_member(revoked.key.did), 5, "kept hub learns it")

            after = publish_technique(revoked.store, revoked.key, "Forged lace")
            fresh = publish_technique(founder.store, founder.key, "Tatting")
            await wait_for(lambda: has_record(kept.store, fresh.cid), 5, "members still sync")
            # The founder said why it cut the revoked hub off, and the hub heard it.
            assert "no longer a member" in a.driver.closed[b.peer_id].reason
            await wait_for(
                lambda: "no longer a member" in (b.driver.refusal(a.peer_id) or ""), 5, "bye"
            )
            assert not has_record(founder.store, after.cid)
            assert not has_record(kept.store, after.cid)
            assert not has_record(revoked.store, fresh.cid)
            assert b.peer_id not in a.engine.ready_peers()
            nursery.cancel_scope.cancel()

    trio.run(main)
    for setup in setups:
        setup.store.close()


def test_a_connected_stranger_is_sent_no_gossip_at_all(tmp_path: Path) -> None:
    # Announcements carry records inline: a host that connects and subscribes to the
    # alliance's topic without a member's hello must not receive a single message.
    alliance, setups = make_hubs(tmp_path, 2)
    founder, member = setups
    heard: list[bytes] = []

    async def main() -> None:
        stranger = Libp2pNetwork(os.urandom(32), topic_for(alliance))
        stranger.set_validator(lambda peer, data: Validation.ACCEPT)
        async with stranger.running(list(LOOPBACK)), trio.open_nursery() as nursery:
            a = await start_hub(nursery, founder, alliance)
            b = await start_hub(nursery, member, alliance, (a.addrs[0],))
            await wait_for(lambda: a.engine.ready_peers() == [b.peer_id], 10, "the member")
            peer = await stranger.connect(a.addrs[0])
            await stranger.admit(peer)  # the stranger is willing; the hub must not be

            async def listen() -> None:
                while True:
                    heard.append((await stranger.next_message())[1])

            nursery.start_soon(listen)
            await wait_for(lambda: meshed(a, b), 15, "the gossip mesh")
            # Two records one after the other: by the time the second reached the member,
            # the first would long have reached a stranger the hub sent gossip to.
            for title in ("Kintsugi repair notes", "Urushi lacquer, second coat"):
                record = publish_technique(founder.store, founder.key, title)
                cid = record.cid
                await wait_for(lambda cid=cid: has_record(member.store, cid), 5, "member gossip")
            assert stranger.peer_id not in a.network.mesh()
            nursery.cancel_scope.cancel()

    trio.run(main)
    for setup in setups:
        setup.store.close()
    assert heard == []


def test_members_that_never_heard_of_each_other_connect_at_first_contact(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The founder invites Oaxaca and Nairobi; Oaxaca invites Quito. Quito (joined via a
    # member that is not the founder) and Nairobi hold the genesis and their own
    # certificate chains only, and meet with no one else around: their hellos' proofs
    # make them members to each other at once. Then Quito rotates its key and is back
    # at once, with a hub that never saw the succession record.
    setups = [
        HubSetup(name, tmp_path / name, LmdbStore(tmp_path / name / "store"), PrivateKey.generate())
        for name in ("founder", "oaxaca", "nairobi", "quito")
    ]
    founder, oaxaca, nairobi, quito = setups
    caplog.set_level(logging.INFO, logger="craftnet")  # shown if the record never arrives
    genesis = create_alliance(founder.store, founder.key, "Global Micro-manufacturing Alliance")
    alliance = str(genesis.cid)
    for inviter, guest in ((founder, oaxaca), (founder, nairobi), (oaxaca, quito)):
        _, token = invite(inviter.store, inviter.key, alliance, guest.key.did)
        accept_token(guest.store, token, guest.key.did)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            n = await start_hub(nursery, nairobi, alliance)
            async with trio.open_nursery() as first:
                q = await start_hub(first, quito, alliance, (n.addrs[0],))
                took = await wait_for(
                    lambda: q.engine.ready_peers() == [n.peer_id]
                    and n.engine.ready_peers() == [q.peer_id],
                    5,
                    "first contact",
                )
                assert n.is_member(quito.key.did) and n.is_member(oaxaca.key.did)
                assert q.is_member(nairobi.key.did)
                first.cancel_scope.cancel()
            print(f"\nmembers unknown to each other ready in {took:.2f} s")
            await n.network.hang_up(q.peer_id)
            # `craftnet id rotate`: a succession record signed by the old key.
            new_key = PrivateKey.generate()
            publish(quito.store, quito.key, "key-succession", {"new": new_key.did})
            rotated = HubSetup("quito", quito.home, quito.store, new_key)
            r = await start_hub(nursery, rotated, alliance, (n.addrs[0],))
            await wait_for(
                lambda: n.peer_id in r.engine.ready_peers() and r.peer_id in n.engine.ready_peers(),
                5,
                "the rotated key",
            )
            assert n.is_member(new_key.did) and not n.is_member(quito.key.did)
            # Gossip carries the record only once each hub has the other in its mesh (the
            # next reconcile is minutes away); a busy machine can take a while to graft.
            await wait_for(lambda: meshed(n, r), 10, "the gossip mesh")
            record = publish_technique(quito.store, new_key, "Bamboo joinery after rotation")
            try:
                await wait_for(lambda: has_record(nairobi.store, record.cid), 10, "its records")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; {_gossip_state(r, n)}") from exc
            nursery.cancel_scope.cancel()

    trio.run(main)
    for setup in setups:
        setup.store.close()


def _gossip_state(sender: Hub, receiver: Hub) -> str:
    """What each side of a gossip hop holds, for a failure message."""
    return (
        f"sender ready {sender.engine.ready_peers()} mesh {sender.network.mesh()} "
        f"outbox {len(sender.driver.outbox.queue)} feed cursor {sender.driver.local.cursor}; "
        f"receiver ready {receiver.engine.ready_peers()} mesh {receiver.network.mesh()} "
        f"score of sender {receiver.engine.score(sender.peer_id, receiver.driver.clock())} "
        f"held {len(receiver.engine.held)} wanted {receiver.engine.wanted()}"
    )
