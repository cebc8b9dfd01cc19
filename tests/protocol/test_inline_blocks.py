"""Announcements that carry their small blocks: stored on arrival, checked like fetched ones.

A hub that publishes a record pushes its bytes inside the signed announcement; the
receiver hashes each inline block against the signed CIDs, checks it as it would a
fetched block and stores it without a request. Whatever does not check out costs the
forwarder, and nothing of it is stored.
"""

from __future__ import annotations

import cbor2
import pytest
from protocol_helpers import ALLIANCE, Hub, make_key, make_record

from craftnet.archive import codec
from craftnet.archive.cid import DAG_CBOR, Cid
from craftnet.archive.records import Record
from craftnet.protocol.engine import EngineConfig
from craftnet.protocol.errors import MalformedMessage
from craftnet.protocol.events import (
    Command,
    GossipReceived,
    PeerId,
    Publish,
    RecordsAdded,
    Send,
    StoreBlocks,
)
from craftnet.protocol.framing import decode_frame, encode_frame, encode_varint
from craftnet.protocol.messages import (
    MAX_PUSHED_BLOCK,
    MAX_PUSHED_TOTAL,
    Announce,
    to_wire,
)

FORWARDER = PeerId("hub-oaxaca")
AUTHOR = make_key(2)


def _receive(hub: Hub, frame: bytes, now: float = 1.0) -> list[Command]:
    return hub.engine.handle(GossipReceived(FORWARDER, frame), now)


def _stored(commands: list[Command]) -> list[Cid]:
    return [b.cid for c in commands if isinstance(c, StoreBlocks) for b in c.blocks]


def _long_record(n: int) -> Record:
    body = {"title": "Neo-Vernacular roof truss, full notes", "text": "ash " * 1500}
    return Record.create(AUTHOR, "technique", body, (), ts=(1_760_000_000_000 + n) << 16)


def test_a_pushed_record_is_stored_on_arrival_without_a_request() -> None:
    hub = Hub("hub-rotterdam", 1)
    record = make_record(AUTHOR, 1)
    ann = Announce.create(AUTHOR, record.ts, (record.cid,), blocks=(record.block,))

    commands = _receive(hub, encode_frame(ann))

    (store,) = [c for c in commands if isinstance(c, StoreBlocks)]
    assert [(b.cid, b.data, b.ts) for b in store.blocks] == [(record.cid, record.block, record.ts)]
    assert not [c for c in commands if isinstance(c, Send)]  # nothing to ask for
    assert record.cid not in hub.engine.exchange.wants
    assert hub.engine.scores.score(FORWARDER, 1.0) > 0  # a useful delivery is rewarded


def test_a_publishing_engine_pushes_small_records_and_only_names_large_ones() -> None:
    hub = Hub("hub-rotterdam", 1)
    small, large = make_record(AUTHOR, 1), _long_record(2)
    assert len(large.block) > MAX_PUSHED_BLOCK
    hub.add_record(small)
    hub.add_record(large)

    commands = hub.engine.handle(RecordsAdded(((small.ts, small.cid), (large.ts, large.cid))), 1.0)

    (publish,) = [c for c in commands if isinstance(c, Publish)]
    ann = decode_frame(publish.data)
    assert isinstance(ann, Announce)
    assert ann.records == (small.cid, large.cid)
    assert ann.blocks == (small.block,)
    ann.verify()


def test_pushing_can_be_turned_off_and_the_receiver_then_asks() -> None:
    quiet = Hub("hub-rotterdam", 1, EngineConfig(alliance=ALLIANCE, push_blocks=False))
    record = make_record(AUTHOR, 1)
    quiet.add_record(record)
    (publish,) = quiet.engine.handle(RecordsAdded(((record.ts, record.cid),)), 1.0)
    assert isinstance(publish, Publish)
    ann = decode_frame(publish.data)
    assert isinstance(ann, Announce) and ann.blocks == ()

    receiver = Hub("hub-lagos", 3)
    assert _stored(_receive(receiver, publish.data)) == []
    assert record.cid in receiver.engine.exchange.wants


