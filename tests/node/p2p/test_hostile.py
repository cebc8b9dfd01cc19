"""A hostile hub (a member whose key was stolen) attacks an honest hub over real libp2p:
garbage frames, an oversized frame, announcements with bad signatures, a flood of
announcements, blocks that do not match their CIDs. Each attack costs it score until it
is disconnected (and, for repeated offences, banned), and the honest hubs keep
converging meanwhile."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from craftnet.archive.cid import DAG_CBOR, Cid
from craftnet.identity.keys import PrivateKey
from craftnet.node.hub import Hub
from craftnet.node.p2p.libp2p_net import Libp2pNetwork, topic_for
from craftnet.node.p2p.net import ByteStream, NetworkError
from craftnet.protocol.framing import FrameDecoder, encode_frame, encode_varint
from craftnet.protocol.messages import SUPPORTED_VERSIONS, Announce, Block, End, Hello, Want
from tests.node.p2p.helpers import (
    LOOPBACK,
    has_record,
    make_hubs,
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
        self.net.set_validator(lambda peer, data: True)
        self.answer_wants_with_garbage = False

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
                if isinstance(message, Want) and self.answer_wants_with_garbage:
                    out = b"".join(
                        encode_frame(Block(message.req, cid, b"not the block you want"))
                        for cid in message.cids
                    ) + encode_frame(End(message.req))
                    try:
                        await stream.write(out)
                    except NetworkError:
                        return

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
                await trio.sleep(0.3)
                try:
                    if kind == "garbage":
                        for _ in range(5):
                            await stream.write(encode_varint(24) + os.urandom(24))
                    elif kind == "oversized":
                        await stream.write(encode_varint(64 * 1024 * 1024) + b"\0" * 1024)
                    elif kind == "bad_signature":
                        await trio.sleep(1.2)  # the gossip mesh
                        for i in range(5):
                            data = hostile.announce([fake_record(i)], bad_signature=True, ts=i)
                            await hostile.net.publish(data)
                            await trio.sleep(0.05)
                    elif kind == "flood":
                        await trio.sleep(1.2)
                        for i in range(600):
                            await hostile.net.publish(hostile.announce([fake_record(i)], ts=i))
                            await trio.sleep(0.004)
                    elif kind == "bad_block":
                        hostile.answer_wants_with_garbage = True
                        await trio.sleep(1.2)
                        for i in range(4):
                            n = attempt * 10 + i
                            await hostile.net.publish(hostile.announce([fake_record(n)], ts=n))
                            await trio.sleep(0.3)
                except NetworkError:
                    pass
                await wait_for_or_timeout(banned, 3)
            nursery.cancel_scope.cancel()


async def wait_for_or_timeout(check: object, seconds: float) -> None:
    with trio.move_on_after(seconds):
        while not check():  # type: ignore[operator]
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
            hostile = Hostile(thief.key, alliance)
            async with hostile.net.running(list(LOOPBACK)):
                during = publish_technique(honest_b.store, honest_b.key, "Sashiko mending")
                await attack(kind, hostile, a)
                after = publish_technique(honest_a.store, honest_a.key, "Kintsugi repair")
                peer = hostile.net.peer_id
                if kind == "garbage":  # three bad frames in one write: straight to a ban
                    assert peer in a.driver.banned, f"{kind}: not banned"
                # Otherwise the peer may be cut off on the way down: below the graylist it
                # is asked nothing more, hung up on, and refused until its score recovers
                # (or banned, if its offences came fast enough to pass the threshold).
                assert a.engine.scores.score(peer, a.driver.clock()) < -20
                assert peer not in a.engine.ready_peers()
                assert peer not in a.driver.links
                offences = a.engine.scores.offence_counts(hostile.net.peer_id)
                assert offences, f"{kind}: no offence recorded"
                await wait_for(
                    lambda: all(has_record(s.store, r.cid)
                                for s in (honest_a, honest_b) for r in (during, after)),
                    5, "the honest hubs to converge",
                )
                assert a.engine.ready_peers() == [b.peer_id]
            nursery.cancel_scope.cancel()

    trio.run(main)
    for setup in setups:
        setup.store.close()
