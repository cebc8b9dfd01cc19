"""Engines joined by an in-memory network: convergence, hostile peers, cut transfers."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

import pytest
from protocol_helpers import (
    ALLIANCE,
    ConnectionPair,
    Hub,
    Network,
    Roster,
    hello_from,
    make_key,
    make_record,
    quick_config,
)

from craftnet.archive import codec
from craftnet.archive.cid import DAG_CBOR, Cid
from craftnet.identity import batch
from craftnet.identity.verify import KeyVerifier
from craftnet.protocol.blocks import BlockConfig
from craftnet.protocol.engine import (
    CONNECTION_TRANSITIONS,
    RECONCILE_TRANSITIONS,
    Conn,
    EngineConfig,
    Rec,
    mermaid,
)
from craftnet.protocol.events import BlocksWanted, PeerId, Side
from craftnet.protocol.framing import encode_frame, encode_varint
from craftnet.protocol.messages import (
    Announce,
    Block,
    Bye,
    End,
    Hello,
    Want,
    to_wire,
)
from craftnet.protocol.reconcile import ReconConfig
from craftnet.protocol.scoring import Verdict


def _hubs_with_overlap(net: Network, shared: int, only_a: int, only_b: int) -> tuple[Hub, Hub]:
    a = net.add(Hub("hub-lisbon", 1))
    b = net.add(Hub("hub-nairobi", 2))
    for n in range(shared):
        record = make_record(a.key, n)
        a.add_record(record)
        b.add_record(record)
    for n in range(only_a):
        a.add_record(make_record(a.key, 1000 + n))
    for n in range(only_b):
        b.add_record(make_record(b.key, 2000 + n))
    return a, b


def test_two_hubs_with_different_records_converge() -> None:
    net = Network()
    a, b = _hubs_with_overlap(net, shared=40, only_a=7, only_b=5)

    net.connect(a.peer, b.peer)
    net.settle()

    assert a.record_keys() == b.record_keys()
    assert len(a.record_keys()) == 52
    assert a.blocks.blocks == b.blocks.blocks
    (done,) = [f for owner, f in net.finished if owner == a.peer]
    assert (done.we_lacked, done.they_lacked) == (5, 7)
    assert done.round_trips >= 1
    assert a.engine.peers[b.peer].conn is Conn.READY
    assert a.engine.peers[b.peer].rec is Rec.IDLE


def _reporting_hubs(net: Network, only_a: int) -> tuple[Hub, Hub]:
    config = quick_config(report_synced=True)
    a = net.add(Hub("hub-lisbon", 1, config))
    b = net.add(Hub("hub-nairobi", 2, config))
    for n in range(10):
        record = make_record(a.key, n)
        a.add_record(record)
        b.add_record(record)
    for n in range(only_a):
        a.add_record(make_record(a.key, 1000 + n))
    return a, b


def test_a_peer_is_reported_synced_once_it_fetched_what_it_lacked_from_us() -> None:
    net = Network()
    a, b = _reporting_hubs(net, only_a=4)

    net.connect(a.peer, b.peer)
    net.settle()

    # b lacked 4 of a's records; a lacked nothing of b's. b reports a synced once it has
    # stored those 4; a reports b once b has asked it for them, not before.
    assert sorted((o, s.did) for o, s in net.synced) == sorted(
        [(b.peer, a.key.did), (a.peer, b.key.did)]
    )
    log = [(o, type(c).__name__) for o, c in net.execute_log]
    finished = log.index((a.peer, "ReconcileFinished"))
    synced = log.index((a.peer, "PeerSynced"))
    assert (a.peer, "Send") in log[finished:synced]  # the records it served in between
    assert log.index((b.peer, "StoreBlocks")) < log.index((b.peer, "PeerSynced"))
    assert a.record_keys() == b.record_keys()
    assert a.engine.peers[b.peer].sync is None


def test_a_peer_gone_before_fetching_what_it_lacked_is_not_reported_synced() -> None:
    net = Network()
    a, b = _reporting_hubs(net, only_a=3)
    net.connect(a.peer, b.peer)
    while not _owed(a, b):
        owner, event = net.queue.popleft()
        net.deliver(owner, event)
    assert len(_owed(a, b)) == 3
    net.queue.clear()  # the link breaks before b's wants reach a
    net.disconnect(a.peer, b.peer)
    net.settle()
    assert [s.did for o, s in net.synced if o == a.peer] == []


def test_no_peer_is_reported_synced_unless_asked() -> None:
    net = Network()
    a, b = _hubs_with_overlap(net, shared=10, only_a=4, only_b=2)  # the default config
    net.connect(a.peer, b.peer)
    net.settle()
    assert a.record_keys() == b.record_keys()
    assert net.synced == []
    assert a.engine.peers[b.peer].sync is None


def _owed(a: Hub, b: Hub) -> set[Cid]:
    peer = a.engine.peers.get(b.peer)
    return set() if peer is None or peer.sync is None else peer.sync.owed


def test_a_connection_pair_swaps_what_each_lacks() -> None:
    pair = ConnectionPair()
    mine, theirs = make_record(pair.a.key, 1), make_record(pair.b.key, 2)
    pair.a.add_record(mine)
    pair.b.add_record(theirs)
    pair.open()
    assert (
        pair.a.blocks.blocks
        == pair.b.blocks.blocks
        == {
            mine.cid: mine.block,
            theirs.cid: theirs.block,
        }
    )


def test_linked_file_chunks_follow_their_record() -> None:
    net = Network()
    a, b = _hubs_with_overlap(net, shared=3, only_a=0, only_b=0)
    chunks = [a.add_raw(f"G-code for the Maker's Fair loom, part {i}".encode()) for i in range(20)]
    design = make_record(a.key, 77, links=tuple(chunks))
    a.add_record(design)

    net.connect(b.peer, a.peer)
    net.settle()

    assert design.cid in b.blocks.blocks
    assert all(b.blocks.blocks[c] == a.blocks.blocks[c] for c in chunks)


def test_hubs_in_a_line_converge_and_reconcile_again_later() -> None:
    net = Network()
    hubs = [net.add(Hub(f"hub-{i}", 10 + i)) for i in range(4)]
    for i, hub in enumerate(hubs):
        for n in range(5):
            hub.add_record(make_record(hub.key, 100 * i + n))
    for left, right in itertools.pairwise(hubs):
        net.connect(left.peer, right.peer)
    # Periodic reconcile carries records hop by hop along the line.
    net.run(until=4 * EngineConfig(alliance=ALLIANCE).reconcile_interval)
    keys = hubs[0].record_keys()
    assert len(keys) == 20
    assert all(h.record_keys() == keys for h in hubs)


def test_an_announcement_brings_the_record_to_the_neighbour() -> None:
    net = Network()
    a, b = _hubs_with_overlap(net, shared=2, only_a=0, only_b=0)
    net.connect(a.peer, b.peer)
    net.settle()
    fresh = make_record(a.key, 555)
    reconciles = len(net.finished)

    net.publish(a, fresh)
    net.settle(0.5)

    assert b.blocks.blocks[fresh.cid] == fresh.block
    assert fresh.cid.bytes in {k[8:] for k in b.record_keys()}
    assert len(net.finished) == reconciles  # it came by announcement, not by a reconcile


def test_blocks_come_from_several_peers_at_once() -> None:
    net = Network()
    config = quick_config(blocks=BlockConfig(window=4, batch=2))
    fetcher = net.add(Hub("hub-rural", 30, config))
    sources = [net.add(Hub(f"hub-city-{i}", 31 + i)) for i in range(3)]
    chunks = [f"Neo-Vernacular Design panel {i}".encode() for i in range(30)]
    cids = []
    for data in chunks:
        for hub in sources:
            cids.append(hub.add_raw(data))
    for hub in sources:
        net.connect(fetcher.peer, hub.peer)
    net.settle()
    served: dict[PeerId, int] = {}
    original = fetcher.engine.exchange.receive

    def counting(peer, msg, now):  # type: ignore[no-untyped-def]
        if isinstance(msg, Block):
            served[peer] = served.get(peer, 0) + 1
        return original(peer, msg, now)

    fetcher.engine.exchange.receive = counting  # type: ignore[method-assign]
    net.queue.append((fetcher.peer, BlocksWanted(tuple(dict.fromkeys(cids)))))
    net.settle()

    assert all(c in fetcher.blocks.blocks for c in cids)
    assert len(served) == 3, served
    assert sum(served.values()) == 30  # every block fetched once: no duplicates


def test_either_side_may_start_a_reconcile_even_both_at_once() -> None:
    net = Network()
    a, b = _hubs_with_overlap(net, shared=50, only_a=3, only_b=4)
    net.connect(a.peer, b.peer)
    net.settle()
    extra_a, extra_b = make_record(a.key, 900), make_record(b.key, 901)
    a.add_record(extra_a)
    b.add_record(extra_b)
    # The listener asks for a reconcile while the dialler's periodic one starts too.
    net.execute(b.peer, b.engine.start_reconcile(a.peer, net.now))
    net.execute(a.peer, a.engine.start_reconcile(b.peer, net.now))
    net.settle()
    assert a.record_keys() == b.record_keys()
    assert len(a.record_keys()) == 59
    assert not a.engine.scores.offence_counts(b.peer)
    assert not b.engine.scores.offence_counts(a.peer)
    assert a.engine.peers[b.peer].rec is Rec.IDLE and b.engine.peers[a.peer].rec is Rec.IDLE


def test_wrong_alliance_is_disconnected() -> None:
    net = Network()
    a = net.add(Hub("hub-a", 1))
    b = net.add(Hub("hub-b", 2, quick_config(alliance="Intergenerational Making Cooperatives")))
    net.connect(a.peer, b.peer)
    net.settle()
    assert not net.connected(a.peer, b.peer)
    reasons = [d.reason for _, d in net.disconnects]
    assert any("alliance" in r for r in reasons)


def test_a_non_member_cannot_sync() -> None:
    net = Network()
    member = net.add(Hub("hub-member", 1, members=Roster({make_key(1).did})))
    outsider = net.add(Hub("hub-outsider", 99))
    outsider.add_record(make_record(outsider.key, 1))
    net.connect(outsider.peer, member.peer)
    net.settle()
    assert not net.connected(outsider.peer, member.peer)
    assert not member.record_keys()
    assert any("not a member" in d.reason for _, d in net.disconnects)
    # The outsider hears why, and does not redial at once.
    (closed,) = [c for owner, c in net.closed if owner == outsider.peer]
    assert closed.side is Side.REMOTE and "not a member" in closed.reason
    assert not net.dials


def test_a_replayed_hello_is_refused() -> None:
    net = Network()
    a = net.add(Hub("hub-a", 1))
    mallory = net.add_raw("mallory")
    net.connect(mallory.peer, a.peer)
    # A hello that hub-b signed for its own peer id, replayed by mallory.
    net.inject(mallory.peer, a.peer, hello_from(PeerId("hub-b"), seed=2))
    net.settle(0.1)
    assert not net.connected(mallory.peer, a.peer)
    assert a.engine.scores.offence_counts(mallory.peer) == {"invalid_signature": 1}


def test_hostile_peer_is_scored_down_and_banned_while_honest_sync_proceeds() -> None:
    net = Network()
    a, b = _hubs_with_overlap(net, shared=20, only_a=10, only_b=10)
    mallory = net.add_raw("mallory")
    net.connect(a.peer, b.peer)
    net.connect(mallory.peer, a.peer)
    net.inject(mallory.peer, a.peer, hello_from(mallory.peer))
    net.settle(0.1)
    assert a.engine.peers[mallory.peer].conn is Conn.READY

    # A flood of junk announcements over gossip, some with bad signatures.
    key = make_key(666)
    good = Announce.create(key, 1, (Cid.of(b"x"),))
    forged = Announce(good.did, 2, good.records, (), bytes(64))
    for i in range(150):
        net.inject(mallory.peer, a.peer, encode_frame(forged if i % 10 == 0 else good), gossip=True)
    # Garbage and a bad block on the sync stream.
    net.inject(mallory.peer, a.peer, encode_varint(5) + b"\xff\xfe\xfd\xfc\xfb")
    net.inject(mallory.peer, a.peer, encode_frame(Block(1, Cid.of(b"honest"), b"forged")))
    net.settle(1.0)

    assert not net.connected(mallory.peer, a.peer)
    assert [ban for owner, ban in net.bans if ban.peer == mallory.peer]
    assert a.engine.scores.is_banned(mallory.peer, net.now)
    standing = a.engine.standing(mallory.peer, net.now)
    assert standing.banned and standing.score is None
    assert standing.offences == sum(a.engine.scores.offence_counts(mallory.peer).values()) > 0
    honest = a.engine.standing(b.peer, net.now)
    assert not honest.banned and honest.offences == 0 and honest.score is None
    assert a.record_keys() == b.record_keys()
    assert len(a.record_keys()) == 40

    # A banned peer that dials again is turned away at once.
    net.connect(mallory.peer, a.peer)
    net.settle(0.1)
    assert mallory.peer not in a.engine.peers


def test_oversized_frame_cuts_the_connection_before_buffering() -> None:
    net = Network()
    a = net.add(Hub("hub-a", 1))
    mallory = net.add_raw("mallory")
    net.connect(mallory.peer, a.peer)
    net.inject(mallory.peer, a.peer, hello_from(mallory.peer))
    net.inject(mallory.peer, a.peer, encode_varint(1 << 40))
    net.settle(0.1)
    assert not net.connected(mallory.peer, a.peer)
    assert a.engine.scores.offence_counts(mallory.peer) == {"oversized_frame": 1}
    standing = a.engine.standing(mallory.peer, net.now)
    assert not standing.banned and standing.offences == 1
    assert standing.score is not None and standing.score < 0


def test_bad_blocks_are_never_stored_and_the_block_is_fetched_elsewhere() -> None:
    net = Network()
    a = net.add(Hub("hub-a", 1))
    honest = net.add(Hub("hub-honest", 2))
    record = make_record(honest.key, 1)
    honest.add_record(record)
    mallory = net.add_raw("mallory")
    net.connect(a.peer, mallory.peer)
    net.inject(mallory.peer, a.peer, hello_from(mallory.peer))
    net.settle(0.1)
    net.queue.append((a.peer, BlocksWanted((record.cid,))))
    net.settle(0.1)
    (want,) = [m for m in mallory.messages_from(a.peer) if isinstance(m, Want)]
    assert want.have_only
    # Mallory claims to have it, then sends bytes that do not match the CID.
    forged = codec.encode({"title": "forged"})
    net.inject(mallory.peer, a.peer, encode_frame(Block(want.req, record.cid, forged)))
    net.settle(0.1)
    assert record.cid not in a.blocks.blocks
    assert a.engine.scores.offence_counts(mallory.peer).get("bad_block") == 1

    net.connect(a.peer, honest.peer)
    net.settle(1.0)
    assert a.blocks.blocks[record.cid] == record.block
    assert Cid.of(forged, DAG_CBOR) not in a.blocks.blocks


def test_record_with_a_bad_signature_is_refused() -> None:
    net = Network()
    a = net.add(Hub("hub-a", 1))
    mallory = net.add_raw("mallory")
    net.connect(a.peer, mallory.peer)
    net.inject(mallory.peer, a.peer, hello_from(mallory.peer))
    record = make_record(make_key(9), 1)
    tampered = dict(codec.decode(record.block))
    tampered["sig"] = bytes(64)
    block = codec.encode(tampered)
    cid = Cid.of(block, DAG_CBOR)
    net.queue.append((a.peer, BlocksWanted((cid,))))
    net.settle(0.1)
    (want,) = [m for m in mallory.messages_from(a.peer) if isinstance(m, Want)]
    net.inject(mallory.peer, a.peer, encode_frame(Block(want.req, cid, block)))
    net.inject(mallory.peer, a.peer, encode_frame(End(want.req)))
    net.settle(0.1)
    assert cid not in a.blocks.blocks
    assert a.engine.scores.offence_counts(mallory.peer).get("invalid_signature") == 1


@pytest.fixture(params=[0, 2], ids=["one-process", "two-workers"])
def workers(request: pytest.FixtureRequest) -> Iterator[int]:
    batch.set_workers(request.param)
    try:
        if request.param:  # up and answering before the read arrives
            key = make_key(5)
            batch.verify_many([(key.public, key.sign(b"warm"), b"warm")], pool=True)
        yield request.param
    finally:
        batch.set_workers(None)


def test_a_read_of_many_records_is_checked_together_and_a_forgery_still_refused(
    workers: int,
) -> None:
    net = Network()
    # prime_start=0: the workers take a read's signatures from the first one.
    a = net.add(Hub("hub-a", 1, verifier=KeyVerifier(prime_start=0)))
    mallory = net.add_raw("mallory")
    net.connect(a.peer, mallory.peer)
    net.inject(mallory.peer, a.peer, hello_from(mallory.peer))
    records = [make_record(make_key(9), n) for n in range(40)]
    blocks = {r.cid: r.block for r in records}
    tampered = dict(codec.decode(records[17].block))
    tampered["sig"] = bytes(63) + b"\x01"
    forged = codec.encode(tampered)
    forged_cid = Cid.of(forged, DAG_CBOR)
    del blocks[records[17].cid]
    blocks[forged_cid] = forged
    net.queue.append((a.peer, BlocksWanted(tuple(blocks))))
    net.settle(0.1)
    wants = [m for m in mallory.messages_from(a.peer) if isinstance(m, Want)]
    assert sum(len(w.cids) for w in wants) == 40
    # Every answer in one read, as a fast peer's arrive.
    answers = [
        encode_frame(message)
        for want in wants
        for message in (*(Block(want.req, cid, blocks[cid]) for cid in want.cids), End(want.req))
    ]
    net.inject(mallory.peer, a.peer, b"".join(answers))
    net.settle(0.1)
    assert forged_cid not in a.blocks.blocks
    assert all(r.cid in a.blocks.blocks for i, r in enumerate(records) if i != 17)
    assert a.engine.scores.offence_counts(mallory.peer) == {"invalid_signature": 1}


def test_a_cut_reconcile_is_never_taken_as_complete() -> None:
    net = Network()
    small_frames = quick_config(recon=ReconConfig(buckets=4, leaf_size=4, ranges_per_frame=2))
    a = net.add(Hub("hub-lisbon", 1, small_frames))
    b = net.add(Hub("hub-nairobi", 2, small_frames))
    for n in range(300):
        record = make_record(a.key, n)
        a.add_record(record)
        b.add_record(record)
    for n in range(40):
        a.add_record(make_record(a.key, 1000 + n))
        b.add_record(make_record(b.key, 2000 + n))
    # The link dies inside a reconcile message that spans many frames.
    net.cut_after[frozenset((a.peer, b.peer))] = 1500
    net.connect(a.peer, b.peer)
    net.settle()
    assert net.bytes_sent > 500  # hellos and whole frames went through first
    assert not net.finished
    assert len(a.record_keys()) == len(b.record_keys()) == 340
    # Reconnected, the hubs finish the job.
    net.connect(a.peer, b.peer)
    net.settle()
    assert a.record_keys() == b.record_keys()
    assert len(a.record_keys()) == 380


def test_a_cut_block_transfer_resumes_from_the_saved_want_list() -> None:
    net = Network()
    config = quick_config(blocks=BlockConfig(window=2, batch=1))
    a = net.add(Hub("hub-rural", 1, config))
    b = net.add(Hub("hub-city", 2))
    chunks = [b.add_raw(random.Random(i).randbytes(3000)) for i in range(30)]
    net.connect(a.peer, b.peer)
    net.settle()
    net.queue.append((a.peer, BlocksWanted(tuple(chunks))))
    net.cut_after[frozenset((a.peer, b.peer))] = 20_000
    net.settle()
    got = [c for c in chunks if c in a.blocks.blocks]
    assert 0 < len(got) < len(chunks)
    saved = a.engine.export_wants()

    # The hub restarts: a new engine over the same blocks, with the saved want list.
    restarted = Hub("hub-rural", 1, config)
    restarted.blocks = a.blocks
    restarted.engine.exchange.blocks = a.blocks
    assert restarted.engine.import_wants(saved) == len(chunks) - len(got)
    net.hubs[a.peer] = restarted
    net.connect(a.peer, b.peer)
    net.settle()
    assert all(c in restarted.blocks.blocks for c in chunks)


def test_a_dropped_connection_is_redialled_with_backoff() -> None:
    net = Network()
    a, b = _hubs_with_overlap(net, shared=300, only_a=40, only_b=40)
    net.cut_after[frozenset((a.peer, b.peer))] = 1500
    net.connect(a.peer, b.peer)
    net.settle(1.0)
    assert not net.connected(a.peer, b.peer)
    net.settle(10.0)
    assert [d.peer for owner, d in net.dials if owner == a.peer] == [b.peer]
    assert a.record_keys() == b.record_keys()
    assert len(a.record_keys()) == 380


def test_a_graylisted_hub_is_cut_off_and_redialled_only_once_its_score_recovers() -> None:
    net = Network()
    a = net.add(Hub("hub-a", 1))
    mallory = net.add_raw("mallory")
    net.connect(a.peer, mallory.peer)
    net.inject(mallory.peer, a.peer, hello_from(mallory.peer))
    net.inject(mallory.peer, a.peer, (encode_varint(3) + b"\xff\xff\xff") * 3)
    net.settle(0.1)
    # Two bad frames: below the graylist line, so cut off at once (the third is not read).
    assert not net.connected(a.peer, mallory.peer)
    assert a.engine.scores.offence_counts(mallory.peer) == {"malformed_frame": 2}
    (bye,) = [m for m in mallory.messages_from(a.peer) if isinstance(m, Bye)]
    assert "graylisted" in bye.why
    # A score of -40 is back at the graylist line (-20) after one half-life, 600 s.
    net.settle(590.0)
    assert not net.dials
    net.settle(20.0)
    assert [d.peer for _, d in net.dials] == [mallory.peer]


def test_a_hub_that_misbehaves_again_after_its_graylisting_is_banned_and_not_redialled() -> None:
    net = Network()
    a = net.add(Hub("hub-a", 1))
    mallory = net.add_raw("mallory")
    forged = encode_frame(Block(1, Cid.of(b"honest"), b"forged"))
    for _ in range(3):
        net.dials.clear()
        net.connect(a.peer, mallory.peer)
        net.inject(mallory.peer, a.peer, hello_from(mallory.peer))
        net.inject(mallory.peer, a.peer, b"\x05\xff\xff\xff\xff\xff" + forged)
        net.settle(0.1)
        assert not net.connected(a.peer, mallory.peer)
        if a.engine.scores.is_banned(mallory.peer, net.now):
            break
        net.settle(700.0)  # graylisted: redialled once the score is back at the line
        assert [d.peer for _, d in net.dials] == [mallory.peer]
    assert a.engine.scores.is_banned(mallory.peer, net.now)
    net.dials.clear()
    net.settle(3600.0)
    assert not net.dials


def test_an_honest_hub_on_a_very_slow_link_is_not_pushed_out() -> None:
    net = Network()
    config = quick_config(blocks=BlockConfig(window=8, batch=8, timeout=5.0))
    rural = net.add(Hub("hub-rural", 1, config))
    city = net.add(Hub("hub-city", 2))
    for n in range(60):
        city.add_record(make_record(city.key, n))
    # Every answer takes 8 s: longer than the want timeout, so requests time out.
    net.latency[frozenset((rural.peer, city.peer))] = 8.0
    net.connect(rural.peer, city.peer)
    net.run(until=600.0)
    assert rural.record_keys() == city.record_keys()
    counts = rural.engine.scores.offence_counts(city.peer)
    assert set(counts) <= {"timeout"} and counts
    assert rural.engine.scores.verdict(city.peer, net.now).value == "ok"
    assert net.connected(rural.peer, city.peer)


def test_a_flood_of_wants_gets_the_peer_cut_off() -> None:
    net = Network()
    a = net.add(Hub("hub-a", 1))
    mallory = net.add_raw("mallory")
    net.connect(mallory.peer, a.peer)
    net.inject(mallory.peer, a.peer, hello_from(mallory.peer))
    flood = b"".join(encode_frame(Want(i + 1, (Cid.of(b"%d" % i),))) for i in range(4100))
    net.inject(mallory.peer, a.peer, flood)
    net.settle(0.1)
    assert a.engine.scores.offence_counts(mallory.peer).get("flood", 0) >= 10
    assert a.engine.scores.verdict(mallory.peer, net.now) is not Verdict.OK
    assert not net.connected(mallory.peer, a.peer)


def test_an_unsupported_version_is_refused_with_a_reason_and_no_penalty() -> None:
    net = Network()
    a = net.add(Hub("hub-a", 1))
    older = net.add_raw("older")
    net.connect(older.peer, a.peer)
    body = codec.encode({**to_wire(Hello.create(make_key(5), (1,), ALLIANCE, "older")), "v": 1})
    net.inject(older.peer, a.peer, encode_varint(len(body)) + body)
    net.settle(0.1)
    assert not net.connected(older.peer, a.peer)
    assert any("not supported" in d.reason for _, d in net.disconnects)
    (bye,) = [m for m in older.messages_from(a.peer) if isinstance(m, Bye)]
    assert "upgrade" in bye.why
    assert not a.engine.scores.offence_counts(older.peer)


def test_message_before_hello_closes_the_connection() -> None:
    net = Network()
    a = net.add(Hub("hub-a", 1))
    mallory = net.add_raw("mallory")
    net.connect(mallory.peer, a.peer)
    net.inject(mallory.peer, a.peer, encode_frame(End(1)))
    net.settle(0.1)
    assert not net.connected(mallory.peer, a.peer)


def test_silent_peer_times_out_in_handshake() -> None:
    net = Network()
    a = net.add(Hub("hub-a", 1))
    mallory = net.add_raw("mallory")
    net.connect(mallory.peer, a.peer)
    net.settle(30)
    assert mallory.peer not in a.engine.peers
    assert not a.engine.scores.offence_counts(mallory.peer)


def test_state_diagrams_cover_every_state() -> None:
    conn = mermaid(CONNECTION_TRANSITIONS)
    rec = mermaid(RECONCILE_TRANSITIONS)
    assert conn.startswith("stateDiagram-v2")
    for state in Conn:
        assert state.name in conn
    for state in Rec:
        assert state.name in rec


def test_a_ring_of_hubs_converges_through_announcements_and_reconciles() -> None:
    net = Network()
    hubs = [net.add(Hub(f"hub-ring-{i}", 40 + i)) for i in range(8)]
    for i, hub in enumerate(hubs):
        for n in range(15):
            hub.add_record(make_record(hub.key, 100 * i + n))
    for left, right in itertools.pairwise([*hubs, hubs[0]]):
        net.connect(left.peer, right.peer)
    net.settle()
    fresh = make_record(hubs[0].key, 9999)
    net.publish(hubs[0], fresh)
    net.run(until=net.now + 5 * EngineConfig(alliance=ALLIANCE).reconcile_interval)
    keys = hubs[0].record_keys()
    assert len(keys) == 8 * 15 + 1
    assert all(h.record_keys() == keys for h in hubs)
    assert all(not h.engine.exchange.wants for h in hubs)


def test_an_announcement_is_a_repeat_only_while_it_is_among_the_last_taken() -> None:
    """The engine skips announcements it took lately (``seen_announcements`` of them),
    and forgets the oldest first."""
    net = Network()
    a = net.add(Hub("hub-a", 1, config=quick_config(seen_announcements=2)))
    relay = net.add_raw("relay")
    net.connect(relay.peer, a.peer)
    net.inject(relay.peer, a.peer, hello_from(relay.peer))
    net.settle(0.1)
    key = make_key(666)
    first, second, third = (Announce.create(key, n, (Cid.of(b"%d" % n),)) for n in (1, 2, 3))

    def verdicts(*announcements: Announce) -> list[str]:
        before = len(net.verdicts)
        for announcement in announcements:
            net.inject(relay.peer, a.peer, encode_frame(announcement), gossip=True)
        net.settle(0.1)
        return [v.reason for _, v in net.verdicts[before:]]

    assert verdicts(first, second, first) == ["", "", "seen before"]
    # A third one pushes the oldest out: the first is news again, the second is not.
    assert verdicts(third, second, first) == ["", "seen before", ""]
    assert verdicts(third) == ["seen before"]
