"""Checking record blocks for an import, in whichever process runs the check.

:func:`craftnet.archive.index.ingest_records` hands a batch's blocks to
:func:`check_blocks`, on the signature worker processes when a core is idle (see
:func:`craftnet.identity.batch.start_map`), else in its own process when it collects
the answers: the same function either way, so both give the same verdicts and the same
messages. A block is parsed (size, CID, canonical DAG-CBOR, envelope), checked against
its type's schema and, when asked, its signature is checked; the answer is plain data
that pickles cheaply (no :class:`Record`, no decoded body but the few the write reads),
so the importing process only has to store what passed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from craftnet.archive.cid import Cid
from craftnet.archive.codec import UnsupportedLink
from craftnet.archive.errors import CodecError, RecordError, SchemaError
from craftnet.archive.records import Record
from craftnet.archive.schemas import validate_record

# One block to check: its bytes, the CID it came with (None: a bare block) and whether
# its signature is to be checked (not for a record the store holds already).
Task = tuple[bytes, Cid | None, bool]
# A block that does not parse or breaks its type's schema: the name of the error's
# class (see :func:`refusal`), its message, and whether the block parsed (then the
# record's CID names the refusal; else the CID it came with, if any).
Refused = tuple[str, str, bool]
# A block that parsed: type, author, ts, its links' binary CIDs, whether its type is
# known here, its body if the write reads it (see BODY_READ, else None), and why its
# signature fails (None: good, or not checked).
Parsed = tuple[str, str, int, tuple[bytes, ...], bool, Mapping[str, Any] | None, str | None]
Answer = Refused | Parsed

# The types whose body the write reads (attestation subjects, key facts).
BODY_READ: Final = frozenset({"attestation", "key-succession", "revocation"})
# The errors a refusal names, most specific first (a class not listed is named by the
# nearest listed base class).
_ERRORS: Final[dict[str, type[Exception]]] = {
    cls.__name__: cls for cls in (UnsupportedLink, RecordError, SchemaError, CodecError)
}


def check_blocks(tasks: list[Task]) -> list[Answer]:
    """Parse, schema-check and (if asked) signature-check each block; one answer each.

    The checks and their order are those of ``Record.from_block``, ``validate_record``
    and ``Record.verify``, and every message is theirs.
    """
    answers: list[Answer] = []
    for block, cid, verify in tasks:
        try:
            record = Record.from_block(block) if cid is None else Record.from_block(block, cid)
        except (RecordError, SchemaError, CodecError) as exc:
            answers.append((_name(exc), str(exc), False))
            continue
        try:
            known = validate_record(record)
        except (RecordError, SchemaError, CodecError) as exc:
            answers.append((_name(exc), str(exc), True))
            continue
        problem: str | None = None
        if verify:
            try:
                record.verify()
            except RecordError as exc:
                problem = str(exc)
        rtype = record.type
        answers.append(
            (
                rtype,
                record.author,
                record.ts,
                tuple(link.bytes for link in record.links),
                known,
                record.body if rtype in BODY_READ else None,
                problem,
            )
        )
    return answers


def refusal(answer: Refused) -> Exception:
    """The error a refused block's answer stands for (raised by a strict import)."""
    name, message, _ = answer
    return _ERRORS.get(name, RecordError)(message)


def _name(exc: Exception) -> str:
    for cls in type(exc).__mro__:
        if cls.__name__ in _ERRORS and _ERRORS[cls.__name__] is cls:
            return cls.__name__
    return RecordError.__name__
