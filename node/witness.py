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
from typing import Final

import trio

from craftnet.archive.hlc import pack
from craftnet.archive.records import Record
from craftnet.archive.store import Store
from craftnet.archive.witness import index_batches, own_certificates, witness_pending
from craftnet.identity.keys import PrivateKey

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
