"""What a record's links point at, checked before this hub signs and publishes it.

The schemas say a design's ``files`` are file nodes, its ``derived_from`` designs, a
collection's ``items`` records. A CID alone cannot say what it names, so a typo or a
pasted record CID in ``--file`` used to be signed and published without a word. Here
each linking field names the kind of block it expects; a target this hub holds must be
of that kind, and a target it does not hold is refused where the hub must be able to
serve it (its own files, the items it collects) and warned about where it may
legitimately live elsewhere (a parent design, an attested design). Records received
from peers are not checked this way: their links may point at what a hub never
fetched.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from craftnet.archive import blocks, files, index
from craftnet.archive.cid import DAG_CBOR, Cid
from craftnet.archive.errors import ArchiveError, WrongLink
from craftnet.archive.store import ReadTxn

Severity = Literal["error", "warning"]
# (record type, body field) -> (kind of target, severity when the target is absent).
# A kind is "file" (a file node) or a record type; "record" is any record.
EXPECTED: Final[dict[tuple[str, str], tuple[str, Severity]]] = {
    ("design", "files"): ("file", "error"),
    ("design", "derived_from"): ("design", "warning"),
    ("technique", "steps"): ("file", "error"),
    ("collection", "items"): ("record", "error"),
    ("attestation", "design"): ("design", "warning"),
}


@dataclass(frozen=True, slots=True)
class LinkProblem:
    """One link that does not point where its field says it should."""

    field: str
    cid: Cid
    severity: Severity
    message: str

    def as_dict(self) -> dict[str, str]:
        """A JSON-friendly view."""
        return {
            "field": self.field,
            "cid": str(self.cid),
            "severity": self.severity,
            "message": self.message,
        }


def kind_of(txn: ReadTxn, cid: Cid) -> str | None:
    """What ``cid`` names here: a record's type, "file", "block", or None when absent."""
    if index.has_record(txn, cid):
        return index.get_summary(txn, cid).type
    data = blocks.find_block(txn, cid)
    if data is None:
        return None
    if cid.codec == DAG_CBOR:
        try:
            files.parse_file_node(cid, data)
        except ArchiveError:
            return "block"
        return "file"
    return "block"


def _targets(rtype: str, body: Mapping[str, Any]) -> Iterator[tuple[str, Cid]]:
    for (of_type, name), _ in EXPECTED.items():
        if of_type != rtype or name not in body:
            continue
        value = body[name]
        if name == "steps":
            for step in value if isinstance(value, list) else ():
                media = step.get("media", []) if isinstance(step, dict) else []
                yield from ((name, cid) for cid in media if isinstance(cid, Cid))
        elif isinstance(value, Cid):
            yield name, value
        elif isinstance(value, list):
            yield from ((name, cid) for cid in value if isinstance(cid, Cid))


def _describe(kind: str) -> str:
    if kind == "file":
        return "a file (from 'craftnet add')"
    if kind == "block":
        return "a block that is neither a file nor a record"
    return "a record" if kind == "record" else f"a {kind} record"


def _fits(want: str, got: str) -> bool:
    return got == want or (want == "record" and got not in ("file", "block"))


def link_problems(txn: ReadTxn, rtype: str, body: Mapping[str, Any]) -> list[LinkProblem]:
    """Every link of a body about to be published that points at the wrong thing."""
    problems: list[LinkProblem] = []
    for name, cid in _targets(rtype, body):
        want, if_absent = EXPECTED[(rtype, name)]
        got = kind_of(txn, cid)
        if got is None:
            message = f"{name}: {cid} is not in this archive; expected {_describe(want)}"
            problems.append(LinkProblem(name, cid, if_absent, message))
        elif not _fits(want, got):
            message = f"{name}: {cid} is {_describe(got)}, not {_describe(want)}"
            problems.append(LinkProblem(name, cid, "error", message))
    return problems


def check_links(txn: ReadTxn, rtype: str, body: Mapping[str, Any]) -> list[LinkProblem]:
    """Raise :class:`WrongLink` for the errors among :func:`link_problems`; return warnings."""
    problems = link_problems(txn, rtype, body)
    errors = [p.message for p in problems if p.severity == "error"]
    if errors:
        raise WrongLink("; ".join(errors))
    return problems
