"""Frames and messages: round trips, arbitrary splitting, and hostile bytes."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from protocol_helpers import ALLIANCE, make_key

from craftnet.archive import codec
from craftnet.archive.cid import Cid
from craftnet.identity.errors import BadSignature
from craftnet.protocol.errors import (
    FrameError,
    FrameTooLarge,
    LocalProtocolError,
    MalformedMessage,
    RemoteProtocolError,
    TruncatedFrame,
    UnsupportedVersion,
)
from craftnet.protocol.framing import (
    FrameDecoder,
    decode_body,
    decode_frame,
    decode_varint,
    encode_frame,
    encode_frame_parts,
    encode_varint,
)
from craftnet.protocol.messages import (
    MESSAGE_TYPES,
    RANGE_FINGERPRINT,
    RANGE_SKIP,
    Announce,
    Block,
    Bye,
    DontHave,
    End,
    Have,
    Hello,
    Message,
    Recon,
    ReconRange,
    Want,
    from_wire,
    to_wire,
)

CID = Cid.of(b"Adopt-a-Workshop lathe manual")
KEY = make_key(7)

EXAMPLES: list[Message] = [
    Hello.create(KEY, (1,), ALLIANCE, "12D3KooWHub"),
    Announce.create(KEY, 42, (CID,), (Cid.of(b"head"),)),
    Announce.create(KEY, 43, (CID,), (), (b"Adopt-a-Workshop lathe manual",)),
    Want(1, (CID,), False),
    Want(2, (CID, CID), True),
    Have(2, (CID,)),
    DontHave(2, (CID,)),
    Block(1, CID, b"Adopt-a-Workshop lathe manual"),
    End(1),
    Recon(
        9,
        True,
        0,
        bytes(16),
        (ReconRange(b"\x01", RANGE_FINGERPRINT, bytes(16)), ReconRange(None, RANGE_SKIP)),
        (bytes(44),),
        True,
    ),
]


def _stream() -> bytes:
    return b"".join(encode_frame(m) for m in EXAMPLES)


def _body(wire: dict[str, object]) -> bytes:
    return codec.encode(wire)


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: m.KIND)
def test_every_message_round_trips(message: Message) -> None:
    decoder = FrameDecoder()
    decoder.receive_data(encode_frame(message))
    assert decoder.next_message() == message
    assert decoder.next_message() is None
    decoder.receive_eof()


def test_each_type_tag_builds_the_message_of_that_kind() -> None:
    # KIND is a property of each message and MESSAGE_TYPES a table of its own (both for
    # mypyc, see messages.py): they must name the same tags.
    examples = [*EXAMPLES, Bye("not a member")]
    assert {m.KIND for m in examples} == set(MESSAGE_TYPES)
    for message in examples:
        assert type(from_wire(to_wire(message))) is type(message)


@given(st.lists(st.integers(min_value=0, max_value=len(_stream())), max_size=30))
def test_any_split_of_a_stream_decodes_the_same(cuts: list[int]) -> None:
    stream = _stream()
    points = sorted(set(cuts))
    decoder = FrameDecoder()
    got: list[Message] = []
    for start, stop in zip([0, *points], [*points, len(stream)], strict=True):
        decoder.receive_data(stream[start:stop])
        while (message := decoder.next_message()) is not None:
            got.append(message)
    decoder.receive_eof()
    assert got == EXAMPLES


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_varints_round_trip(value: int) -> None:
    data = encode_varint(value)
    assert decode_varint(data) == (value, len(data))
    assert decode_varint(data[:-1]) is None


def test_oversized_length_is_refused_before_the_body_arrives() -> None:
    decoder = FrameDecoder(max_frame_size=1024)
    decoder.receive_data(encode_varint(1025))
    with pytest.raises(FrameTooLarge, match="limit is 1024"):
        decoder.next_message()
    # The stream cannot be resynchronised: it stays broken.
    decoder.receive_data(encode_frame(End(1)))
    with pytest.raises(FrameTooLarge):
        decoder.next_message()
    assert decoder.broken


def test_a_too_large_message_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError, match="frame limit"):
        encode_frame(Block(1, CID, bytes(2000)), max_frame_size=1000)


def test_truncated_frame_at_end_of_stream() -> None:
    frame = encode_frame(Block(1, CID, b"x" * 100))
    decoder = FrameDecoder()
    decoder.receive_data(frame[:-1])
    assert decoder.next_message() is None
    with pytest.raises(TruncatedFrame, match="stream ended inside a frame"):
        decoder.receive_eof()


def test_non_minimal_or_endless_varint_is_refused() -> None:
    for prefix in (b"\x81\x00", b"\xff" * 10):
        decoder = FrameDecoder()
        decoder.receive_data(prefix + b"\x00" * 4)
        with pytest.raises(FrameError):
            decoder.next_message()


def test_empty_frame_is_refused() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(b"\x00")
    with pytest.raises(FrameError, match="empty"):
        decoder.next_message()


def test_garbage_body_is_skipped_with_an_error() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(encode_varint(4) + b"\xff\x00\xfe\x01" + encode_frame(End(3)))
    with pytest.raises(FrameError):
        decoder.next_message()
    assert not decoder.broken
    assert decoder.next_message() == End(3)


@given(st.binary(max_size=200))
def test_random_bytes_never_escape_the_error_hierarchy(data: bytes) -> None:
    decoder = FrameDecoder(max_frame_size=4096)
    decoder.receive_data(data)
    for _ in range(50):
        try:
            if decoder.next_message() is None:
                break
        except RemoteProtocolError:
            if decoder.broken:
                break


def _one_frame(data: bytes) -> Message | type[RemoteProtocolError]:
    """What a stream decoder makes of ``data`` as a gossip message: one whole frame."""
    decoder = FrameDecoder(max_frame_size=4096)
    decoder.receive_data(data)
    try:
        message = decoder.next_message()
    except RemoteProtocolError:
        return RemoteProtocolError
    if message is None or decoder.buffered:
        return RemoteProtocolError
    return message


@given(
    st.one_of(
        st.binary(max_size=200),
        st.tuples(st.sampled_from(EXAMPLES), st.integers(-3, 3), st.binary(max_size=3)).map(
            lambda t: (encode_frame(t[0]) + t[2])[: len(encode_frame(t[0])) + t[1]]
        ),
    )
)
def test_decode_frame_agrees_with_the_stream_decoder(data: bytes) -> None:
    try:
        got: Message | type[RemoteProtocolError] = decode_frame(data, max_frame_size=4096)
    except RemoteProtocolError:
        got = RemoteProtocolError
    assert got == _one_frame(data)


def test_decode_frame_wants_exactly_one_whole_frame() -> None:
    frame = encode_frame(End(5))
    assert decode_frame(frame) == End(5)
    with pytest.raises(TruncatedFrame, match="cut"):
        decode_frame(frame[:-1])
    with pytest.raises(FrameError, match="exactly one whole frame"):
        decode_frame(frame + frame)
    with pytest.raises(FrameTooLarge, match="limit is 4"):
        decode_frame(frame, max_frame_size=4)
    with pytest.raises(FrameError, match="empty frame"):
        decode_frame(b"\x00")


def test_non_canonical_cbor_is_refused() -> None:
    wire = to_wire(End(5))
    unsorted = cbor2.dumps(dict(reversed(list(wire.items()))))
    assert unsorted != codec.encode(wire)
    with pytest.raises(FrameError, match="canonical"):
        decode_body(unsorted)
    long_int = codec.encode(wire).replace(b"\x63req\x05", b"\x63req\x18\x05")
    with pytest.raises(FrameError):
        decode_body(long_int)


def test_unknown_version_and_type() -> None:
    with pytest.raises(UnsupportedVersion, match="upgrade"):
        decode_body(_body({**to_wire(End(1)), "v": 1}))  # the hello had no proof then
    with pytest.raises(MalformedMessage, match="unknown message type"):
        decode_body(_body({**to_wire(End(1)), "t": "gimme"}))
    with pytest.raises(MalformedMessage, match="version"):
        decode_body(_body({"t": "end", "req": 1}))
    with pytest.raises(MalformedMessage, match="map"):
        decode_body(_body([1, "end"]))


@pytest.mark.parametrize(
    ("message", "field", "bad"),
    [
        (End(1), "req", True),
        (End(1), "req", "1"),
        (End(1), "req", -1),
        (Want(1, (CID,)), "ho", 1),
        (Want(1, (CID,)), "cids", [CID.bytes]),
        (Want(1, (CID,)), "cids", []),
        (Want(1, (CID,)), "cids", [CID] * 1025),
        (Want(1, (CID,)), "cids", [CID] * 33),
        (Block(1, CID, b"x"), "data", "x"),
        (Block(1, CID, b"x"), "cid", str(CID)),
        (EXAMPLES[0], "vs", []),
        (EXAMPLES[0], "vs", [True]),
        (EXAMPLES[0], "al", ""),
        (EXAMPLES[1], "did", "did:key:zNotAKey"),
        (EXAMPLES[1], "sig", b"short"),
        (EXAMPLES[-1], "rg", [[None, 9, b""]]),
        (EXAMPLES[-1], "rg", [[None, 1]]),
        (EXAMPLES[-1], "rg", [["up", 1, b""]]),
        (EXAMPLES[-1], "gf", [b"short"]),
        (EXAMPLES[-1], "last", 1),
    ],
)
def test_wrong_field_types_are_malformed(message: Message, field: str, bad: object) -> None:
    wire = to_wire(message)
    wire[field] = bad
    with pytest.raises(MalformedMessage):
        decode_body(_body(wire))


def test_missing_and_extra_fields_are_malformed() -> None:
    wire = to_wire(Want(1, (CID,)))
    del wire["ho"]
    with pytest.raises(MalformedMessage, match="expected"):
        decode_body(_body(wire))
    with pytest.raises(MalformedMessage, match="expected"):
        decode_body(_body({**to_wire(End(1)), "extra": 1}))


def test_hello_signature_binds_the_did_to_the_peer_id() -> None:
    hello = Hello.create(KEY, (1,), ALLIANCE, "12D3KooWHub")
    hello.verify("12D3KooWHub")
    with pytest.raises(BadSignature):
        hello.verify("12D3KooWOther")
    with pytest.raises(BadSignature):
        Hello(hello.versions, "Maker's Fair", hello.did, hello.sig).verify("12D3KooWHub")


def test_announcement_signature_covers_every_field() -> None:
    announce = Announce.create(KEY, 42, (CID,))
    announce.verify()
    for changed in (
        Announce(announce.did, 43, announce.records, announce.heads, announce.sig),
        Announce(announce.did, 42, (), (CID,), announce.sig),
        Announce(make_key(8).did, 42, announce.records, announce.heads, announce.sig),
    ):
        with pytest.raises(BadSignature):
            changed.verify()
    # Inline blocks are not signed: each is vouched for by its hash among the signed CIDs.
    Announce(
        *[getattr(announce, f) for f in ("did", "ts", "records", "heads", "sig")], (b"x",)
    ).verify()


# ---------------------------------------------------------------- block frames' short path
# Block frames are written as a head plus the data itself and read without the CBOR
# codec (framing.py). Both must give exactly what the codec gives, and any body that is
# not exactly the canonical encoding of a valid block must meet the strict decoder.

BLOCK_SIZES = [0, 1, 23, 24, 255, 256, 65_535, 65_536, 1024 * 1024, codec.MAX_BLOCK_SIZE]
REQS = [0, 1, 23, 24, 255, 256, 65_535, 65_536, 2**32 - 1, 2**32, 2**63 - 1]


def _strict(body: bytes) -> Message | tuple[type[Exception], str]:
    """What the strict decoder (codec and message checks) makes of ``body``."""
    try:
        return decode_body(body)
    except RemoteProtocolError as exc:
        return type(exc), str(exc)


def _streamed(body: bytes) -> Message | tuple[type[Exception], str]:
    """What a stream decoder makes of the frame holding ``body``."""
    decoder = FrameDecoder()
    decoder.receive_data(encode_varint(len(body)) + body)
    try:
        message = decoder.next_message()
    except RemoteProtocolError as exc:
        return type(exc), str(exc)
    assert message is not None and not decoder.buffered
    return message


@pytest.mark.parametrize("size", BLOCK_SIZES)
def test_block_frames_in_parts_are_the_codecs_bytes(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    for req in REQS:
        block = Block(req, Cid.of(data), data)
        parts = encode_frame_parts(block)
        assert parts[-1] is data  # handed on as it is, not copied
        frame = b"".join(parts)
        assert frame == encode_frame(block)
        decoder = FrameDecoder()
        decoder.receive_data(frame)
        assert decoder.next_message() == block
        assert decoder.last_frame_size == len(frame) and not decoder.buffered


def test_other_messages_are_one_part() -> None:
    for message in EXAMPLES:
        if not isinstance(message, Block):
            assert encode_frame_parts(message) == (encode_frame(message),)


def test_a_too_large_block_is_a_local_error_in_parts_too() -> None:
    data = bytes(5000)
    with pytest.raises(LocalProtocolError, match="frame limit is 4096"):
        encode_frame_parts(Block(1, Cid.of(data), data), max_frame_size=4096)


def _block_body(req: int = 300, data: bytes = b"Adopt-a-Workshop lathe manual") -> bytes:
    return _body(to_wire(Block(req, Cid.of(data), data)))


def test_every_byte_of_a_block_head_changed_reads_as_the_strict_decoder_reads_it() -> None:
    body = _block_body()
    head = len(body) - len(b"Adopt-a-Workshop lathe manual")
    for at in range(head + 1):
        for value in {0x00, 0x17, 0x18, 0x19, 0x1B, 0x20, 0x40, 0x58, 0x5F, 0x60, 0xA5, 0xD8,
                      0xFF, body[at] ^ 0x01, body[at] ^ 0x80} if at < len(body) else {0}:
            changed = body[:at] + bytes([value]) + body[at + 1 :]
            assert _streamed(changed) == _strict(changed), (at, value)


@given(st.integers(0, 120), st.binary(min_size=1, max_size=4), st.integers(0, 3))
def test_block_bodies_cut_grown_or_spliced_read_as_the_strict_decoder_reads_them(
    at: int, insert: bytes, drop: int
) -> None:
    body = _block_body()
    at = min(at, len(body))
    changed = body[:at] + insert + body[at + drop :]
    assert _streamed(changed) == _strict(changed)


def test_non_minimal_heads_in_a_block_are_refused() -> None:
    data = b"lathe manual"  # under 24 bytes: its length is in the head's first byte
    body = _block_body(req=5, data=data)
    tail = b"\x64data" + bytes([0x40 + len(data)]) + data
    prefix = body[: len(body) - len(tail) - 1]  # up to the req value (one byte: 5)
    assert body == prefix + b"\x05" + tail
    for req in (b"\x18\x05", b"\x19\x00\x05", b"\x1a\x00\x00\x00\x05"):
        bad = prefix + req + tail
        assert isinstance(_streamed(bad), tuple) and _streamed(bad) == _strict(bad)
    bad = prefix + b"\x05\x64data\x58" + bytes([len(data)]) + data  # a 2-byte length < 24
    assert isinstance(_streamed(bad), tuple) and _streamed(bad) == _strict(bad)
    negative = prefix + b"\x20" + tail  # req -1
    assert _streamed(negative) == _strict(negative)
    assert isinstance(_strict(negative), tuple)


def test_a_block_over_the_block_limit_is_refused_by_the_message_checks() -> None:
    data = bytes(codec.MAX_BLOCK_SIZE + 1)
    body = _body(to_wire(Block(1, Cid.of(data), data)))
    assert _streamed(body) == _strict(body)
    assert _strict(body)[0] is MalformedMessage  # type: ignore[index]


def test_a_decoder_knows_when_the_frame_it_holds_is_incomplete() -> None:
    data = bytes(100_000)
    frame = encode_frame(Block(4, Cid.of(data), data)) + encode_frame(End(4))
    first = len(encode_frame(Block(4, Cid.of(data), data)))
    decoder = FrameDecoder()
    assert not decoder.waiting and decoder.missing == 0  # nothing known yet
    decoder.receive_data(frame[:1])
    assert decoder.next_message() is None and not decoder.waiting  # the length is cut
    assert decoder.missing == 0
    decoder.receive_data(frame[1:50_000])
    assert decoder.next_message() is None and decoder.waiting
    assert decoder.missing == first - 50_000  # what a reader may wait for
    decoder.receive_data(frame[50_000:-1])
    assert not decoder.waiting and decoder.missing == 0
    assert decoder.next_message() == Block(4, Cid.of(data), data)
    assert decoder.next_message() is None and decoder.waiting  # End is one byte short
    assert decoder.missing == 1
    decoder.receive_data(frame[-1:])
    assert decoder.next_message() == End(4) and not decoder.waiting and not decoder.buffered
    assert decoder.missing == 0


def test_a_broken_decoder_waits_for_nothing() -> None:
    decoder = FrameDecoder(max_frame_size=1024)
    decoder.receive_data(b"\xff\xff\xff\xff\x0f")  # a length far over the limit
    with pytest.raises(FrameError):
        decoder.next_message()
    assert decoder.broken and decoder.missing == 0
