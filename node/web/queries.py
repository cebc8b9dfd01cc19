"""The questions the API and the pages ask of the archive, answered once for both.

Handlers in :mod:`craftnet.node.web.api` turn these answers into JSON, the pages in
:mod:`craftnet.node.web.ui` into HTML; neither reads the store on its own for
anything asked here. Everything returned is plain data (dataclasses, records, dicts).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from craftnet.archive import blocks, files, index
from craftnet.archive.cid import Cid
from craftnet.archive.errors import ArchiveError, IntegrityError, NotFound
from craftnet.archive.licences import check_derivative
from craftnet.archive.records import Record
from craftnet.archive.schemas import record_licence, record_title
from craftnet.archive.store import Store
from craftnet.identity.keystore import ARTISAN_PREFIX, KeyInfo, Keystore
from craftnet.node.web.context import NodeContext
from craftnet.node.web.errors import ApiError

FILES_PATH: Final = "/api/v1/files/"
TYPE_LABELS: Final = {
    "technique": "Technique",
    "design": "Design",
    "collection": "Collection",
    "attestation": "Attestation",
    "doc": "Co-edited entry",
}
CONTENT_TYPES: Final = {
    ".stl": "model/stl",
    ".step": "model/step",
    ".stp": "model/step",
    ".3mf": "model/3mf",
    ".obj": "model/obj",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".pdf": "application/pdf",
    ".gcode": "text/x-gcode; charset=utf-8",
    ".gco": "text/x-gcode; charset=utf-8",
    ".nc": "text/x-gcode; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".dxf": "image/vnd.dxf",
}
IMAGE_TYPES: Final = frozenset(
    {"image/png", "image/jpeg", "image/webp", "image/gif", "image/svg+xml"}
)
# Models the 3D viewer turns (three.js has a loader for each); STL also gets a drawing.
VIEWER_FORMATS: Final = {"model/stl": "stl", "model/obj": "obj", "model/3mf": "3mf"}
_META_CACHE: Final = 4096


# -- artisans ---------------------------------------------------------------------------


def artisan_keys(keystore: Keystore) -> list[KeyInfo]:
    """The artisans' keys kept on this hub (not the hub's own key)."""
    try:
        return [info for info in keystore.list() if info.name.startswith(ARTISAN_PREFIX)]
    except ArchiveError:
        return []


def handle_of(info: KeyInfo) -> str:
    """An artisan key's handle (its name without the prefix)."""
    return info.name[len(ARTISAN_PREFIX) :]


def handles(ctx: NodeContext) -> dict[str, str]:
    """did -> handle for the artisans who keep a key on this hub."""
    return {info.did: handle_of(info) for info in artisan_keys(ctx.keystore)}


@dataclass(frozen=True, slots=True)
class ArtisanProfile:
    """An artisan as this hub knows them: their handle here, work and attestations."""

    did: str
    handle: str | None
    works: list[Record]
    cursor: str | None
    attestations: list[Record]


def artisan_profile(ctx: NodeContext, did: str, limit: int = 50) -> ArtisanProfile:
    """What this hub knows of ``did``; NotFound if it knows nothing (no key, work or vouch)."""
    with ctx.store.read() as txn:
        page = index.list_records(txn, author=did, limit=limit)
        vouched = [index.get_record(txn, c) for c in index.attestations_about(txn, did)[:100]]
    handle = handles(ctx).get(did)
    works = [r for r in page.records if r.type != "doc-op"]
    if handle is None and not page.records and not vouched:
        raise NotFound(f"no artisan {did[:80]} is known to this hub")
    return ArtisanProfile(did, handle, works, page.cursor, vouched)


def badges(ctx: NodeContext, did: str) -> list[str]:
    """Short badges for what alliance members vouch about ``did`` (Human Treasure, skills)."""
    shown: list[str] = []
    with ctx.store.read() as txn:
        for cid in index.attestations_about(txn, did)[:20]:
            try:
                body = index.get_record(txn, cid).body
            except ArchiveError:
                continue
            if body.get("kind") == "living-heritage":
                label = "★ Human Treasure"
            elif body.get("kind") == "skill" and isinstance(body.get("level"), str):
                label = f"✓ {body['level']}"
            else:
                continue
            if label not in shown:
                shown.append(label)
    return shown


