"""Real hubs on 127.0.0.1 for the networking tests: LMDB stores in tmp dirs, real keys,
real libp2p hosts on random ports, one alliance."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from craftnet.archive import codec
from craftnet.archive.alliance import create_alliance, issue_certificate
from craftnet.archive.cid import DAG_CBOR, RAW, Cid
from craftnet.archive.gc import links_of
from craftnet.archive.index import ingest_records, publish
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.records import Record
from craftnet.identity.keys import PrivateKey
from craftnet.node.hub import Hub
from craftnet.node.p2p.settings import NetworkSettings
from craftnet.protocol.engine import EngineConfig
from craftnet.protocol.policy import DEFAULT_POLICY, Policy

LOOPBACK = ("/ip4/127.0.0.1/tcp/0",)


@dataclass
class HubSetup:
    """One hub's folder, store and key (not yet running)."""

    name: str
    home: Path
    store: LmdbStore
    key: PrivateKey


def make_hubs(tmp: Path, count: int, *, members: int | None = None) -> tuple[str, list[HubSetup]]:
    """``count`` hubs; the first founds the alliance and admits the next ``members - 1``."""
    members = count if members is None else members
    hubs = []
    for i in range(count):
        home = tmp / f"hub{i}"
        home.mkdir()
        hubs.append(HubSetup(f"hub{i}", home, LmdbStore(home / "store"), PrivateKey.generate()))
    founder = hubs[0]
    genesis = create_alliance(founder.store, founder.key, "Global Micro-manufacturing Alliance")
    alliance = str(genesis.cid)
    certs = [genesis]
    for hub in hubs[1:members]:
        certs.append(issue_certificate(founder.store, founder.key, alliance, hub.key.did, days=30))
    for hub in hubs[1:]:
        ingest_records(hub.store, [r.block for r in certs], strict=True)
    return alliance, hubs


def settings(alliance: str, bootstrap: tuple[str, ...] = ()) -> NetworkSettings:
    """Loopback only, no mDNS."""
    return NetworkSettings(alliance=alliance, listen=LOOPBACK, bootstrap=bootstrap, mdns=False)


async def start_hub(
    nursery: trio.Nursery,
    setup: HubSetup,
    alliance: str,
    bootstrap: tuple[str, ...] = (),
    *,
    reconcile_interval: float = 300.0,
    policy: Policy = DEFAULT_POLICY,
) -> Hub:
    """Run a hub in ``nursery``; returns once it listens."""
    config = EngineConfig(
        alliance=alliance, reconcile_interval=reconcile_interval, policy=policy
    )
    hub = Hub(
        setup.home, setup.store, setup.key, settings(alliance, bootstrap), engine_config=config
    )
    await nursery.start(lambda task_status: hub.run(task_status=task_status))
    return hub


async def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``check`` until true; returns the seconds it took; fails the test on timeout."""
    start = time.monotonic()
    with trio.move_on_after(timeout):
        while not check():
            await trio.sleep(0.02)
        return time.monotonic() - start
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def meshed(*hubs: Hub) -> bool:
    """Every hub has its ready peers in its GossipSub mesh: its announcements reach them
    (the mesh is built on GossipSub's one-second heartbeat)."""
    return all(set(h.engine.ready_peers()) <= h.network.mesh() for h in hubs)


def has_record(store: LmdbStore, cid: Cid) -> bool:
    """Is the record in the store?"""
    with store.read() as txn:
        return txn.has("records", cid.bytes)


def publish_technique(store: LmdbStore, key: PrivateKey, title: str) -> Record:
    """A small technique record, published locally."""
    return publish(
        store,
        key,
        "technique",
        {"title": title, "steps": [{"text": "warp the loom", "media": []}], "licence": "CC-BY-4.0"},
    )


def add_file(store: LmdbStore, data: bytes, chunk: int = 256 * 1024) -> Cid:
    """Store ``data`` as raw chunks plus a DAG-CBOR file node; return the node's CID."""
    cids = []
    blocks = []
    for start in range(0, len(data), chunk):
        piece = data[start : start + chunk]
        cid = Cid.of(piece, RAW)
        cids.append(cid)
        blocks.append((cid, piece))
    node = codec.encode({"name": "loom-frame.stl", "size": len(data), "chunks": cids})
    node_cid = Cid.of(node, DAG_CBOR)
    blocks.append((node_cid, node))

    def write(txn: object) -> None:
        for cid, block in blocks:
            txn.put("blocks", cid.bytes, block)  # type: ignore[attr-defined]

    store.transact(write)
    return node_cid


def publish_design(store: LmdbStore, key: PrivateKey, title: str, files: list[Cid]) -> Record:
    """A design record linking its files."""
    return publish(
        store,
        key,
        "design",
        {"title": title, "files": files, "licence": "CC-BY-SA-4.0"},
        links=files,
    )


def missing_blocks(store: LmdbStore) -> list[Cid]:
    """Every CID linked from a stored block that the store lacks (a sync left holes)."""
    missing = []
    with store.read() as txn:
        for key, value in txn.iterate("blocks"):
            cid = Cid.from_bytes(key)
            assert cid.verify(value), f"block {cid} does not match its CID"
            if cid.codec != DAG_CBOR:
                continue
            missing += [c for c in links_of(value) if not txn.has("blocks", c.bytes)]
    return missing
