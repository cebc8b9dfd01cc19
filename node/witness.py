"""The hub's witness: every so often, sign one batch over the records that arrived.

A running hub (:class:`craftnet.node.hub.Hub`) starts :meth:`WitnessService.run` next
to its networking; ``craftnet witness flush`` calls :meth:`WitnessService.flush` once.
Each flush signs witness batches (:mod:`craftnet.archive.witness`) for every record the
hub holds and has not witnessed yet, with the hub's membership certificates linked,
so one signature per hub per interval covers whatever arrived meanwhile, and indexes
the batches other hubs sent. The work runs in a worker thread: LMDB writes block.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

import trio

from craftnet.archive.alliance import load_membership
from craftnet.archive.cid import Cid
from craftnet.archive.hlc import pack, wall_ms
from craftnet.archive.records import Record
from craftnet.archive.store import Store
from craftnet.archive.witness import (
    MembershipOf,
    Witnessed,
    index_batches,
    own_certificates,
    verify_witnesses,
    witness_pending,
)
from craftnet.identity.errors import IdentityError
from craftnet.identity.keys import PrivateKey
from craftnet.identity.membership import Membership

log = logging.getLogger("craftnet.witness")
DEFAULT_INTERVAL: Final = 600.0  # seconds between batches while serving


class WitnessService:
    """Signs witness batches for one hub's store with its key."""

    def __init__(self, store: Store, key: PrivateKey, interval: float = DEFAULT_INTERVAL) -> None:
        self.store = store
        self.key = key
        self.interval = interval
        self.batches = 0

    def flush(self) -> list[Record]:
        """Witness everything not witnessed yet, now; returns the batches signed."""
        with self.store.read() as txn:
            certificates = own_certificates(txn, self.key.did)
        now = pack(time.time_ns() // 1_000_000)
        made = witness_pending(self.store, self.key, now, certificates)
        index_batches(self.store)
        self.batches += len(made)
        return made

    async def run(self) -> None:
        """Flush every ``interval`` seconds until cancelled."""
        while True:
            await trio.sleep(self.interval)
            made = await trio.to_thread.run_sync(self.flush)
            if made:
                log.info("witnessed %d record(s) in %d batch(es)",
                         sum(r.body["count"] for r in made), len(made))


def membership_of(store: Store) -> MembershipOf:
    """An alliance's membership as this hub's store knows it (None if it lacks the genesis)."""
    cache: dict[str, Membership | None] = {}

    def lookup(alliance: str) -> Membership | None:
        if alliance not in cache:
            try:
                cache[alliance] = load_membership(store, alliance)
            except IdentityError:
                cache[alliance] = None
        return cache[alliance]

    return lookup


def _day(ts: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(wall_ms(ts) // 1000))


def witnessed_line(found: Witnessed) -> str:
    """"witnessed by 5 hubs of 3 organisations, earliest 2026-12-04" (or why not)."""
    if not found.valid or found.earliest is None:
        return "not witnessed yet" if not found.witnesses else "no witness checks out"
    hubs = f"{found.hubs} hub{'s' if found.hubs != 1 else ''}"
    orgs = f"{found.organisations} organisation{'s' if found.organisations != 1 else ''}"
    line = f"witnessed by {hubs} of {orgs}, earliest {_day(found.earliest)}"
    two = found.agreed_by(2)
    if two is not None:
        line += f" (two organisations by {_day(two)})"
    return line


def check_witnesses(store: Store, cid: Cid) -> Witnessed:
    """Every witness of ``cid`` this hub knows of, checked offline."""
    return verify_witnesses(store, cid, membership_of(store))


def witnessed_json(store: Store, cid: Cid) -> dict[str, Any]:
    """The witnesses of a record for the API and ``craftnet show --json``."""
    found = check_witnesses(store, cid)
    return {**found.as_dict(), "summary": witnessed_line(found)}
