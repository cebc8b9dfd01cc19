"""A hub that was offline while its alliance published 1,000 records and 50 MiB of design
files catches up when it comes back; killed with SIGKILL in the middle of that transfer,
it resumes on restart (keeping what it had) and ends with a complete, verified store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from craftnet.archive.index import publish_many
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.identity.keystore import Keystore
from craftnet.node.hub import Hub
from tests.node.p2p.helpers import (
    HubSetup,
    add_file,
    has_record,
    make_hubs,
    missing_blocks,
    publish_design,
    start_hub,
    wait_for,
)

RECORDS = 1000
FILES = 10
FILE_SIZE = 5 * 1024 * 1024  # 10 x 5 MiB = 50 MiB


def publish_archive(setup: HubSetup) -> list:
    """990 techniques and 10 designs with a 5 MiB file each, as a busy alliance would."""
    drafts = [
        ("technique", {"title": f"Neo-Vernacular joinery #{i}",
                       "steps": [{"text": "cut the tenon", "media": []}],
                       "licence": "CC-BY-4.0"}, ())
        for i in range(RECORDS - FILES)
    ]
    records = publish_many(setup.store, setup.key, drafts)
    for i in range(FILES):
        node = add_file(setup.store, os.urandom(FILE_SIZE))
        records.append(publish_design(setup.store, setup.key, f"Rustic Futurism stool {i}", [node]))
    return records


def complete(store: LmdbStore, records: list) -> bool:
    return all(has_record(store, r.cid) for r in records) and not missing_blocks(store)


@pytest.mark.slow
def test_an_offline_hub_catches_up_when_it_returns(tmp_path: Path) -> None:
    alliance, (online, offline) = make_hubs(tmp_path, 2)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            a = await start_hub(nursery, online, alliance)
            # The rural hub was here once, then went offline for three weeks.
            async with trio.open_nursery() as visit:
                b = await start_hub(visit, offline, alliance, (a.addrs[0],))
                await wait_for(lambda: b.engine.ready_peers() == [a.peer_id], 10, "first visit")
                visit.cancel_scope.cancel()
            records = publish_archive(online)
            b = await start_hub(nursery, offline, alliance, (a.addrs[0],))
            await wait_for(lambda: complete(offline.store, records), 60, "the hub to catch up")
            assert b.driver.stored_records >= RECORDS
            nursery.cancel_scope.cancel()

    trio.run(main)
    for setup in (online, offline):
        setup.store.close()


def stored_bytes(store: LmdbStore) -> int:
    """The bytes of every block a hub has committed."""
    with store.read() as txn:
        return sum(len(value) for _, value in txn.iterate("blocks"))


def spawn(home: Path, bootstrap: str) -> subprocess.Popen[str]:
    """The networking part of a hub in a process of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "craftnet.node.hub", "--home", str(home), "--no-mdns",
         "--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", bootstrap],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )


@pytest.mark.slow
def test_sigkill_in_the_middle_of_a_sync_resumes_and_ends_verified(tmp_path: Path) -> None:
    alliance, (online, rural) = make_hubs(tmp_path, 2)
    # The rural hub runs as a real process: its key in its keystore, its settings on disk.
    Keystore.for_home(rural.home).import_key("hub", rural.key.seed, None, allow_plaintext=True)
    rural.store.close()
    records = publish_archive(online)
    total_bytes = FILES * FILE_SIZE

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            a: Hub = await start_hub(nursery, online, alliance)
            from craftnet.node.p2p.settings import NetworkSettings, save_settings

            save_settings(rural.home, NetworkSettings(alliance=alliance, mdns=False))

            def sent_to_rural() -> int:
                return sum(p["bytes_out"] for p in a.driver.peers())

            first = spawn(rural.home, a.addrs[0])
            try:
                await wait_for(lambda: sent_to_rural() > 15 * 1024 * 1024, 60, "the transfer")
                # Kill once the rural hub has committed part of it (what it was sent may
                # still wait in its write queue on a loaded machine, and that is refetched).
                watch = LmdbStore(rural.home / "store")
                try:
                    await wait_for(lambda: stored_bytes(watch) > 12 * 1024 * 1024, 60, "commits")
                finally:
                    watch.close()
                first.send_signal(signal.SIGKILL)
            finally:
                first.kill()
                first.wait()
            sent_before = sent_to_rural()
            assert sent_before < total_bytes, "the transfer ended before the kill"

            second = spawn(rural.home, a.addrs[0])
            try:
                store = LmdbStore(rural.home / "store")
                try:
                    await wait_for(lambda: complete(store, records), 90, "the resumed sync")
                finally:
                    store.close()
                resumed = sum(p["bytes_out"] for p in a.driver.peers())
                # What arrived before the kill was kept, not fetched again.
                assert resumed < total_bytes - 10 * 1024 * 1024
                second.send_signal(signal.SIGTERM)  # a clean stop saves the want list
                assert second.wait(20) == 0
            finally:
                second.kill()
            nursery.cancel_scope.cancel()

    trio.run(main)
    online.store.close()
    with LmdbStore(rural.home / "store") as store:
        assert complete(store, records)
    verify = subprocess.run(
        [sys.executable, "-m", "craftnet", "--home", str(rural.home), "verify"],
        capture_output=True, text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
