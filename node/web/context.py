"""What the HTTP app needs from the node, gathered in one small object.

The web app never opens anything itself: ``craftnet serve`` (or a test) builds a
:class:`NodeContext` from the hub's store, keystore and config and hands it over. The
peer-to-peer part of the node reports through :class:`PeersProvider`; until networking
exists, :class:`NetworkingDisabled` says so plainly instead of inventing peers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from craftnet.archive import index
from craftnet.archive.crdt.documents import Documents
from craftnet.archive.store import Store
from craftnet.identity.keystore import Keystore
from craftnet.node.config import HubConfig
from craftnet.node.web.auth import Gate
from craftnet.node.web.bundles import HubSigner
from craftnet.node.web.policy import Policy
from craftnet.node.web.ratelimit import WalkInLimit
from craftnet.node.web.replies import Replies
from craftnet.node.web.search import SearchIndex


class PeersProvider(Protocol):
    """Where the peers/sync page gets its facts from."""

    def status(self) -> dict[str, Any]:
        """``{enabled, state, message, peers: [...], sync: {...} | None}``."""
        ...


class NetworkingDisabled:
    """The status of a node built without its networking part (this version)."""

    def status(self) -> dict[str, Any]:
        """Not connected: say why, list no peers."""
        return {
            "enabled": False,
            "state": "not connected",
            "message": "networking not enabled in this version",
            "peers": [],
            "sync": None,
        }


@dataclass
class NodeContext:
    """The hub as the web app sees it."""

    config: HubConfig
    store: Store
    keystore: Keystore
    gate: Gate
    documents: Documents
    search: SearchIndex
    peers: PeersProvider = field(default_factory=NetworkingDisabled)
    hub_did: str | None = None
    demo: bool = False
    policy: Policy = field(default_factory=lambda: Policy(None))
    published: Replies = field(default_factory=Replies)
    walk_ins: WalkInLimit = field(default_factory=WalkInLimit)
    # One bundle is written at a time (they are big; two would fight for the disk).
    exporting: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _counts: tuple[int, dict[str, int]] | None = field(default=None, repr=False)
    _signer: HubSigner | None = field(default=None, repr=False)

    @classmethod
    def open(
        cls,
        config: HubConfig,
        store: Store,
        keystore: Keystore,
        gate: Gate,
        *,
        peers: PeersProvider | None = None,
        hub_did: str | None = None,
        demo: bool = False,
    ) -> NodeContext:
        """Build the context, opening the search index (caught up by the app at start)."""
        documents = Documents(store)
        search = SearchIndex(config.search_path, store, documents)
        return cls(
            config,
            store,
            keystore,
            gate,
            documents,
            search,
            peers or NetworkingDisabled(),
            hub_did,
            demo,
            Policy.load(config.home, default_walk_in=demo),
        )

    def type_counts(self) -> dict[str, int]:
        """Records per type; recounted only when the store's record count changes."""
        with self.store.read() as txn:
            total = index.count_records(txn)
            if self._counts is None or self._counts[0] != total:
                self._counts = (total, index.counts_by_type(txn))
        return dict(self._counts[1])

    @property
    def signer(self) -> HubSigner:
        """The hub's own key, for the have-summaries its bundles carry."""
        if self._signer is None:
            self._signer = HubSigner(self.keystore, self.hub_did)
        return self._signer

    def close(self) -> None:
        """Close the search index (the store belongs to whoever opened it)."""
        self.search.close()
