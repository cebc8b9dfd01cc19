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


# Canonical key order of the key tuples met so far (records, file nodes and frames reuse
# a few hundred shapes). Bounded: hostile maps with ever new keys only miss the cache.
_ORDER_CACHE: dict[tuple[Any, ...], tuple[str, ...]] = {}
_ORDER_CACHE_MAX: Final = 4096
_ORDER_CACHE_KEYS: Final = 32  # maps with more keys are sorted each time, not remembered


def _canonical_key(key: str) -> tuple[int, bytes]:
    try:
        raw = key.encode()
    except UnicodeEncodeError as exc:
        raise CodecError(f"map key is not valid Unicode text: {exc}") from exc
    return len(raw), raw


def _key_order(keys: tuple[Any, ...]) -> tuple[str, ...]:
    """``keys`` (str) in DAG-CBOR map order: shorter UTF-8 first, then bytewise."""
    order = _ORDER_CACHE.get(keys)
    if order is None:
        for key in keys:
            if type(key) is not str:
                raise CodecError(f"map keys must be strings, got {type(key).__name__}")
        order = tuple(sorted(keys, key=_canonical_key))
        if len(keys) <= _ORDER_CACHE_KEYS and len(_ORDER_CACHE) < _ORDER_CACHE_MAX:
            _ORDER_CACHE[keys] = order
    return order


def _to_cbor(value: Value, depth: int) -> Any:
    """Check ``value`` and copy it with every map in canonical key order.

    cbor2's canonical mode sorts each map by encoding its keys one by one, which cost
    more than the rest of the encoding; putting maps in order here (with the order of
    each key set remembered) lets the plain encoder write canonical bytes directly.
    """
    if depth > MAX_DEPTH:
        raise CodecError(f"value nests deeper than {MAX_DEPTH} levels")
    kind = type(value)
    if kind is str or kind is bytes or kind is bool or value is None or kind is Cid:
        return value
    if kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise CodecError(f"integer {value} is outside the 64-bit range DAG-CBOR allows")
        return value
    if kind is dict:
        depth += 1
        return {key: _to_cbor(value[key], depth) for key in _key_order(tuple(value))}
    if kind is list or kind is tuple:
        depth += 1
        return [_to_cbor(item, depth) for item in value]
    if kind is bytearray or kind is memoryview:
        return bytes(value)
    if kind is float:
        raise CodecError("floats are not allowed in craftnet data; use integers or strings")
    raise CodecError(f"cannot encode a {kind.__name__} as DAG-CBOR")


def encode(value: Value) -> bytes:
    """Encode ``value`` as canonical DAG-CBOR."""
    return _encode_checked(_to_cbor(value, 0))


_new_cid = Cid.from_link


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
    if type(raw) is not bytes or raw[:1] != b"\x00":
        raise CodecError("a link (tag 42) must hold a byte string starting with 0x00")
    cid = _new_cid(raw)
    if cid is None:
        try:
            Cid.from_bytes(raw[1:])
        except CidError as exc:
            raise UnsupportedLink(f"bad link: {exc}") from exc
    return cid


_LEAVES: Final = frozenset({str, bytes, bool, Cid, type(None)})


def _check_decoded(value: Any, depth: int) -> None:
    """Refuse what DAG-CBOR does not allow in a value cbor2 decoded (see :func:`decode`)."""
    if depth > MAX_DEPTH:
        raise CodecError(f"value nests deeper than {MAX_DEPTH} levels")
    kind = type(value)
    if kind is dict:
        # DAG-CBOR order: shorter keys first, then bytewise. The decoded dict keeps the
        # input's order, so checking it here lets the re-encoding skip sorting.
        keys = tuple(value)
        if (_ORDER_CACHE.get(keys) or _key_order(keys)) != keys:
            raise CodecError("not canonical DAG-CBOR: map keys out of order or repeated")
        items: Any = value.values()
    elif kind is list:
        items = value
    else:
        _check_leaf(kind, value)
        return
    depth += 1
    if depth > MAX_DEPTH and items:
        raise CodecError(f"value nests deeper than {MAX_DEPTH} levels")
    for item in items:
        # Strings, bytes, links and small integers are most of a block: checked here
        # without a call.
        kind = type(item)
        if kind in _LEAVES:
            continue
        if kind is int and _INT_MIN <= item <= _INT_MAX:
            continue
        _check_decoded(item, depth)


def _check_leaf(kind: type, value: Any) -> None:
    if kind is float:
        raise CodecError("floats are not allowed in craftnet data")
    if kind is int:
        # cbor2 turns bignum tags (2, 3) into ints without calling the tag hook.
        if not _INT_MIN <= value <= _INT_MAX:
            raise CodecError(f"integer {value} is outside the 64-bit range DAG-CBOR allows")
    elif kind not in _LEAVES:
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