# -- files ------------------------------------------------------------------------------


def content_type(name: str | None) -> str:
    """The media type for a file name (by extension; octet-stream when unknown)."""
    if not name or "." not in name:
        return "application/octet-stream"
    return CONTENT_TYPES.get("." + name.rsplit(".", 1)[1].lower(), "application/octet-stream")


_meta_lock = threading.Lock()
_meta: OrderedDict[Cid, dict[str, Any]] = OrderedDict()


def file_meta(store: Store, cid: Cid) -> dict[str, Any]:
    """``{cid, name, size, content_type}`` of a stored file.

    404 when nothing is stored under ``cid`` or what is there is not a file (a record, a
    chunk); a 500 only when the block is damaged (it does not match its CID).
    """
    with _meta_lock:
        cached = _meta.get(cid)
    if cached is not None:
        return dict(cached)
    try:
        info = files.file_info(store, cid)
    except IntegrityError:
        with store.read() as txn:
            block = blocks.get_block(txn, cid)
            is_record = index.has_record(txn, cid)
        if not cid.verify(block):
            raise
        what = "a record" if is_record else f"a {cid.codec_name} block"
        hint = f"; see /api/v1/records/{cid}" if is_record else ""
        raise ApiError(404, "not-a-file", f"{cid} is {what}, not a file{hint}") from None
    ctype = content_type(info.name)
    if ctype == "application/octet-stream" and info.media_type != files.DEFAULT_MEDIA_TYPE:
        ctype = info.media_type
    meta = {"cid": str(cid), "name": info.name, "size": info.size, "content_type": ctype}
    with _meta_lock:  # a file node never changes: what it says can be kept
        _meta[cid] = meta
        while len(_meta) > _META_CACHE:
            _meta.popitem(last=False)
    return dict(meta)


def missing_chunks(ctx: NodeContext, cid: Cid, limit: int = 1) -> list[Cid]:
    """Up to ``limit`` chunks (or part nodes) of file ``cid`` this hub does not hold yet."""
    info = files.file_info(ctx.store, cid)
    missing: list[Cid] = []
    with ctx.store.read() as txn:
        parts_missing = [ref.cid for ref in info.chunks if not blocks.has_block(txn, ref.cid)]
    if parts_missing:
        return parts_missing[:limit]
    refs = list(files.iter_chunk_refs(ctx.store, info)) if info.has_parts else info.chunks
    with ctx.store.read() as txn:
        for ref in refs:
            if not blocks.has_block(txn, ref.cid):
                missing.append(ref.cid)
                if len(missing) >= limit:
                    break
    return missing


@dataclass(frozen=True, slots=True)
class FileView:
    """A file as a page shows it: its name, kind and where to fetch it or its picture."""

    cid: str
    name: str
    content_type: str
    size: int
    url: str
    kind: str  # image, model, file, or missing (not on this hub yet)
    picture: str | None = None  # an <img> source: the image itself or a model's drawing
    viewer: str | None = None  # the 3D viewer's format (stl, obj, 3mf)


def file_view(ctx: NodeContext, cid: Cid) -> FileView:
    """How to show file ``cid`` (kind ``missing`` if this hub cannot read it)."""
    url = f"{FILES_PATH}{cid}"
    try:
        meta = file_meta(ctx.store, cid)
    except (ArchiveError, ApiError):
        return FileView(str(cid), str(cid), "", 0, url, "missing")
    ctype = meta["content_type"].split(";")[0]
    name = meta["name"] or str(cid)
    if ctype in IMAGE_TYPES:
        return FileView(str(cid), name, ctype, meta["size"], url, "image", url)
    if ctype in VIEWER_FORMATS:
        drawing = f"{url}/preview.svg" if ctype == "model/stl" else None
        return FileView(
            str(cid), name, ctype, meta["size"], url, "model", drawing, VIEWER_FORMATS[ctype]
        )
    return FileView(str(cid), name, ctype, meta["size"], url, "file")