def test_a_block_that_matches_no_announced_cid_costs_the_forwarder() -> None:
    hub = Hub("hub-rotterdam", 1)
    announced, smuggled = make_record(AUTHOR, 1), make_record(AUTHOR, 2)
    ann = Announce.create(AUTHOR, 1, (announced.cid,), blocks=(smuggled.block,))

    commands = _receive(hub, encode_frame(ann))

    assert _stored(commands) == []
    assert smuggled.cid not in hub.blocks.blocks
    assert hub.engine.scores.offence_counts(FORWARDER) == {"bad_block": 1}
    assert announced.cid in hub.engine.exchange.wants  # still wanted, fetched the usual way


def test_a_forged_record_pushed_inline_is_refused() -> None:
    hub = Hub("hub-rotterdam", 1)
    record = make_record(AUTHOR, 1)
    at = record.block.index(record.sig)
    forged = record.block[:at] + bytes([record.sig[0] ^ 1]) + record.block[at + 1 :]
    cid = Cid.of(forged, DAG_CBOR)
    # Mallory announces the forged bytes under their own (matching) CID.
    mallory = make_key(66)
    ann = Announce.create(mallory, 1, (cid,), blocks=(forged,))

    commands = _receive(hub, encode_frame(ann))

    assert _stored(commands) == []
    assert hub.engine.scores.offence_counts(FORWARDER) == {"invalid_signature": 1}


def test_a_non_canonical_inline_block_is_refused() -> None:
    hub = Hub("hub-rotterdam", 1)
    # Keys out of DAG-CBOR order: hashes fine to its CID, but is not canonical.
    data = cbor2.dumps({"title": "Raku glaze", "t": 1})
    cid = Cid.of(data, DAG_CBOR)
    ann = Announce.create(AUTHOR, 1, (cid,), blocks=(data,))

    commands = _receive(hub, encode_frame(ann))

    assert _stored(commands) == []
    assert hub.engine.scores.offence_counts(FORWARDER) == {"bad_block": 1}


def test_a_block_already_held_is_not_stored_again() -> None:
    hub = Hub("hub-rotterdam", 1)
    record = make_record(AUTHOR, 1)
    hub.add_record(record)
    ann = Announce.create(AUTHOR, 1, (record.cid,), blocks=(record.block,))
    assert _stored(_receive(hub, encode_frame(ann))) == []
    assert not hub.engine.scores.offence_counts(FORWARDER)


def _frame_with_blocks(blocks: object, cids: int = 1) -> bytes:
    records = tuple(Cid.of(bytes([n]), DAG_CBOR) for n in range(cids))
    wire = to_wire(Announce.create(AUTHOR, 1, records))
    wire["bs"] = blocks
    body = codec.encode(wire)
    return encode_varint(len(body)) + body


HOSTILE_BLOCKS = {
    "not a list": (b"raku", 1),
    "not bytes": (["raku"], 1),
    "more blocks than CIDs": ([b"a", b"b"], 1),
    "an empty block": ([b""], 1),
    "an oversized block": ([bytes(MAX_PUSHED_BLOCK + 1)], 1),
    "too many bytes in all": ([bytes([n]) * MAX_PUSHED_BLOCK for n in range(5)], 5),
    "the same block twice": ([b"same", b"same"], 2),
}


@pytest.mark.parametrize("case", HOSTILE_BLOCKS, ids=list(HOSTILE_BLOCKS))
def test_inline_blocks_beyond_the_limits_are_refused_and_cost_the_forwarder(case: str) -> None:
    blocks, cids = HOSTILE_BLOCKS[case]
    frame = _frame_with_blocks(blocks, cids)
    with pytest.raises(MalformedMessage):
        decode_frame(frame)
    hub = Hub("hub-rotterdam", 1)
    assert _stored(_receive(hub, frame)) == []
    assert hub.engine.scores.offence_counts(FORWARDER) == {"malformed_frame": 1}
    assert not hub.engine.exchange.wants


def test_an_announcement_beyond_the_limits_cannot_be_made() -> None:
    record = make_record(AUTHOR, 1)
    with pytest.raises(MalformedMessage, match=r"allowed 1\.\.4096"):
        Announce.create(AUTHOR, 1, (record.cid,), blocks=(bytes(MAX_PUSHED_BLOCK + 1),))
    assert MAX_PUSHED_TOTAL < 5 * MAX_PUSHED_BLOCK
