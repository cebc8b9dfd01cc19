"""What this hub knows of what other hubs hold: their latest have-summaries.

Every delta bundle carries its sender's signed have-summary (:mod:`craftnet.archive.have`),
and ``craftnet have`` writes one on its own; importing either records it here, per hub,
keeping the newest (by the summary's own ``at``). ``craftnet export --for DID`` then
sends only what that summary says the hub lacks.

After a network sync the node knows more than any summary it was sent: the peer now
holds at least everything this hub held when the reconcile ended. :meth:`PeerStates.
record_synced` stores *our own* summary at that moment as the peer's (marked ``via:
"sync"``), which is exactly that lower bound. The node's driver (``node/p2p``) calls
it when the sync engine reports ``PeerSynced``: a reconcile with the peer ended, the
peer has asked us for every record it lacked, and what we lacked is stored here. Then
the next stick for that hub carries only what arrived here after the sync.

Knowledge may be wrong: the hub may have lost data since (a restored backup), or
another hub's stick may have brought it more. Too optimistic a belief makes a bundle
leave out records the hub lacks; the hub then sees, from the summary inside the
bundle, that we hold records it still lacks (the import report says how many), and its
next bundle to us carries its fresh summary, so our next bundle brings them. Too
pessimistic a belief only costs bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from craftnet.archive import codec
from craftnet.archive.errors import ArchiveError
from craftnet.archive.have import HaveSummary, SummaryError, build_summary, read_summary
from craftnet.archive.store import ReadTxn, Store, WriteTxn
from craftnet.identity.keys import PrivateKey

DB: Final = "peer_state"
Via = Literal["bundle", "have-file", "sync"]
VIAS: Final = ("bundle", "have-file", "sync")


@dataclass(frozen=True, slots=True)
class PeerState:
    """The newest summary of one hub's records that this hub holds, and how it came."""

    did: str
    summary: HaveSummary
    via: str
    recorded: int  # HLC time it was recorded here

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view."""
        return {
            "did": self.did,
            "via": self.via,
            "recorded": self.recorded,
            **{k: v for k, v in self.summary.as_dict().items() if k != "hub"},
        }


class PeerStates:
    """Per-hub knowledge in the store's ``peer_state`` database."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, summary: HaveSummary, via: Via, now: int) -> bool:
        """Keep ``summary`` as what its hub holds, unless a newer one is already here.

        ``summary`` must have been read with :func:`~craftnet.archive.have.read_summary`
        (so its signature was checked) or built by this hub. Returns whether it was kept.
        """
        if via not in VIAS:
            raise ArchiveError(f"unknown source of a peer state: {via!r}")

        def write(txn: WriteTxn) -> bool:
            known = self._get(txn, summary.hub)
            if known is not None and known.summary.at >= summary.at:
                return False
            value = {"have": summary.raw, "via": via, "recorded": now}
            txn.put(DB, summary.hub.encode(), codec.encode(value))
            return True

        return self.store.transact(write)

    def record_synced(self, did: str, key: PrivateKey, now: int) -> HaveSummary:
        """After a network sync: ``did`` holds at least what we hold now (see module doc).

        The summary is built and signed with our own ``key``, stored under ``did``.
        """
        with self.store.read() as txn:
            mine = build_summary(txn, key, now)

        def write(txn: WriteTxn) -> None:
            value = {"have": mine.raw, "via": "sync", "recorded": now, "for": did}
            txn.put(DB, did.encode(), codec.encode(value))

        self.store.transact(write)
        return mine

    def get(self, did: str) -> PeerState | None:
        """What we know ``did`` holds, or None."""
        with self.store.read() as txn:
            return self._get(txn, did)

    def all(self) -> list[PeerState]:
        """Every hub we know something about, by did."""
        out: list[PeerState] = []
        with self.store.read() as txn:
            for key, _ in txn.iterate(DB):
                state = self._get(txn, key.decode())
                if state is not None:
                    out.append(state)
        return out

    def _get(self, txn: ReadTxn, did: str) -> PeerState | None:
        raw = txn.get(DB, did.encode())
        if raw is None:
            return None
        try:
            value = codec.decode(raw)
            summary = read_summary(value["have"])
        except (ArchiveError, KeyError, TypeError) as exc:
            raise SummaryError(f"the stored state of {did} is unreadable: {exc}") from exc
        return PeerState(did, summary, str(value.get("via", "?")), int(value.get("recorded", 0)))
