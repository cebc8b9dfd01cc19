"""Preparing a USB bundle for another hub from the web, as ``craftnet export --for`` does.

What the hub knows of other hubs (their last have-summaries, :mod:`craftnet.archive.
peer_state`) decides what a bundle carries: only what that hub lacks, or, for a hub
nothing is known of, the whole archive. A *plan* (:mod:`craftnet.archive.delta`) gives
the size before anything is written; the bundle is then written as one file, or split
into numbered parts for sticks of a given size, into the operator's *export folder*, or
sent as a download.

Every bundle for a hub carries this hub's own signed have-summary, so the other hub
learns what this one holds. That needs the hub's key: a key stored without passphrase
is used as it is; an encrypted one is unlocked once by the operator and then kept in
this process's memory until the hub stops (the networking part holds it decrypted
anyway when the hub is in an alliance).

Paths are the operator's, within limits set on the hub machine itself: a bundle goes
into ``bundles/`` in the hub's home or into a folder that config.toml's
``[bundles] export_folders`` names (where USB sticks are mounted, say ``/media``), or any
folder inside those, never elsewhere (``..`` and symbolic links are judged by where they
lead), and an existing file is replaced only when asked to.
"""

from __future__ import annotations

import errno
import os
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from craftnet.archive import delta, hlc
from craftnet.archive.have import build_summary
from craftnet.archive.hlc import HybridClock
from craftnet.archive.peer_state import PeerState, PeerStates
from craftnet.archive.store import Store
from craftnet.identity.keys import PrivateKey
from craftnet.identity.keystore import ARTISAN_PREFIX, Keystore
from craftnet.node.config import HubConfig
from craftnet.node.web.errors import ApiError

