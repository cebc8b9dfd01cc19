"""The hub's networking lifecycle: a libp2p host, the sync engine and its driver, membership.

``Hub(home, store, key, settings)`` is the peer-to-peer half of a running node.

* ``await hub.run()`` in a trio program (tests, ``craftnet sync``, the ``python -m
  craftnet.node.hub`` runner) runs until cancelled;
* ``hub.start_thread()`` runs it in a thread of its own for ``craftnet serve``, whose
  aiohttp loop owns the main thread, and returns a handle with ``stop()``;
* ``hub.status()`` is the web app's ``PeersProvider``: peers, sync progress, alliance.

On the way out (cancellation, SIGINT/SIGTERM) the driver writes the want list; every
block was already written in whole transactions, so a stop loses nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import trio

from craftnet.archive.alliance import (
    CERT_TYPE,
    REVOKE_TYPE,
    SUCCESSION_TYPE,
    AllianceView,
    hlc_now,
    member_labels,
)
from craftnet.archive.blocks import StoreBlockSource
from craftnet.archive.index import count_records
from craftnet.archive.recon_index import StoreItems
from craftnet.archive.store import Store
from craftnet.identity.keys import PrivateKey
from craftnet.identity.membership import Membership
from craftnet.node.p2p.driver import Driver
from craftnet.node.p2p.libp2p_net import Libp2pNetwork, route_libp2p_logs, topic_for
from craftnet.node.p2p.settings import NetworkSettings, SettingsError, transport_seed
from craftnet.node.witness import DEFAULT_INTERVAL, WitnessService
from craftnet.protocol.engine import EngineConfig, SyncEngine
from craftnet.protocol.events import PeerId
from craftnet.startup import freeze_start_up, own_process

log = logging.getLogger("craftnet.hub")
MEMBERSHIP_CHECK: Final = 1.0


def _membership_marker(store: Store) -> tuple[int, ...]:
    with store.read() as txn:
        return tuple(
            count_records(txn, type=rtype)
            for rtype in (CERT_TYPE, REVOKE_TYPE, SUCCESSION_TYPE, "revocation")
        )


class Hub:
    """One hub's presence on its alliance's network."""

    def __init__(
        self,
        home: Path,
        store: Store,
        key: PrivateKey,
        settings: NetworkSettings,
        *,
        engine_config: EngineConfig | None = None,
        rng: random.Random | None = None,
        transport_key: bytes | None = None,
        witness_interval: float | None = DEFAULT_INTERVAL,
    ) -> None:
        if not settings.alliance:
            raise SettingsError(
                "this hub belongs to no alliance yet: run 'craftnet alliance create NAME' "
                "or 'craftnet alliance join TOKEN' first"
            )
        self.home = home
        self.store = store
        self.key = key
        self.settings = settings
        self.alliance: str = settings.alliance
        self.view = AllianceView(store, self.alliance, key.did)
        self._marker = _membership_marker(store)
        # Members' names and organisations from their certificates, for the peers list.
        self._labels = member_labels(store, self.alliance)
        # transport_key: a one-off peer identity (craftnet sync next to a running serve).
        self.network = Libp2pNetwork(
            transport_key or transport_seed(home),
            topic_for(self.alliance),
            max_peers=settings.max_peers,
        )
        base = engine_config or EngineConfig(
            alliance=self.alliance, reconcile_interval=float(settings.reconcile_interval)
        )
        # network.toml's max_peers is the engine's: it refuses inbound peers beyond it.
        # A hub records what each peer holds after a sync (PeerSynced), for delta bundles.
        config = replace(
            base,
            policy=replace(base.policy, max_peers=settings.max_peers),
            report_synced=True,
        )
        self.engine = SyncEngine(
            key=key,
            peer_id=self.network.peer_id,
            items=StoreItems(store),
            blocks=StoreBlockSource(store),
            config=config,
            rng=rng or random.Random(),
            members=self.view,
        )
        self.driver = Driver(
            engine=self.engine, store=store, network=self.network, gossip=self.network
        )
        # Signs witness batches while the hub runs (None: not at all).
        self.witness = (
            WitnessService(store, key, witness_interval) if witness_interval is not None else None
        )
        self.addrs: list[str] = []
        self.state = "stopped"
        self.error: str | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None

    @property
    def peer_id(self) -> PeerId:
        """This hub's libp2p peer id."""
        return self.network.peer_id

    @property
    def membership(self) -> Membership:
        """The alliance's membership as this hub knows it."""
        return self.view.membership

    def is_member(self, did: str) -> bool:
        """Is ``did`` a member of our alliance now?"""
        return self.view.is_member(did)

    # ------------------------------------------------------------------ running

    async def run(
        self,
        *,
        task_status: Any = trio.TASK_STATUS_IGNORED,
        on_ready: Callable[[Hub], None] | None = None,
    ) -> None:
        """Listen, dial the bootstrap hubs and sync until cancelled."""
        route_libp2p_logs()
        self._token = trio.lowlevel.current_trio_token()
        self.state = "starting"
        with trio.CancelScope() as scope:
            self._cancel = scope
            try:
                async with (
                    self.network.running(list(self.settings.listen)),
                    trio.open_nursery() as nursery,
                ):
                    await nursery.start(self.driver.run)
                    self.addrs = self.network.listen_addrs()
                    for addr in self.settings.bootstrap:
                        self.driver.dial(addr)
                    if self.settings.mdns:
                        from craftnet.node.p2p.mdns import start_mdns

                        start_mdns(self, nursery)
                    nursery.start_soon(self._watch_membership)
                    if self.witness is not None:
                        nursery.start_soon(self.witness.run)
                    self.state = "running"
                    log.info("hub %s listening on %s", self.peer_id, ", ".join(self.addrs))
                    task_status.started(self)
                    if on_ready is not None:
                        on_ready(self)
                    await trio.sleep_forever()
            finally:
                self.state = "stopped"
                self._cancel = None

    def stop(self) -> None:
        """Stop ``run`` (from the trio thread)."""
        if self._cancel is not None:
            self._cancel.cancel()

    async def _watch_membership(self) -> None:
        while True:
            await trio.sleep(MEMBERSHIP_CHECK)
            marker = _membership_marker(self.store)
            if marker != self._marker:
                self._marker = marker
                self.view.reload()
                self._labels = member_labels(self.store, self.alliance)
                log.info(
                    "alliance membership changed: %d members",
                    len(self.membership.members(hlc_now())),
                )
            # Certificates expire with time too, not only when records arrive: the
            # engine cuts off whoever is no longer a member, and takes held announcements
            # of whoever now is.
            self.driver.membership_changed()

    def start_thread(self, on_ready: Callable[[Hub], None] | None = None) -> HubThread:
        """Run the hub in a thread of its own (next to an asyncio web server)."""
        handle = HubThread(self)
        handle.start(on_ready)
        return handle

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """The peers/sync status the web app shows (``PeersProvider``)."""
        peers = self.driver.peers()
        for peer in peers:
            # Who runs the peer's hub, as its certificate says (not present: not stated).
            peer.update(self._labels.get(str(peer["did"]), {}))
        last = self.driver.reconciles[-1] if self.driver.reconciles else None
        return {
            "enabled": True,
            "state": self.state
            if self.state != "running"
            else (f"connected to {sum(p['state'] == 'ready' for p in peers)} hub(s)"),
            "message": self.error or f"alliance {self.membership.genesis.name}",
            "alliance": {"id": self.alliance, "name": self.membership.genesis.name},
            "peer_id": str(self.peer_id),
            "addresses": list(self.addrs),
            "peers": peers,
            "sync": {
                "wanted_blocks": self.driver.wanted(),
                "stored_blocks": self.driver.stored_blocks,
                "stored_records": self.driver.stored_records,
                "last_reconcile": None
                if last is None
                else {
                    "peer": last.peer,
                    "we_lacked": last.we_lacked,
                    "they_lacked": last.they_lacked,
                    "round_trips": last.round_trips,
                    "bytes": last.bytes_sent + last.bytes_received,
                },
            },
        }


