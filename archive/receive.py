"""Receiving a bundle from a stick: resumable, and parts of a split bundle in any order.

:func:`receive_bundle` is what ``craftnet import`` runs. It checks every block exactly
as :func:`craftnet.archive.bundle.import_car` does (the same :func:`check_block`), and
commits the same way (:func:`craftnet.archive.bundle.commit_staged`), adding three
things:

**Resuming.** Checked blocks go to a spill file in a *job folder* of the hub's home
(``imports/<job>/``, named after the bundle's roots), with an append-only journal of
what was staged. Every ``checkpoint_bytes`` of the bundle, both are flushed to disk and
a small state file is replaced atomically: how far the bundle was read and how long
the spill and journal were then. A killed import (power cut, ``kill -9``) run again
finds the folder, cuts spill and journal back to the last checkpoint and reads on from
there. The store is not touched until the whole bundle has passed, as before; a kill
during the commit is resumed by committing again (every step of it is idempotent).
The folder is removed when the import ends, successfully or with a refused bundle.
A bundle whose stream ends early (a copy cut short, a pipe whose sender stopped:
:class:`~craftnet.archive.errors.BundleTruncated`) keeps its folder, checkpointed at the
last whole block, so that importing it again continues. A stream that cannot seek (a
pipe) continues too: what was checked before is read again and compared block by block
with the journal, not checked again. A folder nobody comes back to is removed by
:mod:`craftnet.archive.leftovers` once it is old.

**Manifests.** A bundle whose first root is a manifest
(:mod:`craftnet.archive.delta`) is a delta bundle or a part. The manifest is never
stored; its ``have`` summary is checked (signature and form) with the bundle and,
once committed, recorded as what the sender holds
(:class:`craftnet.archive.peer_state.PeerStates`). The report then says how many of
the sender's records this hub still lacks, computed from that summary.

**Parts in any order.** A part of a split bundle may hold a file node whose chunks are
in another part, or chunks whose file node is. Nothing broken becomes visible: blocks
that cannot be complete yet are *held* in the store's ``bundle_held`` database (not in
``blocks``, so neither readers nor garbage collection see them), with any record that
links them, and the time each was first held (:func:`encode_held`). Each part that
arrives commits whatever became complete. When the last part is in, nothing is held any
more; if something still is (the sender lacked a chunk), the report says so and it
stays held until :mod:`craftnet.archive.leftovers` finds it abandoned.
"""

from __future__ import annotations

import fcntl
import os
import stat
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import blake3

from craftnet.archive import codec
from craftnet.archive.bundle import (
    BlockKind,
    ImportReport,
    Staged,
    check_block,
    commit_staged,
    read_staged,
    require_roots,
)
from craftnet.archive.car import CarReader
from craftnet.archive.cid import CID_BYTES_LEN, DAG_CBOR, Cid
from craftnet.archive.delta import Manifest, looks_like_manifest, read_manifest
from craftnet.archive.errors import ArchiveError, BundleError, BundleTruncated
from craftnet.archive.have import HaveSummary, ItemSet, difference, read_summary
from craftnet.archive.hlc import wall_ms
from craftnet.archive.peer_state import PeerStates
from craftnet.archive.store import Store, WriteTxn, prefix_end
from craftnet.archive.witness import PROOF_TYPE, index_proof_blocks, is_proof_block
from craftnet.errors import CraftnetError

JOBS_DIR: Final = "imports"
CHECKPOINT_BYTES: Final = 8 * 1024 * 1024
HELD_DB: Final = "bundle_held"
SETS_DB: Final = "bundle_sets"
_KINDS: Final[dict[str, bytes]] = {"record": b"r", "document": b"d", "block": b"b"}
_KIND_OF: Final[dict[bytes, BlockKind]] = {b"r": "record", b"d": "document", b"b": "block"}
_ENTRY: Final = struct.Struct(">QIcHH")  # offset, length, kind, needs, links
# A held value: AGED, the wall-clock ms it was first held (8 bytes), the kind, the block.
# Values written before held blocks had an age start with the kind letter instead.
AGED: Final = b"\x01"
_HELD_MS: Final = struct.Struct(">Q")
HELD_HEAD: Final = 1 + _HELD_MS.size + 1
JOB_FILES: Final = ("state", "spill", "journal", "state.partial", "lock")  # "lock" last

