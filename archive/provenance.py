"""Provenance: where a design comes from, what was made from it, and who vouches for whom.

Starting from one record, :func:`provenance` walks ``derived_from`` links upward
(ancestors) and the reverse-link index downward (descendants: records whose
``derived_from`` names it), each direction breadth-first, depth- and size-limited, and
safe against diamonds and cycles. Every node carries what a person needs to judge it:
type, title, author, licence, and the attestations found in this hub's archive about
its author (skill, living heritage) or about the design itself (fabricated). Each
derivation edge is checked with :func:`craftnet.archive.licences.check_derivative`.

A parent this hub does not hold is a ``missing`` node, not an error: hubs hold
partial archives, and the graph says what to fetch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from craftnet.archive.cid import Cid
from craftnet.archive.errors import ArchiveError, NotFound
from craftnet.archive.index import attestations_about, get_record, has_record, linking_records
from craftnet.archive.licences import LicenceWarning, Severity, check_derivative
from craftnet.archive.records import Record
from craftnet.archive.schemas import record_licence, record_title
from craftnet.archive.store import ReadTxn

DEFAULT_MAX_DEPTH: Final = 16
DEFAULT_MAX_NODES: Final = 500
# A popular design may be linked by thousands of collections; look at this many linking
# records per node at most, so one query stays cheap.
DEFAULT_MAX_LINKERS: Final = 1000
MAX_ATTESTATIONS_PER_NODE: Final = 50

NodeStatus = Literal["present", "missing", "not-a-record"]
Role = Literal["root", "ancestor", "descendant"]


@dataclass(frozen=True, slots=True)
class AttestationInfo:
    """An attestation about a node's author (``about="author"``) or the node (``"record"``)."""

    cid: Cid
    about: Literal["author", "record"]
    kind: str
    attester: str
    subject: str
    skill: str | None = None
    level: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ProvenanceNode:
    """One record in the graph, or a placeholder for a CID this hub does not hold."""

    cid: Cid
    status: NodeStatus
    role: Role
    depth: int  # generations from the root
    type: str | None = None
    title: str | None = None
    author: str | None = None
    licence: str | None = None
    ts: int | None = None
    attestations: tuple[AttestationInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class ProvenanceEdge:
    """``child`` was derived from ``parent``."""

    child: Cid
    parent: Cid
    kind: Literal["derived_from"] = "derived_from"


@dataclass(frozen=True, slots=True)
class EdgeWarning:
    """A licence finding on one derivation edge."""

    child: Cid
    parent: Cid
    code: str
    severity: Severity
    message: str


@dataclass(slots=True)
class ProvenanceGraph:
    """The derivation graph around ``root``; ``truncated`` if a depth or size limit cut it."""

    root: Cid
    nodes: dict[Cid, ProvenanceNode] = field(default_factory=dict)
    edges: list[ProvenanceEdge] = field(default_factory=list)
    warnings: list[EdgeWarning] = field(default_factory=list)
    truncated: bool = False

    def parents(self, cid: Cid) -> list[Cid]:
        """The CIDs ``cid`` derives from, as found."""
        return [edge.parent for edge in self.edges if edge.child == cid]

    def children(self, cid: Cid) -> list[Cid]:
        """The CIDs found to derive from ``cid``."""
        return [edge.child for edge in self.edges if edge.parent == cid]

    def missing(self) -> list[Cid]:
        """CIDs named in the graph that this hub does not hold (worth fetching)."""
        return [cid for cid, node in self.nodes.items() if node.status == "missing"]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (CIDs as strings) for the HTTP API and web UI."""
        return {
            "root": str(self.root),
            "truncated": self.truncated,
            "nodes": [_node_dict(node) for node in self.nodes.values()],
            "edges": [
                {"child": str(e.child), "parent": str(e.parent), "kind": e.kind} for e in self.edges
            ],
            "warnings": [
                {
                    "child": str(w.child),
                    "parent": str(w.parent),
                    "code": w.code,
                    "severity": w.severity,
                    "message": w.message,
                }
                for w in self.warnings
            ],
        }


def _node_dict(node: ProvenanceNode) -> dict[str, Any]:
    return {
        "cid": str(node.cid),
        "status": node.status,
        "role": node.role,
        "depth": node.depth,
        "type": node.type,
        "title": node.title,
        "author": node.author,
        "licence": node.licence,
        "ts": node.ts,
        "attestations": [
            {
                "cid": str(a.cid),
                "about": a.about,
                "kind": a.kind,
                "attester": a.attester,
                "subject": a.subject,
                "skill": a.skill,
                "level": a.level,
                "note": a.note,
            }
            for a in node.attestations
        ],
    }


def parents_of(record: Record) -> list[Cid]:
    """The CIDs a record says it derives from (``body.derived_from``, any type), deduplicated."""
    value = record.body.get("derived_from")
    if not isinstance(value, list):
        return []
    parents: list[Cid] = []
    for item in value:
        if isinstance(item, Cid) and item not in parents and item in record.links:
            parents.append(item)
    return parents


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


class _Walker:
    def __init__(
        self,
        txn: ReadTxn,
        root: Cid,
        max_nodes: int,
        max_linkers: int,
        with_attestations: bool,
    ) -> None:
        self.txn = txn
        self.graph = ProvenanceGraph(root)
        self.max_nodes = max_nodes
        self.max_linkers = max_linkers
        self.linker_cache: dict[Cid, list[Cid]] = {}
        self.with_attestations = with_attestations
        self.records: dict[Cid, Record | None] = {}
        self.author_attestations: dict[str, tuple[AttestationInfo, ...]] = {}
        self.edges: set[tuple[Cid, Cid]] = set()

    def load(self, cid: Cid) -> Record | None:
        if cid not in self.records:
            try:
                self.records[cid] = get_record(self.txn, cid) if has_record(self.txn, cid) else None
            except ArchiveError:
                self.records[cid] = None  # a damaged record shows as missing; fsck reports it
        return self.records[cid]

    def linkers(self, cid: Cid) -> list[Cid]:
        """The records linking ``cid``, at most ``max_linkers`` (else the graph is truncated)."""
        found = self.linker_cache.get(cid)
        if found is None:
            found = linking_records(self.txn, cid, limit=self.max_linkers + 1)
            if len(found) > self.max_linkers:
                self.graph.truncated = True
                del found[self.max_linkers :]
            self.linker_cache[cid] = found
        return found

    def add_node(self, cid: Cid, role: Role, depth: int) -> bool:
        """Add ``cid`` if new and there is room; return whether it was added."""
        if cid in self.graph.nodes:
            return False
        if len(self.graph.nodes) >= self.max_nodes:
            self.graph.truncated = True
            return False
        record = self.load(cid)
        if record is None:
            status: NodeStatus = "not-a-record" if self.txn.has("blocks", cid.bytes) else "missing"
            self.graph.nodes[cid] = ProvenanceNode(cid, status, role, depth)
            return True
        self.graph.nodes[cid] = ProvenanceNode(
            cid,
            "present",
            role,
            depth,
            type=record.type,
            title=record_title(record),
            author=record.author,
            licence=record_licence(record),
            ts=record.ts,
            attestations=self.attestations(record) if self.with_attestations else (),
        )
        return True

    def add_edge(self, child: Cid, parent: Cid) -> None:
        if (child, parent) in self.edges:
            return
        self.edges.add((child, parent))
        self.graph.edges.append(ProvenanceEdge(child, parent))

    def attestations(self, record: Record) -> tuple[AttestationInfo, ...]:
        found = list(self.about_author(record.author))
        for cid in self.linkers(record.cid):
            if len(found) >= 2 * MAX_ATTESTATIONS_PER_NODE:
                break
            att = self.load(cid)
            if (
                att is not None
                and att.type == "attestation"
                and att.body.get("design") == (record.cid)
            ):
                found.append(_attestation_info(att, "record"))
        return tuple(found)

    def about_author(self, did: str) -> tuple[AttestationInfo, ...]:
        cached = self.author_attestations.get(did)
        if cached is None:
            infos = []
            for cid in attestations_about(self.txn, did)[:MAX_ATTESTATIONS_PER_NODE]:
                att = self.load(cid)
                if att is not None and att.body.get("kind") != "fabricated":
                    infos.append(_attestation_info(att, "author"))
            cached = self.author_attestations[did] = tuple(infos)
        return cached

    def walk_up(self, max_depth: int) -> None:
        queue: deque[tuple[Cid, int]] = deque([(self.graph.root, 0)])
        while queue:
            cid, depth = queue.popleft()
            record = self.load(cid)
            if record is None:
                continue
            parents = parents_of(record)
            if parents and depth >= max_depth:
                self.graph.truncated = True
                continue
            for parent in parents:
                if parent in self.graph.nodes:
                    self.add_edge(cid, parent)
                elif self.add_node(parent, "ancestor", depth + 1):
                    self.add_edge(cid, parent)
                    queue.append((parent, depth + 1))

    def walk_down(self, max_depth: int) -> None:
        queue: deque[tuple[Cid, int]] = deque([(self.graph.root, 0)])
        while queue:
            cid, depth = queue.popleft()
            children = [
                linker
                for linker in self.linkers(cid)
                if (child := self.load(linker)) is not None and cid in parents_of(child)
            ]
            if children and depth >= max_depth:
                self.graph.truncated = True
                continue
            for child_cid in children:
                if child_cid in self.graph.nodes:
                    self.add_edge(child_cid, cid)
                elif self.add_node(child_cid, "descendant", depth + 1):
                    self.add_edge(child_cid, cid)
                    queue.append((child_cid, depth + 1))

    def check_licences(self) -> None:
        nodes = self.graph.nodes
        for edge in self.graph.edges:
            child, parent = nodes[edge.child], nodes[edge.parent]
            if child.status != "present":
                continue
            findings: Iterable[LicenceWarning]
            if parent.status != "present":
                findings = [
                    LicenceWarning(
                        "parent-missing",
                        "info",
                        f"the parent {edge.parent} is not in this hub's archive; "
                        "fetch it to check its licence",
                    )
                ]
            else:
                findings = check_derivative(child.licence, parent.licence)
            self.graph.warnings.extend(
                EdgeWarning(edge.child, edge.parent, w.code, w.severity, w.message)
                for w in findings
            )


def _attestation_info(record: Record, about: Literal["author", "record"]) -> AttestationInfo:
    body = record.body
    return AttestationInfo(
        cid=record.cid,
        about=about,
        kind=_str_or_none(body.get("kind")) or "",
        attester=record.author,
        subject=_str_or_none(body.get("subject")) or "",
        skill=_str_or_none(body.get("skill")),
        level=_str_or_none(body.get("level")),
        note=_str_or_none(body.get("note")),
    )


def provenance(
    txn: ReadTxn,
    cid: Cid,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_nodes: int = DEFAULT_MAX_NODES,
    max_linkers: int = DEFAULT_MAX_LINKERS,
    ancestors: bool = True,
    descendants: bool = True,
    attestations: bool = True,
) -> ProvenanceGraph:
    """The derivation graph around record ``cid``; raises :class:`NotFound` if it is not held."""
    if max_depth < 0 or max_nodes < 1 or max_linkers < 0:
        raise ArchiveError("max_depth and max_linkers must be >= 0 and max_nodes >= 1")
    if not has_record(txn, cid):
        raise NotFound(f"record {cid} is not in this hub's archive")
    walker = _Walker(txn, cid, max_nodes, max_linkers, attestations)
    walker.add_node(cid, "root", 0)
    if ancestors:
        walker.walk_up(max_depth)
    if descendants:
        walker.walk_down(max_depth)
    walker.check_licences()
    return walker.graph
