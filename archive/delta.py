"""Bundles that know the other hub: delta exports, and bundles split across sticks.

A *plan* is the ordered list of blocks a bundle will hold, cut into *units*: one record
(or pinned file) with the non-record blocks it links, children before parents (chunks,
file parts, file node, then the record). Planning reads no chunk: chunk sizes come from
their file nodes. So ``craftnet export --dry-run`` (and the web page that prepares a
stick) can say the size before anything is written.

* :func:`plan_delta`: the records a hub lacks according to its have-summary
  (:func:`craftnet.archive.have.difference`), each with the non-record blocks it links.
  Linked *records* are not followed (the difference already decided about each), so a
  CRDT document travels as its missing operations only, never its whole history.
* :func:`plan_all` and :func:`plan_roots`: the whole archive, or chosen records with
  everything they link (like :func:`craftnet.archive.bundle.export_car`).

:func:`write_bundles` writes a plan as one CARv1 file, or with ``max_size`` as numbered
parts (``name-1-of-3.car``, ...) that import in any order. A unit is never split unless
it is larger than a part alone (a big design file); then its chunks run over several
parts and the file node and record come last, in the last of them. Delta bundles and
parts carry a *manifest* block, the header's first root::

    {type: "craftnet-bundle", v: 1, set: 16 bytes, part: i, parts: n, have?: summary}

``set`` names the parts of one export; ``have`` is the sender's signed have-summary
(:mod:`craftnet.archive.have`), which the importer records as what the sender holds.
The manifest is transport data: importers never store it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from craftnet.archive import codec
from craftnet.archive.car import MAX_BLOCK_SIZE as MAX_SECTION_BLOCK
from craftnet.archive.car import encode_varint, write_header, write_section
from craftnet.archive.cid import DAG_CBOR, RAW, Cid
from craftnet.archive.errors import BundleError, CodecError, NotFound
from craftnet.archive.have import Difference, HaveSummary, ItemSet, difference
from craftnet.archive.key_facts import key_facts
from craftnet.archive.records import ENVELOPE_KEYS
from craftnet.archive.store import ReadTxn

MANIFEST_TYPE: Final = "craftnet-bundle"
MANIFEST_VERSION: Final = 1
SET_ID_SIZE: Final = 16
MAX_PARTS: Final = 9999
MIN_PART_SIZE: Final = 4 * 1024 * 1024
# Room kept in every part for the header and the manifest (with a have-summary).
PART_OVERHEAD: Final = 256 * 1024
_MANIFEST_KEYS: Final = frozenset({"type", "v", "set", "part", "parts", "have", "pins"})
MAX_MANIFEST_PINS: Final = 50_000


# ---------------------------------------------------------------------- the manifest


@dataclass(frozen=True, slots=True)
class Manifest:
    """Which export a bundle belongs to, which part it is, and the sender's summary."""

    set_id: bytes
    part: int
    parts: int
    have: bytes | None = None
    pins: tuple[Cid, ...] = ()  # pinned files (no record keeps them) in this part

    def block(self) -> tuple[Cid, bytes]:
        """The manifest as a DAG-CBOR block and its CID."""
        value: dict[str, Any] = {
            "type": MANIFEST_TYPE,
            "v": MANIFEST_VERSION,
            "set": self.set_id,
            "part": self.part,
            "parts": self.parts,
        }
        if self.have is not None:
            value["have"] = self.have
        if self.pins:
            value["pins"] = list(self.pins)
        data = codec.encode(value)
        return Cid.of(data, DAG_CBOR), data


def looks_like_manifest(cid: Cid, data: bytes) -> bool:
    """Whether a block claims to be a bundle manifest (then :func:`read_manifest` judges)."""
    if cid.codec != DAG_CBOR:
        return False
    try:
        value = codec.decode(data, max_size=max(len(data), 1))
    except CodecError:
        return False
    return isinstance(value, dict) and value.get("type") == MANIFEST_TYPE