DEFAULT_FOLDER: Final = "bundles"  # in the hub's home, when the operator chose none
# The forms the OpenAPI document gives as patterns, matched whole (one source for both).
# A part size: at least 4 MiB (delta.MIN_PART_SIZE), as 4M..., 1G..., 1T... or bytes.
SIZE_PATTERN: Final = (
    r"^(?:(?:[4-9]|[1-9][0-9]{1,8})M|[1-9][0-9]{0,8}[GT]|[5-9][0-9]{6}|[1-9][0-9]{7,15})$"
)
# A folder on the hub machine, absolute; whether bundles may go there is decided by
# :func:`target` (inside an export folder, wherever '..' or links lead).
FOLDER_PATTERN: Final = r"^/[^\x00]*$"
MAX_FOLDER: Final = 1024
BUNDLE_NAME_PATTERN: Final = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,95}\.car$"
_SIZE: Final = re.compile(SIZE_PATTERN)
_FOLDER: Final = re.compile(FOLDER_PATTERN)
_BUNDLE_NAME: Final = re.compile(BUNDLE_NAME_PATTERN)
_UNITS: Final = {"": 1, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

KeyState = Literal["unlocked", "locked", "missing"]


def parse_size(text: str) -> int:
    """A part size from ``4G``, ``700M``, ``1T`` or a number of bytes; at least 4 MiB."""
    if _SIZE.fullmatch(text) is None:
        raise ValueError(
            f"{text[:40]!r} is not a part size like 700M, 4G or 1T (at least 4M, or "
            "5000000 bytes)"
        )
    unit = text[-1] if text[-1] in _UNITS else ""
    return int(text[: len(text) - len(unit)]) * _UNITS[unit]


def human_size(size: int) -> str:
    """Bytes as people read them on a stick's label: 512 bytes, 3.4 MB, 12.1 GB."""
    if size < 1000:
        return f"{size} bytes"
    for unit in ("kB", "MB", "GB", "TB"):
        size_f = size / 1000 ** ("kMGT".index(unit[0]) + 1)
        if size_f < 1000 or unit == "TB":
            return f"{size_f:.1f} {unit}"
    raise AssertionError("unreachable")


def _iso(ts: int) -> str:
    """An HLC time as a UTC date and time people read."""
    seconds = hlc.wall_ms(ts) / 1000
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def hub_view(state: PeerState) -> dict[str, Any]:
    """What this hub knows of one other hub, for the API and the page."""
    return {
        "did": state.did,
        "records": state.summary.count,
        "as_of": _iso(state.summary.at),
        "via": state.via,
        "recorded": _iso(state.recorded) if state.recorded else None,
    }


def known_hubs(store: Store) -> list[dict[str, Any]]:
    """Every other hub this one knows something about, the most recently heard of first."""
    states = sorted(PeerStates(store).all(), key=lambda s: -s.summary.at)
    return [hub_view(state) for state in states]


@dataclass(slots=True)
class Prepared:
    """A bundle planned for one hub: what goes in and how it splits, nothing written."""

    for_did: str
    state: PeerState | None
    plan: delta.Plan
    spans: list[tuple[int, int]]
    max_size: int | None

    def as_dict(self) -> dict[str, Any]:
        """Sizes and counts before writing (JSON-friendly)."""
        parts = [
            {
                "part": number,
                "blocks": end - start,
                "bytes": sum(delta.section_size(s) for _, s in self.plan.blocks[start:end]),
            }
            for number, (start, end) in enumerate(self.spans, 1)
        ]
        out: dict[str, Any] = {
            "for": self.for_did,
            "known": self.state is not None,
            **self.plan.as_dict(),
            "max_size": self.max_size,
            "parts": parts,
            # Each file also holds its header and this hub's have-summary (about 60 KB).
            "overhead_per_part": delta.PART_OVERHEAD,
        }
        if self.state is not None:
            out["hub"] = hub_view(self.state)
        return out


def prepare(store: Store, for_did: str, max_size: int | None) -> Prepared:
    """Plan the bundle for ``for_did``: the delta if we know what it holds, else all."""
    state = PeerStates(store).get(for_did)
    with store.read() as txn:
        plan = delta.plan_delta(txn, state.summary) if state else delta.plan_all(txn)
    return Prepared(for_did, state, plan, delta.split(plan, max_size), max_size)


def default_name(for_did: str, now: datetime | None = None) -> str:
    """A file name that says which hub a bundle is for and when it was made."""
    when = (now or datetime.now(UTC)).strftime("%Y%m%d")
    return f"to-{for_did[-8:]}-{when}.car"


class HubSigner:
    """The hub's own key, to sign the have-summary each bundle carries."""

    def __init__(self, keystore: Keystore, hub_did: str | None) -> None:
        self._keystore = keystore
        self._did = hub_did
        self._key: PrivateKey | None = None
        self._lock = threading.Lock()

    def _name(self) -> str | None:
        if self._did is None:
            return None
        for info in self._keystore.list():
            if info.did == self._did and not info.name.startswith(ARTISAN_PREFIX):
                return info.name
        return None

    def state(self) -> KeyState:
        """Unlocked (ready to sign), locked (needs the passphrase once) or missing."""
        if self._key is not None:
            return "unlocked"
        name = self._name()
        if name is None:
            return "missing"
        return "locked" if self._keystore.info(name).encrypted else "unlocked"

    def key(self, passphrase: str | None = None) -> PrivateKey | None:
        """The key (None if this hub has none); unlocks it with ``passphrase`` when needed.

        :class:`~craftnet.identity.errors.WrongPassphrase` for a wrong one; an
        :class:`ApiError` when the key is encrypted and no passphrase was given.
        """
        with self._lock:
            if self._key is not None:
                return self._key
            name = self._name()
            if name is None:
                return None
            if self._keystore.info(name).encrypted and passphrase is None:
                raise ApiError(
                    409,
                    "hub-key-locked",
                    "the hub's key is protected by a passphrase: unlock it once with "
                    "the hub key's passphrase",
                )
            self._key = self._keystore.load(name, passphrase)
            return self._key


def export_folders(config: HubConfig) -> list[Path]:
    """The folders bundles may go into (and any folder inside them): ``bundles/`` in the
    hub's home, made when first needed, then those config.toml names."""
    home = config.home / DEFAULT_FOLDER
    home.mkdir(mode=0o700, exist_ok=True)
    return [home, *config.export_folders]


def sticks(config: HubConfig, limit: int = 20) -> list[str]:
    """Mounted file systems (USB sticks, most likely) up to two levels inside the configured
    export folders, e.g. ``/media/usb0`` or ``/media/ana/KILN``."""
    found: list[str] = []
    level = [str(p) for p in config.export_folders]
    for _ in range(2):
        below: list[str] = []
        for folder in level:
            try:
                with os.scandir(folder) as entries:
                    paths = sorted(e.path for e in entries if e.is_dir(follow_symlinks=False))
            except OSError:
                continue
            for path in paths[:200]:
                (found if os.path.ismount(path) else below).append(path)
        level = below
    return found[:limit]


def target(config: HubConfig, folder: str | None, name: str) -> Path:
    """Where a bundle named ``name`` goes: ``folder`` (made if missing), which must be one
    of :func:`export_folders` or inside one; by default ``bundles/`` in the hub's home."""
    if not _BUNDLE_NAME.fullmatch(name):
        raise ApiError(
            422, "bad-file-name", "a bundle's name is letters, digits, '.', '-', '_' and ends .car"
        )
    allowed = [root.resolve() for root in export_folders(config)]
    if folder is None:
        where = allowed[0]
    else:
        if len(folder) > MAX_FOLDER or not _FOLDER.fullmatch(folder):
            raise ApiError(422, "bad-folder", "the folder is an absolute path, like /media/usb")
        # Resolved first: '..' and symbolic links are judged by where they lead.
        try:
            where = Path(folder).resolve()
        except (OSError, RuntimeError) as exc:  # RuntimeError: a loop of symbolic links
            raise ApiError(409, "cannot-write", f"cannot follow {folder[:200]}: {exc}") from None
        if not any(where.is_relative_to(root) for root in allowed):
            raise ApiError(
                403,
                "outside-export-folders",
                f"bundles may be written only inside {', '.join(map(str, allowed))} "
                "(config.toml [bundles] export_folders names more)",
            )
    try:
        where.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ApiError(409, "cannot-write", f"{where} is a file, not a folder") from None
    except OSError as exc:
        message = f"cannot make the folder {where}: {exc.strerror}"
        raise ApiError(409, "cannot-write", message) from None
    return where / name


def write(
    store: Store,
    prepared: Prepared,
    out: Path,
    key: PrivateKey | None,
    *,
    replace: bool = False,
) -> list[delta.WrittenPart]:
    """Write the planned bundle (or its parts) to ``out``; 409 if a file is in the way."""
    count = len(prepared.spans)
    paths = [delta.part_path(out, n, count) for n in range(1, count + 1)]
    taken = [p for p in paths if p.exists() or p.is_symlink()]
    if taken and not replace:
        raise ApiError(
            409, "exists", f"{taken[0].name} is already there; choose another name or replace it"
        )
    if any(p.is_symlink() or (p.exists() and not p.is_file()) for p in taken):
        raise ApiError(409, "exists", f"{taken[0].name} is not a plain file; it is left alone")
    with store.read() as txn:
        mine = build_summary(txn, key, HybridClock().tick()) if key is not None else None
        try:
            return delta.write_bundles(
                txn, prepared.plan, out, have=mine, max_size=prepared.max_size
            )
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise ApiError(507, "no-space", f"{out.parent} is full; use a bigger stick, "
                               "or split the bundle into smaller parts") from None
            raise ApiError(409, "cannot-write", f"cannot write {out}: {exc.strerror}") from None