@dataclass
class HubThread:
    """A hub running in its own thread; ``stop()`` ends it and waits."""

    hub: Hub
    thread: threading.Thread | None = None
    failure: BaseException | None = None

    def start(self, on_ready: Callable[[Hub], None] | None = None) -> None:
        """Start the thread; returns once the hub listens (or failed to)."""
        ready = threading.Event()

        def ready_cb(hub: Hub) -> None:
            ready.set()
            if on_ready is not None:
                on_ready(hub)

        def main() -> None:
            try:
                trio.run(lambda: self.hub.run(on_ready=ready_cb))
            except BaseException as exc:  # reported by status() and stop()
                self.failure = exc
                self.hub.error = f"networking stopped: {exc}"
                log.exception("the hub's networking failed")
            finally:
                ready.set()

        self.thread = threading.Thread(target=main, name="craftnet-p2p", daemon=True)
        self.thread.start()
        ready.wait(30)

    def status(self) -> dict[str, Any]:
        """The hub's status, read in the hub's own thread (safe from the web server's)."""
        token = self.hub._token
        if token is not None and self.thread is not None and self.thread.is_alive():
            with contextlib.suppress(trio.RunFinishedError):
                status: dict[str, Any] = trio.from_thread.run_sync(
                    self.hub.status, trio_token=token
                )
                return status
        return self.hub.status()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the hub and wait for its thread (the want list is saved on the way)."""
        token = self.hub._token
        if token is not None and self.thread is not None and self.thread.is_alive():
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self.hub.stop, trio_token=token)
        if self.thread is not None:
            self.thread.join(timeout)


# ---------------------------------------------------------------------- standalone


async def run_until_signalled(hub: Hub, on_ready: Callable[[Hub], None] | None = None) -> None:
    """Run ``hub`` until SIGINT or SIGTERM, then stop cleanly."""
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            await nursery.start(
                lambda task_status: hub.run(task_status=task_status, on_ready=on_ready)
            )
            async for signum in signals:
                log.info("signal %d: stopping", signum)
                nursery.cancel_scope.cancel()
                break


def main(argv: list[str] | None = None) -> int:
    """``python -m craftnet.node.hub --home DIR``: the networking part alone."""
    from craftnet.archive.lmdb_store import LmdbStore
    from craftnet.identity.keystore import Keystore
    from craftnet.node.p2p.settings import load_settings

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--listen", action="append", default=[])
    parser.add_argument("--bootstrap", action="append", default=[])
    parser.add_argument("--no-mdns", action="store_true")
    parser.add_argument("--reconcile-interval", type=float, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("CRAFTNET_LOG", "WARNING"), stream=sys.stderr)
    settings = load_settings(args.home).with_options(
        listen=tuple(args.listen),
        bootstrap=tuple(args.bootstrap),
        mdns=False if args.no_mdns else None,
    )
    keystore = Keystore.for_home(args.home)
    name_file = args.home / "hub-key"
    name = name_file.read_text().strip() if name_file.exists() else "hub"
    passphrase = os.environ.get("CRAFTNET_PASSPHRASE")
    key = keystore.load(name, passphrase if keystore.info(name).encrypted else None)
    with LmdbStore(args.home / "store") as store:
        config = None
        if args.reconcile_interval is not None:
            assert settings.alliance is not None
            config = EngineConfig(
                alliance=settings.alliance, reconcile_interval=args.reconcile_interval
            )
        hub = Hub(args.home, store, key, settings, engine_config=config)

        def ready(h: Hub) -> None:
            print("listening " + " ".join(h.addrs), flush=True)

        # A hub runs for days: its start-up objects need no more GC walks (see there).
        freeze_start_up(collect=True)
        trio.run(run_until_signalled, hub, ready)
    return 0


class NotInAlliance:
    """The peers/sync status of a hub that has joined no alliance yet."""

    def status(self) -> dict[str, Any]:
        """Not connected, and what to do about it."""
        return {
            "enabled": False,
            "state": "not in an alliance",
            "message": "run 'craftnet alliance create NAME' or 'craftnet alliance join TOKEN', "
            "then restart 'craftnet serve'",
            "peers": [],
            "sync": None,
        }


if __name__ == "__main__":
    own_process()  # the hub is this process: it may freeze its start-up objects
    sys.exit(main())
