"""The signed record envelope (archive/records.py): create, parse, verify; tamper -> RecordError.

Named test_record_envelope.py, not test_records.py: pytest's rootdir import mode needs test
file names unique across tests/, and tests/cli/test_records.py has that one.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from craftnet.archive import codec
from craftnet.archive.cid import DAG_CBOR, RAW, Cid
from craftnet.archive.errors import RecordError
from craftnet.archive.hlc import HybridClock
from craftnet.archive.records import MAX_LINKS, MAX_RECORD_SIZE, Record, author_key
from craftnet.identity.keys import PrivateKey, did_to_raw

ARTISAN = PrivateKey.from_seed(b"rustic-futurism-hub-artisan-0001")
OTHER = PrivateKey.from_seed(b"neo-vernacular-design-studio-002")
FILE = Cid.of(b"stool-joint.step")
PARENT = Cid.of(b"parent design", DAG_CBOR)
# A did:key holding the point of order 1 (y = 1): it would "verify" many signatures.
SMALL_ORDER_DID = "did:key:z6MkeXATEjyXENzBXBxgC5EHk2JE5aqd7qMGGtDpLUH1e2Sj"


def technique_record(ts: int = 117_000_000_000_000_000) -> Record:
    return Record.create(
        ARTISAN,
        "technique",
        {"title": "Raku glaze firing", "steps": [{"text": "Bisque fire", "media": [FILE]}]},
        [FILE],
        ts=ts,
    )


def envelope(record: Record) -> dict[str, Any]:
    return {**record.unsigned(), "sig": record.sig}


def test_small_order_did_fixture_is_what_it_says() -> None:
    assert did_to_raw(SMALL_ORDER_DID) == bytes([1]) + bytes(31)


def test_create_parse_verify() -> None:
    record = technique_record()
    record.verify()
    again = Record.from_block(record.block, record.cid)
    assert again == record
    assert again.cid == record.cid == Cid.of(record.block, DAG_CBOR)
    again.verify()
    assert record.author == ARTISAN.did
    assert record.links == (FILE,)


def test_create_ticks_a_clock() -> None:
    clock = HybridClock(lambda: 1_800_000_000_000)
    first = Record.create(ARTISAN, "note", {}, clock=clock)
    second = Record.create(ARTISAN, "note", {}, clock=clock)
    assert second.ts > first.ts
    assert first.cid != second.cid


TAMPERING: dict[str, Any] = {
    "type": "design",
    "v": 2,
    "author": OTHER.did,
    "body": {"title": "Raku glaze firing (improved)", "steps": []},
    "links": [],
    "ts": 117_000_000_000_000_001,
    "sig": bytes(64),
}


@pytest.mark.parametrize("field", list(TAMPERING))
def test_tampering_with_any_field_breaks_the_signature(field: str) -> None:
    tampered = envelope(technique_record())
    tampered[field] = TAMPERING[field]
    record = Record.from_block(codec.encode(tampered))
    with pytest.raises(RecordError):
        record.verify()


def test_flipping_any_signature_bit_is_caught() -> None:
    record = technique_record()
    for bit in range(0, 512, 7):
        sig = bytearray(record.sig)
        sig[bit // 8] ^= 1 << (bit % 8)
        bad = Record.from_block(codec.encode({**record.unsigned(), "sig": bytes(sig)}))
        with pytest.raises(RecordError):
            bad.verify()


def test_block_must_match_its_cid() -> None:
    record = technique_record()
    with pytest.raises(RecordError, match="does not match"):
        Record.from_block(record.block, technique_record(ts=1).cid)
    with pytest.raises(RecordError, match="does not match"):
        Record.from_block(record.block, Cid(RAW, record.cid.digest))  # right hash, raw codec


@pytest.mark.parametrize("missing", ["type", "v", "author", "body", "links", "ts"])
def test_missing_envelope_key(missing: str) -> None:
    value = envelope(technique_record())
    del value[missing]
    with pytest.raises(RecordError, match="missing"):
        Record.from_block(codec.encode(value))


def test_missing_signature() -> None:
    value = technique_record().unsigned()
    with pytest.raises(RecordError, match="signature"):
        Record.from_block(codec.encode(value))


def test_extra_envelope_key() -> None:
    value = {**envelope(technique_record()), "hub": "Lisbon"}
    with pytest.raises(RecordError, match="unexpected"):
        Record.from_block(codec.encode(value))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("type", ""),
        ("type", "x" * 65),
        ("type", 7),
        ("v", 0),
        ("v", -1),
        ("v", 2**16),
        ("v", True),
        ("v", "1"),
        ("author", "did:web:hub.example"),
        ("author", "did:key:z6MkNOTBASE58lI0O"),
        ("author", SMALL_ORDER_DID),
        ("author", 42),
        ("body", ["not", "a", "map"]),
        ("links", [b"\x01" * 36]),
        ("links", "bafk"),
        ("links", [FILE] * (MAX_LINKS + 1)),
        ("ts", -1),
        ("ts", "now"),
        ("sig", "not bytes"),
    ],
)
def test_malformed_fields_are_refused(field: str, value: Any) -> None:
    bad = {**envelope(technique_record()), field: value}
    with pytest.raises(RecordError):
        Record.from_block(codec.encode(bad))


@pytest.mark.parametrize("length", [0, 63, 65, 128])
def test_signature_of_wrong_length(length: int) -> None:
    bad = {**envelope(technique_record()), "sig": b"\x01" * length}
    record = Record.from_block(codec.encode(bad))
    with pytest.raises(RecordError, match="64 bytes"):
        record.verify()


@pytest.mark.parametrize(
    "block",
    [b"", b"\x80", b"\xa0", codec.encode(["type", "v"]), b"\xff\xff", b"\x5b" + b"\xff" * 8],
)
def test_not_a_record(block: bytes) -> None:
    with pytest.raises(RecordError):
        Record.from_block(block)


def test_non_canonical_block_is_refused() -> None:
    record = technique_record()
    # Re-encode with the first map header widened (0xa7 -> 0xb8 0x07): same value, other bytes.
    assert record.block[0] == 0xA7
    with pytest.raises(RecordError, match="canonical"):
        Record.from_block(b"\xb8\x07" + record.block[1:])


def test_size_limits() -> None:
    with pytest.raises(RecordError, match="limit"):
        Record.create(ARTISAN, "technique", {"summary": "x" * MAX_RECORD_SIZE}, ts=1)
    with pytest.raises(RecordError, match="limit"):
        Record.from_block(b"\x00" * (MAX_RECORD_SIZE + 1))


def test_create_refuses_bad_envelopes() -> None:
    with pytest.raises(RecordError):
        Record.create(ARTISAN, "", {}, ts=1)
    with pytest.raises(RecordError):
        Record.create(ARTISAN, "note", {}, ts=-5)


bodies = st.dictionaries(
    st.text(min_size=1, max_size=10),
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(max_size=30),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
        max_leaves=10,
    ),
    max_size=6,
)


@given(
    st.text(min_size=1, max_size=20),
    bodies,
    st.lists(st.binary(max_size=8).map(Cid.of), max_size=4),
    st.integers(0, 2**64 - 1),
)
def test_any_valid_record_round_trips_and_verifies(
    rtype: str, body: dict[str, Any], links: list[Cid], ts: int
) -> None:
    record = Record.create(ARTISAN, rtype, body, links, ts=ts)
    parsed = Record.from_block(record.block, record.cid)
    parsed.verify()
    assert parsed == record
    assert codec.encode(parsed.unsigned()) == codec.encode(record.unsigned())
    assert parsed.signed_bytes() == codec.encode(record.unsigned())


@given(st.integers(1, 2**16 - 1), st.integers(0, 2**64 - 1), st.binary(max_size=80))
def test_signed_bytes_are_the_canonical_unsigned_envelope(v: int, ts: int, sig: bytes) -> None:
    # signed_bytes() cuts the sig entry out of the block; it must equal a fresh encoding
    # for every v, ts and signature length (odd lengths take the slow path).
    record = Record.create(ARTISAN, "technique", {"title": "Raku"}, [FILE], ts=ts, v=v)
    forged = Record.from_block(codec.encode({**record.unsigned(), "sig": sig}))
    assert record.block == codec.encode({**record.unsigned(), "sig": record.sig})
    assert record.signed_bytes() == codec.encode(record.unsigned())
    assert forged.signed_bytes() == codec.encode(record.unsigned())


@given(st.binary(max_size=200))
def test_random_blocks_raise_only_record_error(block: bytes) -> None:
    with contextlib.suppress(RecordError):
        Record.from_block(block)


def _block_with_author(author: str) -> bytes:
    """A record block whose author field is ``author``, signed by nobody."""
    record = technique_record()
    return codec.encode({**envelope(record), "author": author})


def test_a_record_with_a_400000_character_author_is_refused_before_base58(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A 262 KB bundle of such records cost 88 s of CPU when the did was decoded first.
    import base58

    def refuse(*_: object) -> bytes:
        raise AssertionError("base58 decoding was reached")

    monkeypatch.setattr(base58, "b58decode", refuse)
    block = _block_with_author("did:key:z" + "6Mk" * 83_000)  # 249,009 characters
    assert len(block) < MAX_RECORD_SIZE
    with pytest.raises(RecordError, match="record author: an Ed25519 did:key is 56 characters"):
        Record.from_block(block)


def test_author_keys_are_parsed_once_per_author() -> None:
    author_key.cache_clear()
    record = technique_record()
    Record.from_block(record.block).verify()
    before = author_key.cache_info()
    for _ in range(5):
        Record.from_block(record.block).verify()
    after = author_key.cache_info()
    assert after.misses == before.misses
    assert after.hits == before.hits + 10  # the envelope check and verify, five times
