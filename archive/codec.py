"""Deterministic DAG-CBOR: one value, one encoding.

Values are ``None``, ``bool``, ``int`` (within the 64-bit CBOR range), ``str``,
``bytes``, ``list``/``tuple``, ``dict`` with ``str`` keys, and :class:`Cid` (written as
tag 42). Floats are refused: craftnet's schemas hold none, and cbor2's canonical mode
would shorten them where DAG-CBOR demands 64-bit, so refusing them keeps every encoding
one that any DAG-CBOR implementation produces too.

Decoding is strict: a fresh decoder per message, a size cap, a depth cap, no indefinite
lengths, no duplicate keys, no tag but 42, and the bytes must be exactly what
:func:`encode` gives for the decoded value (which rejects non-minimal integers,
unsorted keys, trailing bytes, and everything else the encoder cannot produce).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import cbor2

from craftnet.archive.cid import Cid
from craftnet.archive.errors import CidError, CodecError

MAX_BLOCK_SIZE: Final = 2 * 1024 * 1024
MAX_DEPTH: Final = 64
_INT_MIN: Final = -(2**64)
_INT_MAX: Final = 2**64 - 1
_LINK_TAG: Final = 42

Value = Any  # a DAG-CBOR value; see the module docstring for what it may hold


def _to_cbor(value: Value, depth: int) -> Any:
    """Check ``value`` and turn links into tag 42, so cbor2 can write the rest."""
    if depth > MAX_DEPTH:
        raise CodecError(f"value nests deeper than {MAX_DEPTH} levels")
    kind = type(value)
    if kind is str or kind is bytes or kind is bool or value is None:
        return value
    if kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise CodecError(f"integer {value} is outside the 64-bit range DAG-CBOR allows")
        return value
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise CodecError(f"map keys must be strings, got {type(key).__name__}")
            out[key] = _to_cbor(item, depth + 1)
        return out
    if kind is list or kind is tuple:
        return [_to_cbor(item, depth + 1) for item in value]
    if kind is Cid:
        return cbor2.CBORTag(_LINK_TAG, b"\x00" + value.bytes)
    if kind is bytearray or kind is memoryview:
        return bytes(value)
    if kind is float:
        raise CodecError("floats are not allowed in craftnet data; use integers or strings")
    raise CodecError(f"cannot encode a {kind.__name__} as DAG-CBOR")


def encode(value: Value) -> bytes:
    """Encode ``value`` as canonical DAG-CBOR."""
    return cbor2.dumps(_to_cbor(value, 0), canonical=True)


class UnsupportedLink(CodecError):
    """A link (tag 42) is well-formed CBOR but names a CID craftnet does not support.

    Kept apart from other codec errors so that a caller can say "this hash is not
    supported" (a sha2-256 IPFS export) instead of "not canonical DAG-CBOR".
    """


def _tag_hook(*args: Any) -> Any:
    # cbor2 5.x calls hook(decoder, tag); 6.x calls hook(tag, immutable).
    tag = args[0] if type(args[0]) is cbor2.CBORTag else args[1]
    if tag.tag != _LINK_TAG:
        raise CodecError(f"CBOR tag {tag.tag} is not allowed; only tag 42 (link)")
    raw = tag.value
    if type(raw) is not bytes or not raw.startswith(b"\x00"):
        raise CodecError("a link (tag 42) must hold a byte string starting with 0x00")
    try:
        return Cid.from_bytes(raw[1:])
    except CidError as exc:
        raise UnsupportedLink(f"bad link: {exc}") from exc


def _check_decoded(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise CodecError(f"value nests deeper than {MAX_DEPTH} levels")
    kind = type(value)
    if kind is dict:
        previous = (-1, b"")
        for key, item in value.items():
            if type(key) is not str:
                raise CodecError(f"map keys must be strings, got {type(key).__name__}")
            # DAG-CBOR order: shorter keys first, then bytewise. The decoded dict keeps
            # the input's order, so checking it here lets the re-encoding skip sorting.
            raw = key.encode()
            this = (len(raw), raw)
            if this <= previous:
                raise CodecError("not canonical DAG-CBOR: map keys out of order or repeated")
            previous = this
            _check_decoded(item, depth + 1)
    elif kind is list:
        for item in value:
            _check_decoded(item, depth + 1)
    elif kind is float:
        raise CodecError("floats are not allowed in craftnet data")
    elif kind is int:
        # cbor2 turns bignum tags (2, 3) into ints without calling the tag hook.
        if not _INT_MIN <= value <= _INT_MAX:
            raise CodecError(f"integer {value} is outside the 64-bit range DAG-CBOR allows")
    elif not (kind in (str, bytes, bool, Cid) or value is None):
        raise CodecError(f"CBOR item of type {kind.__name__} is not allowed in DAG-CBOR")


_LINK_HEADER: Final = b"\xd8\x2a\x58\x25\x00"  # tag 42, a 37-byte string, the 0x00 prefix


def _encode_link(encoder: Any, value: Any) -> None:
    if type(value) is not Cid:
        raise CodecError(f"cannot encode a {type(value).__name__} as DAG-CBOR")
    encoder.write(_LINK_HEADER + value.bytes)


def _encode_checked(value: Any) -> bytes:
    """Encode a value :func:`_check_decoded` accepted, in its own map order.

    Such a value holds only the types cbor2 writes as DAG-CBOR by itself, plus links,
    and its maps are already in canonical order, so the encoder's C fast path can run
    over it directly, without copying or sorting.
    """
    return cbor2.dumps(value, default=_encode_link)


def encode_checked(value: Value) -> bytes:
    """:func:`encode` for a value the caller has already checked and put in order.

    The value must hold only ``str``-keyed dicts whose keys are already in DAG-CBOR order
    (shorter first, then bytewise), lists, ``str``, ``bytes``, ``bool``, ``None``, ints
    within the 64-bit range and :class:`Cid` (as the protocol's message checks ensure);
    it then gives exactly :func:`encode`'s bytes, without the copy that :func:`encode`
    makes to check the value and wrap its links, and without sorting.
    """
    return _encode_checked(value)


def decode(
    data: bytes | bytearray | memoryview, *, max_size: int = MAX_BLOCK_SIZE
) -> Value:
    """Decode canonical DAG-CBOR, rejecting anything :func:`encode` would not produce."""
    data = bytes(data)
    if len(data) > max_size:
        raise CodecError(f"{len(data)} bytes is over the {max_size}-byte limit for one message")
    if not data:
        raise CodecError("empty input is not a CBOR value")
    try:
        value = cbor2.loads(
            data,
            tag_hook=_tag_hook,
            max_depth=MAX_DEPTH + 1,
            allow_indefinite=False,
            allow_duplicate_keys=False,
        )
    except CodecError:
        raise
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        if isinstance(exc.__cause__, CodecError):
            # cbor2 wraps what the tag hook raised; keep its type (UnsupportedLink).
            raise exc.__cause__ from None
        detail = f"{exc}: {exc.__cause__}" if exc.__cause__ else str(exc)
        raise CodecError(f"not valid CBOR: {detail}") from exc
    _check_decoded(value, 0)
    if _encode_checked(value) != data:
        raise CodecError("not canonical DAG-CBOR (key order, integer size or trailing bytes)")
    return value


def iter_links(value: Any) -> Iterator[Cid]:
    """Yield every CID (tag 42) inside a decoded DAG-CBOR value, in document order."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Cid):
            yield item
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