def record_media(record: Record) -> list[Cid]:
    """The files a record shows: a design's files, then every step's media, in order."""
    out: list[Cid] = []
    for cid in record.body.get("files", []) if record.type == "design" else []:
        if isinstance(cid, Cid) and cid not in out:
            out.append(cid)
    for step in record.body.get("steps", []) if record.type == "technique" else []:
        if isinstance(step, dict):
            for cid in step.get("media", []):
                if isinstance(cid, Cid) and cid not in out:
                    out.append(cid)
    return out


def thumbnail(ctx: NodeContext, record: Record) -> FileView | None:
    """The picture for a record's card: its first photo, else a drawing of its first model."""
    drawings: list[FileView] = []
    for cid in record_media(record)[:16]:
        view = file_view(ctx, cid)
        if view.kind == "image":
            return view
        if view.picture is not None:
            drawings.append(view)
    return drawings[0] if drawings else None


# -- records ----------------------------------------------------------------------------


def get_record(ctx: NodeContext, cid: Cid) -> Record:
    """One record; raises NotFound."""
    with ctx.store.read() as txn:
        return index.get_record(txn, cid)


def get_records(ctx: NodeContext, cids: Iterable[Cid]) -> list[Record]:
    """The records of ``cids`` this hub holds (others are skipped), in order."""
    out: list[Record] = []
    with ctx.store.read() as txn:
        for cid in cids:
            try:
                out.append(index.get_record(txn, cid))
            except ArchiveError:
                continue
    return out


def recent(ctx: NodeContext, rtype: str, limit: int) -> list[Record]:
    """The newest ``limit`` records of one type."""
    with ctx.store.read() as txn:
        return index.list_records(txn, type=rtype, limit=limit).records


def linked_by(ctx: NodeContext, cid: Cid, limit: int = 500) -> list[index.RecordSummary]:
    """Summaries of the records that link ``cid``; NotFound if this hub holds no ``cid``."""
    with ctx.store.read() as txn:
        if not index.has_record(txn, cid) and not blocks.has_block(txn, cid):
            raise NotFound(f"{cid} is not in this hub's archive")
        return [index.get_summary(txn, c) for c in index.linking_records(txn, cid)[:limit]]


def title_of(ctx: NodeContext, record: Record) -> str:
    """What to call a record: its title, a document's current title, or its type."""
    title = record_title(record)
    if record.type == "doc":
        try:
            fields = ctx.documents.view(record.cid).get("fields", {})
        except ArchiveError:
            fields = {}
        if isinstance(fields.get("title"), str):
            title = fields["title"]
    return title or TYPE_LABELS.get(record.type, record.type)


@dataclass(frozen=True, slots=True)
class Card:
    """A record in a grid: title, kind, author, licence, and its picture if it has one."""

    cid: str
    type: str
    label: str
    title: str
    author: str
    licence: str | None
    picture: FileView | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def card(ctx: NodeContext, record: Record) -> Card:
    """The card of one record."""
    return Card(
        str(record.cid),
        record.type,
        TYPE_LABELS.get(record.type, record.type),
        title_of(ctx, record),
        record.author,
        record_licence(record),
        thumbnail(ctx, record),
    )


def cards(ctx: NodeContext, records: Iterable[Record]) -> list[Card]:
    """Cards for records, in order."""
    return [card(ctx, record) for record in records]


# -- licences ---------------------------------------------------------------------------


def licence_findings(ctx: NodeContext, licence: str, parents: list[Cid]) -> list[dict[str, Any]]:
    """What to tell the author of a derivative licensed ``licence`` of ``parents``."""
    findings: list[dict[str, Any]] = []
    with ctx.store.read() as txn:
        for parent in parents:
            try:
                parent_licence = record_licence(index.get_record(txn, parent))
            except NotFound:
                findings.append(
                    {
                        "parent": str(parent),
                        "code": "parent-missing",
                        "severity": "info",
                        "message": f"the parent {parent} is not in this hub's archive",
                    }
                )
                continue
            for warning in check_derivative(licence, parent_licence):
                findings.append(
                    {
                        "parent": str(parent),
                        "code": warning.code,
                        "severity": warning.severity,
                        "message": warning.message,
                    }
                )
    return findings
