"""Fuzz targets: each takes arbitrary bytes and feeds one decoder of hostile input.

A target returns normally or raises :class:`CraftnetError` (the input was refused, as
it should be); any other exception is a crash. Where a decoder accepts an input, the
target also checks what acceptance promises (a CID prints back as its text, a record
re-encodes to its block, a frame re-encodes to its bytes).

The same functions run in three places: ``tests/fuzz/test_fuzz_corpus.py`` replays the
committed seed corpus in ``make test``; ``tests/fuzz/run.py`` drives them with atheris
(coverage-guided, ``make fuzz``); and a crash found there is kept as a file under
``tests/fuzz/crashes/TARGET/`` so that the corpus run replays it forever after.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import Any, Final

from craftnet.archive import car, codec, schemas, varint
from craftnet.archive.bundle import check_block
from craftnet.archive.cid import Cid, why_unsupported
from craftnet.archive.crdt.ops import GENESIS_TYPE, OP_TYPE, parse_op
from craftnet.archive.records import Record
from craftnet.errors import CraftnetError
from craftnet.identity.keys import PrivateKey, PublicKey, did_to_raw
from craftnet.protocol.framing import FrameDecoder, decode_frame, encode_frame

Target = Callable[[bytes], None]
# A fixed key signs bodies the fuzzer makes, so that the schema and operation parsers
# behind the signature check are reached too.
KEY: Final = PrivateKey.from_seed(b"fuzzing-the-digital-craft-archiv")
BODY_TYPES: Final = ("technique", "design", "attestation", "collection", "membership",
                     "alliance", "key-succession", "revocation", "opaque-type")


def record(data: bytes) -> None:
    """A record block from a peer or a bundle; or (first byte odd) a body signed here."""
    if not data:
        return
    if data[0] & 1 == 0:
        parsed = Record.from_block(data[1:])
        assert parsed.block == data[1:]
        assert codec.encode({**parsed.unsigned(), "sig": parsed.sig}) == parsed.block
        parsed.verify()
        schemas.validate_record(parsed)
        return
    body = codec.decode(data[2:]) if len(data) > 2 else {}
    if not isinstance(body, dict):
        return
    rtype = BODY_TYPES[data[1] % len(BODY_TYPES)] if len(data) > 1 else "technique"
    signed = Record.create(KEY, rtype, body, list(codec.iter_links(body))[:16])
    schemas.validate_record(signed)


def car_reader(data: bytes) -> None:
    """A CAR bundle from a USB stick: header, sections and each block's content checks."""
    reader = car.CarReader(io.BytesIO(data))
    assert all(type(root) is Cid for root in reader.roots)
    for section in reader:
        assert section.cid.verify(section.data)
        check_block(section)


def frame(data: bytes) -> None:
    """A protocol stream: frames fed in pieces to the decoder, then one frame whole."""
    decoder = FrameDecoder()
    step = 1 + (data[0] % 61 if data else 0)
    for start in range(0, len(data), step):
        decoder.receive_data(data[start : start + step])
        try:
            while (message := decoder.next_message()) is not None:
                assert decode_frame(encode_frame(message)) == message
        except CraftnetError:
            if decoder.broken:
                break
    with contextlib.suppress(CraftnetError):
        decoder.receive_eof()
    decode_frame(data)


def identifiers(data: bytes) -> None:
    """did:key and CID text, binary CIDs and varints, as found in records and messages."""
    text = data.decode("utf-8", errors="replace")
    for attempt in (_did, _cid_text, _cid_bytes, _varint):
        with contextlib.suppress(CraftnetError):
            attempt(data, text)


def _did(_: bytes, text: str) -> None:
    raw = did_to_raw(text)
    assert PublicKey(raw).did == text


def _cid_text(_: bytes, text: str) -> None:
    assert str(Cid.parse(text)) == text


def _cid_bytes(data: bytes, _: str) -> None:
    try:
        cid = Cid.from_bytes(data)
    except CraftnetError:
        assert why_unsupported(data)
        raise
    assert cid.bytes == data


def _varint(data: bytes, _: str) -> None:
    got = varint.decode_varint(data)
    if got is not None:
        assert varint.encode_varint(got[0]) == data[: got[1]]


def crdt_op(data: bytes) -> None:
    """A document operation: a DAG-CBOR body signed here, then parsed as an op or genesis."""
    if not data:
        return
    value: Any = codec.decode(data[1:]) if len(data) > 1 else {}
    if not isinstance(value, dict):
        return
    rtype = GENESIS_TYPE if data[0] & 1 else OP_TYPE
    signed = Record.create(KEY, rtype, value, list(codec.iter_links(value))[:16])
    parse_op(signed)


TARGETS: Final[dict[str, Target]] = {
    "record": record,
    "car": car_reader,
    "frame": frame,
    "identifiers": identifiers,
    "crdt_op": crdt_op,
}


def run_one(name: str, data: bytes) -> None:
    """Run target ``name`` on ``data``; a :class:`CraftnetError` is a refusal, not a crash."""
    with contextlib.suppress(CraftnetError):
        TARGETS[name](data)
