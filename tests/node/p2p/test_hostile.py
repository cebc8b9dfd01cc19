"""A hostile hub (a member whose key was stolen) attacks an honest hub over real libp2p:
garbage frames, an oversized frame, announcements with bad signatures, a flood of
announcements, blocks that do not match their CIDs. Each attack costs it score until it
is disconnected (and, for repeated offences, banned), and the honest hubs keep
converging meanwhile."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from craftnet.archive.cid import DAG_CBOR, Cid
from craftnet.identity.keys import PrivateKey
from craftnet.node.hub import Hub
from craftnet.node.p2p.libp2p_net import Libp2pNetwork, topic_for
from craftnet.node.p2p.net import ByteStream, NetworkError
from craftnet.protocol.events import Side, Validation
from craftnet.protocol.framing import FrameDecoder, encode_frame, encode_varint
from craftnet.protocol.messages import (
    SUPPORTED_VERSIONS,
    Announce,
    Block,
    DontHave,
    End,
    Hello,
    Want,
)
from tests.node.p2p.helpers import (
    LOOPBACK,
    has_record,
    make_hubs,
    meshed,
    publish_technique,
    start_hub,
    wait_for,
)


class Hostile:
    """A libp2p host that speaks just enough of the protocol to misbehave."""

    def __init__(self, key: PrivateKey, alliance: str) -> None:
        self.key = key
        self.alliance = alliance
        self.net = Libp2pNetwork(os.urandom(32), topic_for(alliance))
        self.net.set_validator(lambda peer, data: Validation.ACCEPT)
        self.answer_wants = "never"  # or "garbage" blocks, or "deny" holding them

    async def session(self, target: Hub) -> ByteStream:
        """Connect, say a valid hello and start reading (answering wants if asked to)."""
        peer = await self.net.connect(target.addrs[0])
        # A member (with a stolen key) is admitted to the target's gossip after its
        # hello, and itself sends gossip only to hubs it admitted.
        await self.net.admit(peer)
        stream = await self.net.open_stream(peer)
        hello = Hello.create(self.key, SUPPORTED_VERSIONS, self.alliance, self.net.peer_id)
        await stream.write(encode_frame(hello))
        return stream

    async def read_loop(self, stream: ByteStream) -> None:
        decoder = FrameDecoder()
        while True:
            try:
                data = await stream.read(65536)
            except NetworkError:
                return
            if not data:
                return
            decoder.receive_data(data)
            while (message := decoder.next_message()) is not None:
                if not isinstance(message, Want) or self.answer_wants == "never":
                    continue
                if self.answer_wants == "garbage":
                    out = b"".join(
                        encode_frame(Block(message.req, cid, b"not the block you want"))
                        for cid in message.cids
                    )
                else:
                    out = encode_frame(DontHave(message.req, message.cids))
                try:
                    await stream.write(out + encode_frame(End(message.req)))
                except NetworkError:
                    return

    async def meshed_with(self, target: Hub) -> None:
        """Wait until our gossip reaches ``target`` directly (GossipSub's heartbeat)."""
        await wait_for(lambda: target.peer_id in self.net.mesh(), 10, "the gossip mesh")

    def announce(self, records: list[Cid], *, bad_signature: bool = False, ts: int = 1) -> bytes:
        ann = Announce.create(self.key, ts, tuple(records), ())
        if bad_signature:
            ann = Announce(ann.did, ann.ts, ann.records, ann.heads, bytes(64))
        return encode_frame(ann)


def fake_record(i: int) -> Cid:
    return Cid.of(b"a record nobody holds %d" % i, DAG_CBOR)


async def attack(kind: str, hostile: Hostile, target: Hub) -> None:
    """Misbehave in one way until the target bans us (or 20 s pass)."""
    def banned() -> bool:
        peer = hostile.net.peer_id
        shunned = target.engine.scores.verdict(peer, target.driver.clock()).value != "ok"
        return peer in target.driver.banned or (shunned and peer not in target.driver.links)

    with trio.move_on_after(20):
        async with trio.open_nursery() as nursery:
            for attempt in range(10):
                if banned():
                    break
                try:
                    stream = await hostile.session(target)
                except NetworkError:
                    await trio.sleep(0.2)
                    continue
                nursery.start_soon(hostile.read_loop, stream)
                await wait_for_or_timeout(lambda: hostile.net.peer_id in target.engine.peers, 5)
                try:
                    if kind == "garbage":
                        for _ in range(5):
                            await stream.write(encode_varint(24) + os.urandom(24))
                    elif kind == "oversized":
                        await stream.write(encode_varint(64 * 1024 * 1024) + b"\0" * 1024)
                    elif kind == "bad_signature":
                        await hostile.meshed_with(target)
                        for i in range(5):
                            data = hostile.announce([fake_record(i)], bad_signature=True, ts=i)
                            await hostile.net.publish(data)
                            await trio.sleep(0.05)
                    elif kind == "flood":
                        # As fast as it can, announcing records it never serves, until
                        # it is cut off: for going over the limit or for its promises.
                        await hostile.meshed_with(target)
                        for i in itertools.count():
                            if banned():
                                break
                            await hostile.net.publish(hostile.announce([fake_record(i)], ts=i))
                            await trio.sleep(0.002)
                    elif kind == "bad_block":
                        hostile.answer_wants = "garbage"
                        await hostile.meshed_with(target)
                        for i in range(4):
                            n = attempt * 10 + i
                            await hostile.net.publish(hostile.announce([fake_record(n)], ts=n))
                            await trio.sleep(0.3)
                except NetworkError:
                    pass
                await wait_for_or_timeout(banned, 3)
            nursery.cancel_scope.cancel()


async def wait_for_or_timeout(check: Callable[[], bool], seconds: float) -> None:
    with trio.move_on_after(seconds):
        while not check():
            await trio.sleep(0.05)


@pytest.mark.parametrize(
    "kind",
    ["garbage", "oversized", "bad_signature", pytest.param("flood", marks=pytest.mark.slow),
     "bad_block"],
)
def test_a_hostile_member_is_banned_while_honest_hubs_converge(kind: str, tmp_path: Path) -> None:
    alliance, setups = make_hubs(tmp_path, 3)
    honest_a, honest_b, thief = setups

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            a = await start_hub(nursery, honest_a, alliance)
            b = await start_hub(nursery, honest_b, alliance, (a.addrs[0],))
            await wait_for(lambda: a.engine.ready_peers() == [b.peer_id], 10, "honest link")
            # Records published from here travel by gossip only (the next reconcile is
            # minutes away): the mesh must be there first.
            await wait_for(lambda: meshed(a, b), 15, "the gossip mesh")
            hostile = Hostile(thief.key, alliance)
            async with hostile.net.running(list(LOOPBACK)):
                during = publish_technique(honest_b.store, honest_b.key, "Sashiko mending")
                await attack(kind, hostile, a)
                after = publish_technique(honest_a.store, honest_a.key, "Kintsugi repair")
                peer = hostile.net.peer_id
                # Below the graylist line it is cut off at once, told why, and refused
                # until its score recovers (banned if it does it again within the hour).
                assert a.engine.scores.score(peer, a.driver.clock()) < -20
                closed = a.driver.closed[peer]
                assert closed.side is Side.LOCAL, closed
                assert "graylisted" in closed.reason or "banned" in closed.reason, closed
                assert peer not in a.engine.ready_peers()
                assert peer not in a.driver.links
                offences = a.engine.scores.offence_counts(hostile.net.peer_id)
                assert offences, f"{kind}: no offence recorded"
                await wait_for(
                    lambda: all(has_record(s.store, r.cid)
                                for s in (honest_a, honest_b) for r in (during, after)),
                    30, "the honest hubs to converge",  # a ceiling for a loaded machine
                )
                assert a.engine.ready_peers() == [b.peer_id]
            nursery.cancel_scope.cancel()

    trio.run(main)
    for setup in setups:
        setup.store.close()


@pytest.mark.parametrize("answers", ["deny", "never"])
def test_a_member_announcing_records_it_never_serves_is_cut_off_within_60_s(
    answers: str, tmp_path: Path
) -> None:
    # 10 announcements a second of records that do not exist, signed by a member (a
    # stolen key): it says it does not hold them when asked ("deny"), or never answers
    # while it goes on announcing ("never").
    alliance, setups = make_hubs(tmp_path, 3)
    honest_a, honest_b, thief = setups
    took: list[float] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            a = await start_hub(nursery, honest_a, alliance)
            b = await start_hub(nursery, honest_b, alliance, (a.addrs[0],))
            await wait_for(lambda: a.engine.ready_peers() == [b.peer_id], 10, "honest link")
            hostile = Hostile(thief.key, alliance)
            hostile.answer_wants = answers
            async with hostile.net.running(list(LOOPBACK)), trio.open_nursery() as attack:
                stream = await hostile.session(a)
                attack.start_soon(hostile.read_loop, stream)
                await hostile.meshed_with(a)
                peer = hostile.net.peer_id

                async def flood() -> None:
                    for i in range(10_000):
                        await hostile.net.publish(hostile.announce([fake_record(i)], ts=i))
                        await trio.sleep(0.1)

                attack.start_soon(flood)
                start = trio.current_time()
                during = publish_technique(honest_b.store, honest_b.key, "Sashiko mending")
                await wait_for(lambda: peer in a.driver.closed, 60, "the flooder cut off")
                took.append(trio.current_time() - start)
                closed = a.driver.closed[peer]
                assert closed.side is Side.LOCAL and closed.punished, closed
                assert a.engine.scores.offence_counts(peer).get("broken_promise", 0) > 0
                await wait_for(lambda: has_record(honest_a.store, during.cid), 10, "honest sync")
                assert a.engine.ready_peers() == [b.peer_id]
                assert not a.engine.scores.offence_counts(b.peer_id)
                attack.cancel_scope.cancel()
            nursery.cancel_scope.cancel()

    trio.run(main)
    for setup in setups:
        setup.store.close()
    print(f"\nflooder that answers {answers!r} cut off after {took[0]:.1f} s")