def read_manifest(data: bytes) -> Manifest:
    """Parse a manifest block strictly; :class:`BundleError` on anything wrong."""
    try:
        value = codec.decode(data, max_size=max(len(data), 1))
    except CodecError as exc:
        raise BundleError(f"the bundle manifest is not canonical DAG-CBOR: {exc}") from None
    if not isinstance(value, dict) or value.get("type") != MANIFEST_TYPE:
        raise BundleError("the bundle manifest is not a craftnet-bundle map")
    version = value.get("v")
    if type(version) is not int or version != MANIFEST_VERSION:
        raise BundleError(
            f"bundle manifest version {version!r} is not supported; this hub reads version "
            f"{MANIFEST_VERSION} (upgrade craftnet?)"
        )
    if not set(value) <= _MANIFEST_KEYS or not {"set", "part", "parts"} <= set(value):
        raise BundleError(f"the bundle manifest has unexpected or missing fields: {sorted(value)}")
    set_id, part, parts, have = value["set"], value["part"], value["parts"], value.get("have")
    if not isinstance(set_id, bytes) or len(set_id) != SET_ID_SIZE:
        raise BundleError(f"the bundle manifest's set is not {SET_ID_SIZE} bytes")
    if type(parts) is not int or not 1 <= parts <= MAX_PARTS:
        raise BundleError(f"the bundle manifest's part count must be 1..{MAX_PARTS}")
    if type(part) is not int or not 1 <= part <= parts:
        raise BundleError(f"the bundle manifest's part number must be 1..{parts}")
    if have is not None and not isinstance(have, bytes):
        raise BundleError("the bundle manifest's have-summary must be bytes")
    pins = value.get("pins", [])
    if (
        not isinstance(pins, list)
        or len(pins) > MAX_MANIFEST_PINS
        or not all(isinstance(pin, Cid) for pin in pins)
    ):
        raise BundleError(f"the bundle manifest's pins must be a list of at most "
                          f"{MAX_MANIFEST_PINS} CIDs")
    return Manifest(set_id, part, parts, have, tuple(pins))


def part_path(out: Path, part: int, parts: int) -> Path:
    """Where part ``part`` of ``parts`` of a bundle named ``out`` is written."""
    if parts == 1:
        return out
    suffix = out.suffix or ".car"
    return out.with_name(f"{out.name[: len(out.name) - len(out.suffix)]}-{part}-of-{parts}{suffix}")


# ---------------------------------------------------------------------- planning


