"""The events made once per delivered record are plain slotted classes that still behave
as the frozen dataclasses beside them do: equal by value, hashable, printable, matchable."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from craftnet.archive.cid import Cid
from craftnet.protocol.events import (
    BlocksStored,
    GossipReceived,
    GossipVerdict,
    PeerId,
    StoreBlocks,
    StoredBlock,
    Validation,
)

CID = Cid.of(b"Granada hub: tile glaze recipe")
OTHER = Cid.of(b"Asheville hub: CNC joinery")
PEER = PeerId("hub-granada")


def test_equal_by_value_and_hash_alike() -> None:
    a = StoredBlock(CID, b"glaze", 7)
    b = StoredBlock(CID, b"glaze", 7)
    assert a == b and hash(a) == hash(b)
    assert a != StoredBlock(OTHER, b"glaze", 7)
    assert a != StoredBlock(CID, b"glaze", 8)
    assert len({a, b, StoredBlock(CID, b"glaze")}) == 2


def test_the_parsed_record_takes_no_part_in_equality() -> None:
    # The writer's shortcut must not change what a block is.
    bare = StoredBlock(CID, b"glaze", 7)
    with_record = StoredBlock(CID, b"glaze", 7, record=None)
    assert bare == with_record


def test_different_classes_with_the_same_fields_differ() -> None:
    data = b"\x01frame"
    assert GossipReceived(PEER, data) != (PEER, data)
    assert GossipReceived(PEER, data).__eq__(StoreBlocks(())) is NotImplemented


def test_repr_names_the_fields() -> None:
    verdict = GossipVerdict(PEER, Validation.REJECT, "bad signature", "did:key:z6Mk")
    assert repr(verdict) == (
        "GossipVerdict(peer='hub-granada', validation=<Validation.REJECT: 'reject'>, "
        "reason='bad signature', signer='did:key:z6Mk')"
    )


def test_class_patterns_bind_fields_by_position() -> None:
    stored = StoreBlocks((StoredBlock(CID, b"glaze"),), PEER)
    match stored:
        case StoreBlocks(blocks, source):
            assert blocks[0].cid == CID and source == PEER
        case _:
            pytest.fail("StoreBlocks did not match its own pattern")
    match BlocksStored((CID,), ((5, CID),)):
        case BlocksStored(cids, records):
            assert cids == (CID,) and records == ((5, CID),)
        case _:
            pytest.fail("BlocksStored did not match its own pattern")


def test_defaults() -> None:
    assert BlocksStored((CID,)).records == ()
    assert StoreBlocks(()).source is None
    verdict = GossipVerdict(PEER, Validation.ACCEPT)
    assert (verdict.reason, verdict.signer) == ("", None)


def test_no_attribute_outside_the_fields() -> None:
    # Slotted: a typo cannot add a field that the engine would then silently ignore.
    event = GossipReceived(PEER, b"")
    with pytest.raises(AttributeError):
        event.payload = b"x"  # type: ignore[attr-defined]


@given(st.binary(max_size=64), st.binary(max_size=64), st.one_of(st.none(), st.integers()))
def test_equality_follows_the_fields(a: bytes, b: bytes, ts: int | None) -> None:
    left, right = StoredBlock(CID, a, ts), StoredBlock(CID, b, ts)
    assert (left == right) == (a == b)
    if left == right:
        assert hash(left) == hash(right)