Progress = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class ReceiveReport(ImportReport):
    """What :func:`receive_bundle` found and did: an import's report, and more."""

    resumed_at: int = 0  # bytes checked by an earlier, interrupted run (0: a fresh start)
    manifest: Manifest | None = None
    sender: HaveSummary | None = None
    still_missing: int | None = None  # sender's records this hub lacks, after the import
    still_missing_exact: bool = True
    held: int = 0  # blocks of a split bundle waiting for other parts
    parts_seen: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view."""
        out = ImportReport.as_dict(self)
        out["resumed_at"] = self.resumed_at
        if self.manifest is not None:
            out["part"] = self.manifest.part
            out["parts"] = self.manifest.parts
            out["parts_seen"] = list(self.parts_seen)
            out["held_blocks"] = self.held
        if self.sender is not None:
            out["sender"] = self.sender.hub
            out["sender_records"] = self.sender.count
            out["still_missing"] = self.still_missing
            out["still_missing_exact"] = self.still_missing_exact
        return out


# ---------------------------------------------------------------------- the job folder


@dataclass(slots=True)
class _Item:
    staged: Staged
    needs: tuple[bytes, ...]  # blocks it cannot do without (a file's chunks)
    links: tuple[bytes, ...]  # everything it links


@dataclass(slots=True)
class _Job:
    """The on-disk state of one import (see the module docstring)."""

    folder: Path
    spill: IO[bytes]
    journal: IO[bytes]
    items: dict[bytes, _Item] = field(default_factory=dict)
    position: int = 0  # bundle bytes read and checked
    index: int = 0  # sections read
    duplicates: int = 0
    spill_len: int = 0
    checked: bool = False
    resumed_at: int = 0

    def add(self, cid: Cid, data: bytes, kind: BlockKind, needs: tuple[bytes, ...],
            links: tuple[bytes, ...]) -> None:
        self.spill.seek(self.spill_len)
        self.spill.write(data)
        staged = Staged(cid, self.spill_len, len(data), kind)
        self.spill_len += len(data)
        self.items[cid.bytes] = _Item(staged, needs, links)
        self.journal.write(
            cid.bytes
            + _ENTRY.pack(staged.offset, staged.length, _KINDS[kind], len(needs), len(links))
            + b"".join(needs)
            + b"".join(links)
        )

    def checkpoint(self) -> None:
        """Make everything staged so far durable, then say so in the state file."""
        self.spill.flush()
        self.journal.flush()
        os.fsync(self.spill.fileno())
        os.fsync(self.journal.fileno())
        state = {
            "position": self.position,
            "index": self.index,
            "duplicates": self.duplicates,
            "spill": self.spill_len,
            "journal": self.journal.tell(),
            "checked": self.checked,
        }
        partial = self.folder / "state.partial"
        partial.write_bytes(codec.encode(state))
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
        partial.replace(self.folder / "state")

    def restore(self) -> None:
        """Go back to the last checkpoint, if there is one."""
        try:
            state = codec.decode((self.folder / "state").read_bytes())
            position, index = int(state["position"]), int(state["index"])
            duplicates, spill_len = int(state["duplicates"]), int(state["spill"])
            journal_len, checked = int(state["journal"]), bool(state["checked"])
        except FileNotFoundError:
            return
        except (ArchiveError, KeyError, TypeError, ValueError):
            return  # an unreadable state: start again from the beginning
        self.journal.seek(0)
        raw = self.journal.read(journal_len)
        if len(raw) != journal_len:
            return
        items = _parse_journal(raw)
        if items is None:
            return
        self.items = items
        self.journal.truncate(journal_len)
        self.journal.seek(journal_len)
        self.spill.truncate(spill_len)
        self.position, self.index, self.duplicates = position, index, duplicates
        self.spill_len, self.checked, self.resumed_at = spill_len, checked, position


def _parse_journal(raw: bytes) -> dict[bytes, _Item] | None:
    items: dict[bytes, _Item] = {}
    pos = 0
    step = CID_BYTES_LEN
    while pos < len(raw):
        head = pos + step + _ENTRY.size
        if head > len(raw):
            return None
        cid_raw = raw[pos : pos + step]
        offset, length, kind, n_needs, n_links = _ENTRY.unpack(raw[pos + step : head])
        end = head + step * (n_needs + n_links)
        if end > len(raw) or kind not in _KIND_OF:
            return None
        refs = [raw[i : i + step] for i in range(head, end, step)]
        try:
            cid = Cid.from_bytes(cid_raw)
        except ArchiveError:
            return None
        staged = Staged(cid, offset, length, _KIND_OF[kind])
        items[cid_raw] = _Item(staged, tuple(refs[:n_needs]), tuple(refs[n_needs:]))
        pos = end
    return items


def job_name(roots: tuple[Cid, ...]) -> str:
    """The job folder's name for a bundle: a hash of its header's roots."""
    return blake3.blake3(b"".join(root.bytes for root in roots)).hexdigest()[:32]


def _still_there(handle: IO[bytes], path: Path) -> bool:
    """Whether ``path`` still names the file ``handle`` has open (an expiry may have
    removed it between our open and our lock)."""
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


@contextmanager
def _open_job(home: Path, roots: tuple[Cid, ...]) -> Iterator[_Job]:
    folder = home / JOBS_DIR / job_name(roots)
    for _ in range(3):
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "lock").open("a+b") as lock:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise BundleError("this bundle is being imported by another process") from None
            if not _still_there(lock, folder / "lock"):
                continue  # the folder was expired meanwhile: make it afresh
            with (
                (folder / "spill").open("a+b") as spill,
                (folder / "journal").open("a+b") as journal,
            ):
                job = _Job(folder, spill, journal)
                job.restore()
                yield job
                return
    raise BundleError(f"could not lock the import's job folder {folder}")


def _remove_job(job: _Job) -> None:
    remove_job_files(job.folder)


def remove_job_files(folder: Path) -> bool:
    """Remove what an import keeps in ``folder`` (its lock last), then the folder if that
    emptied it; return whether the folder is gone. Other files are left where they are."""
    for name in JOB_FILES:
        path = folder / name
        try:
            if stat.S_ISREG(path.lstat().st_mode):  # a link or folder there is not ours
                path.unlink()
        except FileNotFoundError:
            continue
    try:
        folder.rmdir()
    except FileNotFoundError:
        return True
    except OSError:  # something else was put there: leave it
        return False
    return True


def pending_jobs(home: Path) -> list[Path]:
    """Job folders of imports that were interrupted and can be resumed."""
    base = home / JOBS_DIR
    return sorted(p for p in base.iterdir() if (p / "state").exists()) if base.is_dir() else []


# ---------------------------------------------------------------------- receiving


def receive_bundle(
    store: Store,
    stream: IO[bytes],
    home: Path,
    *,
    now: int,
    on_progress: Progress | None = None,
    checkpoint_bytes: int = CHECKPOINT_BYTES,
) -> ReceiveReport:
    """Check and commit a bundle (see the module docstring); resumes an interrupted one.

    ``now`` is the HLC time recorded with the sender's summary. ``on_progress`` is
    called with ``("check", bytes read)``, ``("checked", bundle size)`` once the whole
    bundle passed (and is staged durably), and ``("commit", new blocks)`` at the end.
    Raises :class:`BundleError` naming the bad block; then nothing was added.
    """
    reader = CarReader(stream)
    with _open_job(home, reader.roots) as job:
        try:
            report = _receive(store, stream, reader, job, now, on_progress, checkpoint_bytes)
        except BundleTruncated as exc:
            # What was checked before the stream ended is good: keep it to continue from.
            job.checkpoint()
            kept = job.position - reader.header_end if job.position else 0
            raise BundleTruncated(
                f"{exc}; the {kept} bytes checked before it are kept: import the whole "
                "bundle again to continue from there"
            ) from exc
        except BundleError:
            _remove_job(job)
            raise
        _remove_job(job)
    return report


def _receive(
    store: Store,
    stream: IO[bytes],
    reader: CarReader,
    job: _Job,
    now: int,
    on_progress: Progress | None,
    checkpoint_bytes: int,
) -> ReceiveReport:
    manifest_cid = reader.roots[0]
    manifest: Manifest | None = None
    if job.position:
        if not job.checked:  # once checked, the spill holds it all: the stream is not read
            _continue(stream, reader, job)
    else:
        job.position = reader.header_end
    if not job.checked:
        since = job.position
        for section in reader:
            if section.cid.bytes in job.items:
                job.duplicates += 1
            elif section.cid == manifest_cid and looks_like_manifest(section.cid, section.data):
                job.add(section.cid, section.data, "block", (), ())  # read below, never stored
            else:
                _stage(job, section)
            job.position, job.index = reader.position, section.index + 1
            if on_progress is not None:
                on_progress("check", reader.position)
            if job.position - since >= checkpoint_bytes:
                job.checkpoint()
                since = job.position
        job.checked = True
        job.checkpoint()
        if on_progress is not None:
            on_progress("checked", job.position)
    item = job.items.get(manifest_cid.bytes)
    if item is not None:
        data = read_staged(job.spill, item.staged)
        if looks_like_manifest(manifest_cid, data):
            manifest = read_manifest(data)
            del job.items[manifest_cid.bytes]
    roots = reader.roots[1:] if manifest is not None else reader.roots
    try:
        require_roots(roots, job.items)
        if manifest is not None and manifest.pins:
            # The exporter writes a pinned file in the part whose manifest pins it.
            absent = [pin for pin in manifest.pins if pin.bytes not in job.items]
            if absent:
                raise BundleError(
                    f"the bundle manifest pins {absent[0]}, which the bundle does not contain"
                )
        if manifest is None or manifest.parts == 1:
            _check_complete(store, job.items)
    except BundleError as exc:
        # A stream that ends exactly between two blocks looks whole; what it lacks says
        # it was cut short. Keep what was checked, to read on from there next time.
        job.checked = False
        raise BundleTruncated(str(exc)) from exc
    sender = None
    if manifest is not None and manifest.have is not None:
        try:
            sender = read_summary(manifest.have)
        except CraftnetError as exc:
            raise BundleError(f"the bundle's have-summary: {exc}") from exc
    pins = list(roots) + list(manifest.pins if manifest is not None else ())
    proofs = _take_proofs(job)
    if manifest is None or manifest.parts == 1:
        new_blocks, new_records, repaired, cids = commit_staged(
            store, job.spill, {k: v.staged for k, v in job.items.items()}, pins
        )
        held = 0
        seen: tuple[int, ...] = (1,) if manifest is not None else ()
    else:
        new_blocks, new_records, repaired, cids, held, seen = _commit_part(
            store, job, manifest, pins, now
        )
    if proofs:
        index_proof_blocks(store, proofs)
    if on_progress is not None:
        on_progress("commit", new_blocks)
    still, exact = None, True
    if sender is not None:
        PeerStates(store).record(sender, "bundle", now)
        with store.read() as txn:
            diff = difference(sender, ItemSet.read(txn, sender.salt))
        still, exact = diff.theirs, diff.exact
    records = sum(item.staged.kind != "block" for item in job.items.values())
    return ReceiveReport(
        roots=reader.roots,
        blocks=job.index,
        bytes=job.position,
        records=records,
        new_blocks=new_blocks,
        new_records=new_records,
        duplicates=job.duplicates,
        repaired=repaired,
        resumed_at=job.resumed_at,
        manifest=manifest,
        sender=sender,
        still_missing=still,
        still_missing_exact=exact,
        held=held,
        parts_seen=seen,
        record_cids=cids,
    )


def _continue(stream: IO[bytes], reader: CarReader, job: _Job) -> None:
    """Go on from where an interrupted import of this bundle stopped.

    A file is sought to that point. A pipe cannot seek: its blocks up to there are read
    again (each still hashed against its CID by the reader) and must be the blocks the
    journal staged; nothing else is checked again.
    """
    try:
        stream.seek(job.position)
    except (OSError, ValueError):
        pass
    else:
        reader.position, reader.next_index = job.position, job.index
        return
    sections = iter(reader)
    while reader.position < job.position:
        section = next(sections, None)
        if section is None:
            break
        if section.cid.bytes not in job.items:
            raise BundleError(
                f"{section.where()}: this is not the bundle whose interrupted import is "
                "kept (that one had no such block here); import that one again, or drop it "
                "with 'craftnet imports prune --older-than 0'"
            )
    if reader.position < job.position:
        raise BundleTruncated(
            f"the bundle ends at byte {reader.position}, before byte {job.position} where its "
            "interrupted import had got to"
        )
    if reader.position != job.position:
        raise BundleError(
            f"this is not the bundle whose interrupted import is kept (its blocks do not end "
            f"at byte {job.position}); import that one again, or drop it with "
            "'craftnet imports prune --older-than 0'"
        )
    reader.next_index = job.index


def _take_proofs(job: _Job) -> list[bytes]:
    """Witness proofs are evidence about records, not blocks to keep: they go to the
    witness index (once the batches they name are in), never to ``blocks``."""
    proofs: list[bytes] = []
    for key, item in list(job.items.items()):
        if item.staged.kind != "block" or item.staged.cid.codec != DAG_CBOR:
            continue
        data = read_staged(job.spill, item.staged)
        if PROOF_TYPE.encode() in data:
            try:
                value = codec.decode(data, max_size=max(len(data), 1))
            except ArchiveError:
                continue
            if is_proof_block(value):
                proofs.append(data)
                del job.items[key]
    return proofs


def _stage(job: _Job, section: Any) -> None:
    try:
        checked = check_block(section)
    except BundleError:
        raise
    except CraftnetError as exc:
        raise BundleError(f"{section.where()}: {exc}") from exc
    links: tuple[bytes, ...] = ()
    if section.cid.codec == DAG_CBOR:
        value = codec.decode(section.data, max_size=max(len(section.data), 1))
        links = tuple(dict.fromkeys(link.bytes for link in codec.iter_links(value)))
    job.add(section.cid, section.data, checked.kind,
            tuple(c.bytes for c in checked.needs), links)


def _check_complete(store: Store, items: dict[bytes, _Item]) -> None:
    """Every chunk a file node of a whole bundle lists is in the bundle or already here."""
    with store.read() as txn:
        for item in items.values():
            for need in item.needs:
                if need not in items and not txn.has("blocks", need):
                    raise BundleError(
                        f"block {item.staged.cid}: the file lists {Cid.from_bytes(need)}, which "
                        "is neither in the bundle nor in this archive (bundle cut short?)"
                    )


# ---------------------------------------------------------------------- parts


@dataclass(frozen=True, slots=True)
class Held:
    """One ``bundle_held`` value, read."""

    kind: BlockKind
    data: bytes
    held_ms: int | None  # wall-clock ms when first held; None: held before ages were kept


def encode_held(kind: BlockKind, data: bytes, held_ms: int) -> bytes:
    """The ``bundle_held`` value of a block first held at ``held_ms`` (wall-clock ms)."""
    return AGED + _HELD_MS.pack(held_ms) + _KINDS[kind] + data


def held_age(value: bytes) -> int | None:
    """When a held value was first held (wall-clock ms); ``None`` for a value from before
    ages were kept. Raises :class:`BundleError` for a value that is neither."""
    if value[:1] == AGED:
        if len(value) < HELD_HEAD or value[HELD_HEAD - 1 : HELD_HEAD] not in _KIND_OF:
            raise BundleError("a held block's value is unreadable")
        held_ms: int = _HELD_MS.unpack_from(value, 1)[0]
        return held_ms
    if value[:1] not in _KIND_OF:
        raise BundleError("a held block's value is unreadable")
    return None


def decode_held(value: bytes) -> Held:
    """Read a ``bundle_held`` value (either form); :class:`BundleError` if unreadable."""
    held_ms = held_age(value)
    if held_ms is None:
        return Held(_KIND_OF[value[:1]], value[1:], None)
    return Held(_KIND_OF[value[HELD_HEAD - 1 : HELD_HEAD]], value[HELD_HEAD:], held_ms)


def _held_prefix(set_id: bytes) -> bytes:
    return set_id


def _commit_part(
    store: Store, job: _Job, manifest: Manifest, pins: list[Cid], now: int
) -> tuple[int, int, int, tuple[Cid, ...], int, tuple[int, ...]]:
    """Commit what is complete of this part and of what earlier parts left held."""
    prefix = _held_prefix(manifest.set_id)
    now_ms = wall_ms(now)
    first_held: dict[bytes, int] = {}  # when blocks held before were first held
    with store.read() as txn:
        for key, value in txn.iterate(HELD_DB, prefix, prefix_end(prefix)):
            cid = Cid.from_bytes(key[len(prefix) :])
            if cid.bytes not in job.items:
                held = _stage_held(job, cid, value)
                if held.held_ms is not None:
                    first_held[cid.bytes] = held.held_ms
        raw_set = txn.get(SETS_DB, manifest.set_id)
        in_store = {key for key in _all_refs(job.items) if txn.has("blocks", key)}
    seen = set(codec.decode(raw_set)["seen"]) if raw_set else set()
    seen.add(manifest.part)
    last = len(seen) >= manifest.parts
    commit, hold = _partition(job.items, in_store, last)
    committed = set(commit)
    new_blocks, new_records, repaired, cids = commit_staged(
        store,
        job.spill,
        {k: job.items[k].staged for k in commit},
        [pin for pin in pins if pin.bytes in committed],
    )
    hold_data = [(key, job.items[key].staged.kind, read_staged(job.spill, job.items[key].staged))
                 for key in hold]

    def update(txn: WriteTxn) -> None:
        for key in commit:
            txn.delete(HELD_DB, prefix + key)
        for key, kind, data in hold_data:
            # A block held again keeps its first time (one from before ages: from now).
            txn.put(HELD_DB, prefix + key, encode_held(kind, data, first_held.get(key, now_ms)))
        if last and not hold_data:
            txn.delete(SETS_DB, manifest.set_id)
        else:
            state = {"parts": manifest.parts, "seen": sorted(seen), "at": now}
            txn.put(SETS_DB, manifest.set_id, codec.encode(state))

    store.transact(update)
    return new_blocks, new_records, repaired, cids, len(hold), tuple(sorted(seen))


def _stage_held(job: _Job, cid: Cid, value: bytes) -> Held:
    try:
        held = decode_held(value)
    except BundleError:
        raise BundleError(f"a held block of this bundle set ({cid}) is unreadable") from None
    kind, data = held.kind, held.data
    if not cid.verify(data):
        raise BundleError(f"a held block of this bundle set ({cid}) is damaged")
    links: tuple[bytes, ...] = ()
    needs: tuple[bytes, ...] = ()
    if cid.codec == DAG_CBOR:
        value_ = codec.decode(data, max_size=max(len(data), 1))
        links = tuple(dict.fromkeys(link.bytes for link in codec.iter_links(value_)))
        if isinstance(value_, dict) and value_.get("type") in ("file", "file-part"):
            needs = links
    job.add(cid, data, kind, needs, links)
    return held


def _all_refs(items: dict[bytes, _Item]) -> set[bytes]:
    refs: set[bytes] = set()
    for item in items.values():
        refs.update(item.links)
    return refs


def _partition(
    items: dict[bytes, _Item], in_store: set[bytes], last: bool
) -> tuple[list[bytes], list[bytes]]:
    """Split the staged blocks of a part (and held ones) into commit-now and hold.

    A block is complete when everything it needs is here already or is staged and
    complete itself. A record is committed unless it links a staged block that is not
    complete; a plain block is committed when a committed block links it (or, once
    every part is in, when it is complete); anything else waits for another part.
    """
    complete: dict[bytes, bool] = {}

    def is_complete(key: bytes) -> bool:
        # Iterative post-order: a block is judged after everything it needs.
        stack: list[tuple[bytes, bool]] = [(key, False)]
        entered: set[bytes] = set()
        while stack:
            current, done = stack.pop()
            if done:
                complete[current] = all(
                    need in in_store or complete.get(need, False)
                    for need in items[current].needs
                )
                continue
            if current in complete or current in entered:
                continue
            entered.add(current)
            stack.append((current, True))
            stack.extend((n, False) for n in items[current].needs if n in items)
        return complete[key]

    commit: set[bytes] = set()
    stack: list[bytes] = []
    for key, item in items.items():
        if item.staged.kind == "block":
            continue
        if all(is_complete(link) for link in item.links if link in items):
            commit.add(key)
            stack.extend(link for link in item.links if link in items)
    while stack:
        key = stack.pop()
        if key in commit or items[key].staged.kind != "block":
            continue
        commit.add(key)
        stack.extend(link for link in items[key].links if link in items)
    if last:
        commit.update(k for k in items if items[k].staged.kind == "block" and is_complete(k))
    hold = [key for key in items if key not in commit]
    return list(commit), hold
