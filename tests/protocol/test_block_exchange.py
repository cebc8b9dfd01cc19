"""The block exchange on its own: requests, verification, timeouts, promises, resume."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st
from protocol_helpers import make_key, make_record

from craftnet.archive import codec
from craftnet.archive.cid import DAG_CBOR, RAW, Cid
from craftnet.protocol.blocks import BlockConfig, BlockExchange, DictBlocks
from craftnet.protocol.errors import MalformedMessage
from craftnet.protocol.events import PeerId, SetTimer, StoreBlocks
from craftnet.protocol.messages import Block, DontHave, End, Have, Want

P1, P2 = PeerId("hub-one"), PeerId("hub-two")
CHUNKS = [f"Living Heritage Program weaving pattern {i}".encode() for i in range(10)]
CIDS = [Cid.of(c, RAW) for c in CHUNKS]


def _exchange(**config: int | float | bool) -> BlockExchange:
    return BlockExchange(DictBlocks(), random.Random(0), BlockConfig(**config))  # type: ignore[arg-type]


def _wants(out: list[object]) -> list[tuple[PeerId, Want]]:
    return [item for item in out if isinstance(item, tuple)]  # type: ignore[misc]


def test_requests_spread_over_providers_and_respect_the_window() -> None:
    ex = _exchange(window=3, batch=2)
    ex.peer_ready(P1)
    ex.peer_ready(P2)
    ex.want(CIDS, P1)
    ex.want(CIDS, P2)
    sent = _wants(ex.pump(0.0, {P1, P2}))
    per_peer = {p: sum(len(w.cids) for q, w in sent if q == p) for p in (P1, P2)}
    assert per_peer == {P1: 3, P2: 3}
    asked = [c for _, w in sent for c in w.cids]
    assert len(asked) == len(set(asked))  # no block asked of two peers at once


def test_blocks_are_verified_and_stored() -> None:
    ex = _exchange()
    ex.peer_ready(P1)
    ex.want(CIDS[:1], P1)
    ((_, want),) = _wants(ex.pump(0.0, {P1}))
    out = ex.receive(P1, Block(want.req, CIDS[0], CHUNKS[0]), 0.0)
    (store,) = [c for c in out if isinstance(c, StoreBlocks)]
    assert store.blocks[0].cid == CIDS[0] and store.blocks[0].ts is None
    assert not ex.wants and ex.have(CIDS[0])


def test_a_record_block_carries_its_timestamp_and_links() -> None:
    ex = _exchange()
    ex.peer_ready(P1)
    record = make_record(make_key(3), 4, links=(CIDS[5],))
    ex.want([record.cid], P1)
    ((_, want),) = _wants(ex.pump(0.0, {P1}))
    (store,) = ex.receive(P1, Block(want.req, record.cid, record.block), 0.0)
    assert isinstance(store, StoreBlocks) and store.blocks[0].ts == record.ts
    assert CIDS[5] in ex.wants


def test_bad_block_is_an_offence_and_the_block_stays_wanted() -> None:
    ex = _exchange()
    ex.peer_ready(P1)
    ex.want(CIDS[:1], P1)
    ((_, want),) = _wants(ex.pump(0.0, {P1}))
    assert ex.receive(P1, Block(want.req, CIDS[0], b"not it"), 0.0) == []
    assert ex.offences == [(P1, "bad_block")]
    assert CIDS[0] in ex.wants


def test_unsolicited_block_is_an_offence() -> None:
    ex = _exchange()
    ex.peer_ready(P1)
    ex.want(CIDS[:1], P1)
    ((_, want),) = _wants(ex.pump(0.0, {P1}))
    ex.receive(P1, Block(want.req, CIDS[1], CHUNKS[1]), 0.0)
    ex.receive(P1, Block(999, CIDS[2], CHUNKS[2]), 0.0)
    assert ex.offences == [(P1, "unsolicited_block"), (P1, "unsolicited_block")]


def test_timeout_retries_elsewhere_and_a_late_block_is_still_welcome() -> None:
    ex = _exchange(window=10, batch=10, timeout=5.0, per_block_timeout=0.0)
    ex.peer_ready(P1)
    ex.peer_ready(P2)
    ex.want(CIDS[:2], P1)
    out = ex.pump(0.0, {P1})
    ((_, want),) = _wants(out)
    (timer,) = [c for c in out if isinstance(c, SetTimer)]
    assert timer.at == 5.0
    ex.want(CIDS[:2], P2)
    ex.timer(timer.timer, 5.0)
    assert ex.offences == [(P1, "timeout")]
    ((peer, retry),) = _wants(ex.pump(5.0, {P1, P2}))
    assert peer == P2 and set(retry.cids) == set(CIDS[:2])
    # P1 was slow, not dishonest: its late block is stored without a penalty.
    assert ex.receive(P1, Block(want.req, CIDS[0], CHUNKS[0]), 6.0)
    assert ex.offences == [(P1, "timeout")]


def test_an_end_without_the_promised_block_is_a_broken_promise() -> None:
    ex = _exchange()
    ex.peer_ready(P1)
    ex.want(CIDS[:2], P1, promised=True)
    ((_, want),) = _wants(ex.pump(0.0, {P1}))
    ex.receive(P1, Block(want.req, CIDS[0], CHUNKS[0]), 0.0)
    ex.receive(P1, End(want.req), 0.0)
    assert ex.offences == [(P1, "broken_promise")]
    assert CIDS[1] in ex.wants and not ex.wants[CIDS[1]].providers


def test_a_transfer_without_its_end_is_not_complete() -> None:
    ex = _exchange()
    ex.peer_ready(P1)
    ex.want(CIDS[:3], P1)
    ((_, want),) = _wants(ex.pump(0.0, {P1}))
    ex.receive(P1, Block(want.req, CIDS[0], CHUNKS[0]), 0.0)
    assert want.req in ex.peers[P1].requests
    assert ex.peers[P1].inflight == 2
    ex.peer_gone(P1)
    assert set(ex.wants) == set(CIDS[1:3])


def test_discovery_asks_every_peer_then_fetches_from_those_that_have() -> None:
    ex = _exchange()
    ex.peer_ready(P1)
    ex.peer_ready(P2)
    ex.want(CIDS[:2])
    queries = _wants(ex.pump(0.0, {P1, P2}))
    assert {p for p, _ in queries} == {P1, P2} and all(w.have_only for _, w in queries)
    for peer, query in queries:
        if peer == P1:
            ex.receive(P1, Have(query.req, query.cids), 0.0)
        else:
            ex.receive(P2, DontHave(query.req, query.cids), 0.0)
        ex.receive(peer, End(query.req), 0.0)
    ((peer, fetch),) = _wants(ex.pump(0.0, {P1, P2}))
    assert peer == P1 and not fetch.have_only and set(fetch.cids) == set(CIDS[:2])


def test_serving_sends_blocks_dont_haves_and_the_end_marker() -> None:
    blocks = DictBlocks()
    blocks.blocks[CIDS[0]] = CHUNKS[0]
    ex = BlockExchange(blocks, random.Random(0))
    answer = ex.serve(Want(7, (CIDS[0], CIDS[1])))
    assert answer == [Block(7, CIDS[0], CHUNKS[0]), DontHave(7, (CIDS[1],)), End(7)]
    assert ex.serve(Want(8, (CIDS[0],), True)) == [Have(8, (CIDS[0],)), End(8)]


def test_want_list_survives_export_and_import() -> None:
    ex = _exchange()
    ex.want(CIDS)
    saved = ex.export_wants()
    fresh = _exchange()
    assert fresh.import_wants(saved) == len(CIDS)
    assert set(fresh.wants) == set(CIDS)
    for corrupt in (b"", saved[:-1], b"\xa0", saved.replace(b"\x01", b"\x02", 1)):
        with pytest.raises(MalformedMessage, match="want list"):
            _exchange().import_wants(corrupt)


def test_a_saved_want_list_refuses_what_is_not_whole_cids() -> None:
    packed = b"".join(c.bytes for c in CIDS)
    for value in (
        {"v": 2, "cids": packed[:-1]},  # cut inside the last CID
        {"v": 2, "cids": b"\x07" * 36},  # 36 bytes that are no CID
        {"v": 2, "cids": [c.bytes for c in CIDS]},  # a list where bytes belong
        {"v": 3, "cids": packed},  # a version from the future
        {"v": 1, "cids": ["not a link"]},
        {"cids": packed},
    ):
        with pytest.raises(MalformedMessage, match="want list"):
            _exchange().import_wants(codec.encode(value))


def test_a_version_1_want_list_saved_before_the_upgrade_is_restored() -> None:
    saved = codec.encode({"v": 1, "cids": sorted(CIDS)})
    fresh = _exchange()
    assert fresh.import_wants(saved) == len(CIDS)
    assert set(fresh.wants) == set(CIDS)


@given(st.sets(st.tuples(st.sampled_from([RAW, DAG_CBOR]), st.binary(min_size=32, max_size=32)),
               max_size=50))
def test_any_want_list_round_trips(wanted: set[tuple[int, bytes]]) -> None:
    ex = _exchange()
    cids = [Cid(kind, digest) for kind, digest in wanted]
    ex.want(cids)
    fresh = _exchange()
    assert fresh.import_wants(ex.export_wants()) == len(cids)
    assert set(fresh.wants) == set(cids)
    # The same list saves to the same bytes, whatever order it was wanted in.
    again = _exchange()
    again.want(list(reversed(cids)))
    assert again.export_wants() == ex.export_wants()


def test_a_peer_that_comes_back_is_asked_again() -> None:
    ex = _exchange()
    ex.peer_ready(P1)
    ex.want(CIDS[:1])
    ((_, query),) = _wants(ex.pump(0.0, {P1}))
    assert query.have_only
    ex.peer_gone(P1)
    ex.peer_ready(P1)
    ((_, again),) = _wants(ex.pump(1.0, {P1}))
    assert again.have_only and again.cids == tuple(CIDS[:1])


def test_a_block_answering_a_have_query_is_taken_without_breaking_the_window() -> None:
    ex = _exchange()
    ex.peer_ready(P1)
    ex.want(CIDS[:1])
    ((_, query),) = _wants(ex.pump(0.0, {P1}))
    assert ex.receive(P1, Block(query.req, CIDS[0], CHUNKS[0]), 0.0)
    assert ex.peers[P1].inflight == 0


def test_a_want_stored_by_another_path_is_dropped() -> None:
    blocks = DictBlocks()
    ex = BlockExchange(blocks, random.Random(0))
    ex.peer_ready(P1)
    ex.want(CIDS[:2], P1)
    blocks.blocks[CIDS[0]] = CHUNKS[0]
    ((_, want),) = _wants(ex.pump(0.0, {P1}))
    assert want.cids == (CIDS[1],)
    assert CIDS[0] not in ex.wants


class _ManyBlocks(DictBlocks):
    """A source that reads many blocks at once (as the store's does), counting calls."""

    def __init__(self) -> None:
        super().__init__()
        self.single = 0

    def has_block(self, cid: Cid) -> bool:
        self.single += 1
        return super().has_block(cid)

    def get_block(self, cid: Cid) -> bytes | None:
        self.single += 1
        return super().get_block(cid)

    def has_blocks(self, cids: Sequence[Cid]) -> list[bool]:
        return [cid in self.blocks for cid in cids]

    def get_blocks(self, cids: Sequence[Cid]) -> list[bytes | None]:
        return [self.blocks.get(cid) for cid in cids]


def test_a_source_that_reads_many_at_once_serves_and_wants_as_one_at_a_time() -> None:
    plain, many = DictBlocks(), _ManyBlocks()
    for source in (plain, many):
        source.blocks[CIDS[0]] = CHUNKS[0]
        source.blocks[CIDS[2]] = CHUNKS[2]
    one, batched = BlockExchange(plain, random.Random(0)), BlockExchange(many, random.Random(0))
    asked = Want(7, (CIDS[1], CIDS[0], CIDS[2], CIDS[1]))
    assert batched.serve(asked) == one.serve(asked)
    for ex in (one, batched):
        ex.peer_ready(P1)
        ex.want([*CIDS, CIDS[1]], P1)
    assert set(batched.wants) == set(one.wants) == set(CIDS) - {CIDS[0], CIDS[2]}
    assert _wants(batched.pump(0.0, {P1})) == _wants(one.pump(0.0, {P1}))
    assert many.single <= len(CIDS)  # what pump re-checks, one by one as before