@dataclass(slots=True)
class Plan:
    """The blocks a bundle will hold, in order, cut into units (see the module doc)."""

    blocks: list[tuple[Cid, int]] = field(default_factory=list)
    unit_ends: list[int] = field(default_factory=list)
    pins: set[Cid] = field(default_factory=set)  # unit roots that are not records
    extra: dict[bytes, bytes] = field(default_factory=dict)  # blocks made for the bundle
    records: int = 0
    missing: list[Cid] = field(default_factory=list)
    difference: Difference | None = None

    @property
    def section_bytes(self) -> int:
        """The bytes of all the sections (without header and manifest)."""
        return sum(section_size(size) for _, size in self.blocks)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary of the plan."""
        out: dict[str, Any] = {
            "records": self.records,
            "blocks": len(self.blocks),
            "bytes": self.section_bytes,
            "missing": len(self.missing),
        }
        if self.difference is not None:
            out["difference"] = self.difference.as_dict()
        return out


def section_size(size: int) -> int:
    """The bytes one section of a ``size``-byte block takes in a CAR file."""
    return len(encode_varint(36 + size)) + 36 + size


def _is_record(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == ENVELOPE_KEYS


def _entry_sizes(value: Any) -> dict[Cid, int]:
    """Sizes a file node or file part states for the blocks it lists."""
    if not isinstance(value, dict) or value.get("type") not in ("file", "file-part"):
        return {}
    entries = value.get("chunks")
    if not isinstance(entries, list):
        return {}
    sizes: dict[Cid, int] = {}
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("cid"), Cid):
            size = entry.get("size")
            if type(size) is int and entry["cid"].codec == RAW:
                sizes[entry["cid"]] = size
    return sizes


class _Planner:
    def __init__(self, txn: ReadTxn, *, follow_records: bool) -> None:
        self.txn = txn
        self.follow_records = follow_records
        self.plan = Plan()
        self.seen: set[bytes] = set()
        self.authors: set[str] = set()

    def unit(self, root: Cid) -> None:
        """Add ``root`` and what it links (children first) as one unit."""
        stack: list[tuple[Cid, int, bool]] = [(root, -1, False)]
        while stack:
            cid, size, expanded = stack.pop()
            if expanded:
                self.plan.blocks.append((cid, size))
                continue
            if cid.bytes in self.seen:
                continue
            if cid.codec == RAW:
                self.seen.add(cid.bytes)
                if size >= 0 and self.txn.has("blocks", cid.bytes):
                    self.plan.blocks.append((cid, size))
                    continue
                data = self.txn.get("blocks", cid.bytes)
                if data is None:
                    self.plan.missing.append(cid)
                else:
                    self.plan.blocks.append((cid, len(data)))
                continue
            data = self.txn.get("blocks", cid.bytes)
            if data is None:
                self.seen.add(cid.bytes)
                self.plan.missing.append(cid)
                continue
            value = codec.decode(data, max_size=max(len(data), 1))
            is_record = _is_record(value)
            if is_record and cid != root and not self.follow_records:
                continue  # a linked record: the difference decides about it on its own
            self.seen.add(cid.bytes)
            if is_record:
                self.plan.records += 1
            elif cid == root:
                self.plan.pins.add(root)
            stack.append((cid, len(data), True))
            sizes = _entry_sizes(value)
            children = list(codec.iter_links(value))
            if is_record and self.follow_records:
                author = value["author"]
                if isinstance(author, str) and author not in self.authors:
                    self.authors.add(author)
                    children.extend(fact.record for fact in key_facts(self.txn, author))
            for child in reversed(children):
                if child.bytes not in self.seen:
                    stack.append((child, sizes.get(child, -1), False))
        self.plan.unit_ends.append(len(self.plan.blocks))


def plan_delta(txn: ReadTxn, summary: HaveSummary) -> Plan:
    """What the summarised hub lacks, as far as ``summary`` tells (see the module doc)."""
    diff = difference(summary, ItemSet.read(txn, summary.salt))
    planner = _Planner(txn, follow_records=False)
    for key in diff.ours:
        planner.unit(Cid.from_bytes(key[8:]))
    planner.plan.difference = diff
    return planner.plan


def plan_all(txn: ReadTxn) -> Plan:
    """The whole archive: every pinned file and every record, each with what it links."""
    from craftnet.archive.bundle import default_roots

    planner = _Planner(txn, follow_records=False)
    for root in default_roots(txn):
        planner.unit(root)
    return planner.plan


def plan_roots(txn: ReadTxn, roots: Sequence[Cid]) -> Plan:
    """Chosen records and everything they link, recursively (ancestry and key facts too)."""
    planner = _Planner(txn, follow_records=True)
    for root in dict.fromkeys(roots):
        if not txn.has("blocks", root.bytes):
            raise NotFound(f"cannot export {root}: it is not in this archive")
        planner.unit(root)
    return planner.plan


def add_witness_proofs(txn: ReadTxn, plan: Plan) -> int:
    """Add, for every record in the plan, the evidence of its witnesses: each batch
    record (without its leaves), the batch's membership certificates (with what they
    link), and a ``witness-proof`` block per witness; returns how many proofs."""
    from craftnet.archive.witness import proofs_for

    planner = _Planner(txn, follow_records=True)
    planner.plan = plan
    planner.seen = {cid.bytes for cid, _ in plan.blocks}
    records = [cid for cid, _ in plan.blocks if cid.codec == DAG_CBOR and txn.has("records",
                                                                                     cid.bytes)]
    added = 0
    for cid in records:
        for proof in proofs_for(txn, cid):
            if proof.batch.bytes not in planner.seen:
                data = txn.get("blocks", proof.batch.bytes)
                if data is None:
                    continue
                batch = codec.decode(data)
                for cert in batch["body"].get("membership", []):
                    planner.unit(cert)
                planner.seen.add(proof.batch.bytes)
                plan.blocks.append((proof.batch, len(data)))
                plan.records += 1
                plan.unit_ends.append(len(plan.blocks))
            proof_cid, proof_data = proof.block()
            if proof_cid.bytes not in planner.seen:
                planner.seen.add(proof_cid.bytes)
                plan.extra[proof_cid.bytes] = proof_data
                plan.blocks.append((proof_cid, len(proof_data)))
                plan.unit_ends.append(len(plan.blocks))
                added += 1
    return added


# ---------------------------------------------------------------------- splitting


def split(plan: Plan, max_size: int | None) -> list[tuple[int, int]]:
    """Cut the plan's blocks into parts of at most ``max_size`` bytes: ``(start, end)`` spans.

    Whole units go together; a unit too big for one part fills parts block by block.
    """
    if max_size is None:
        return [(0, len(plan.blocks))]
    if max_size < MIN_PART_SIZE:
        raise BundleError(f"a part must hold at least {MIN_PART_SIZE // (1024 * 1024)} MiB")
    room = max_size - PART_OVERHEAD
    spans: list[tuple[int, int]] = []
    start = used = 0
    begin = 0
    for end in plan.unit_ends:
        unit = sum(section_size(size) for _, size in plan.blocks[begin:end])
        if used and used + unit > room:
            spans.append((start, begin))
            start, used = begin, 0
        if unit <= room:
            used += unit
        else:
            for i in range(begin, end):
                size = section_size(plan.blocks[i][1])
                if used and used + size > room:
                    spans.append((start, i))
                    start, used = i, 0
                used += size
        begin = end
    if start < len(plan.blocks) or not spans:
        spans.append((start, len(plan.blocks)))
    if len(spans) > MAX_PARTS:
        raise BundleError(f"{len(spans)} parts are too many; choose a larger --max-size")
    return spans


# ---------------------------------------------------------------------- writing


@dataclass(frozen=True, slots=True)
class WrittenPart:
    """One file :func:`write_bundles` wrote."""

    path: Path
    part: int
    blocks: int
    bytes: int


def write_bundles(
    txn: ReadTxn,
    plan: Plan,
    out: Path,
    *,
    have: HaveSummary | None = None,
    max_size: int | None = None,
) -> list[WrittenPart]:
    """Write ``plan`` to ``out`` (or numbered parts beside it); return what was written.

    Every file starts with a manifest (its only root). Each is written beside its
    target as ``.partial`` and renamed when complete, so an interrupted export never
    leaves a file that looks finished. An empty plan still makes one bundle: its
    manifest tells the other hub what this one holds.
    """
    spans = split(plan, max_size)
    set_id = os.urandom(SET_ID_SIZE)
    written: list[WrittenPart] = []
    for number, (start, end) in enumerate(spans, 1):
        path = part_path(out, number, len(spans))
        partial = path.with_name(path.name + ".partial")
        try:
            with partial.open("wb") as stream:
                pins = tuple(c for c, _ in plan.blocks[start:end] if c in plan.pins)
                manifest = Manifest(
                    set_id, number, len(spans), have.raw if have else None, pins
                )
                total = _write_part(txn, plan, start, end, stream, manifest)
                stream.flush()
                os.fsync(stream.fileno())
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
        written.append(WrittenPart(path, number, end - start, total))
    return written


def _write_part(
    txn: ReadTxn, plan: Plan, start: int, end: int, stream: IO[bytes], manifest: Manifest
) -> int:
    cid, data = manifest.block()
    if len(data) > MAX_SECTION_BLOCK:
        raise BundleError("the bundle manifest is too large")
    total = write_header(stream, [cid]) + write_section(stream, cid, data)
    for cid, _ in plan.blocks[start:end]:
        block = plan.extra.get(cid.bytes) or txn.get("blocks", cid.bytes)
        if block is None:
            raise BundleError(f"{cid} left the archive while it was being exported")
        total += write_section(stream, cid, block)
    return total


def total_bytes(parts: Iterable[WrittenPart]) -> int:
    """The bytes of all parts together."""
    return sum(part.bytes for part in parts)
