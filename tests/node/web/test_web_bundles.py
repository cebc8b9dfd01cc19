"""USB bundles for another hub, prepared through the API: who we know, the size before
writing, writing into an export folder, a download; and everything hostile around paths.

The far hub is a real LMDB store with its own key that only exchanges files with the
hub under test, as a rural hub with a stick would.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from craftnet.archive import files, index
from craftnet.archive.car import CarReader
from craftnet.archive.delta import plan_delta, write_bundles
from craftnet.archive.have import build_summary
from craftnet.archive.hlc import HybridClock
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.peer_state import PeerStates
from craftnet.archive.receive import receive_bundle
from craftnet.archive.store import Store
from craftnet.identity.keys import PrivateKey
from tests.node.web.web_hub import Hub, start_hub

FAR = PrivateKey.from_seed(b"highlands-weaving-cooperative-01")
ARTISAN = PrivateKey.from_seed(b"rustic-futurism-lamp-maker-0001x")
HUB_PASS = "the kiln shed key"


def technique(store: Store, n: int) -> None:
    body = {"title": f"Neo-Vernacular joint {n}", "steps": [{"text": "Cut", "media": []}],
            "licence": "CC-BY-SA-4.0"}
    index.publish(store, ARTISAN, "technique", body)


def records(store: Store) -> set[bytes]:
    with store.read() as txn:
        return {key for key, _ in txn.iterate("rec_time")}


def have_file(store: Store) -> bytes:
    """``craftnet have`` at the far hub: its signed summary."""
    with store.read() as txn:
        return build_summary(txn, FAR, HybridClock().tick()).raw


def receive(store: Store, path: Path, home: Path) -> int:
    with path.open("rb") as stream:
        return receive_bundle(store, stream, home, now=HybridClock().tick()).new_records


@pytest.fixture
def far(tmp_path: Path) -> Iterator[LmdbStore]:
    """The far hub: it holds 5 techniques of its own."""
    store = LmdbStore(tmp_path / "far" / "store")
    for n in range(5):
        technique(store, 1000 + n)
    yield store
    store.close()


def bundles_written(hub: Hub) -> list[str]:
    """What is in the hub's own export folder."""
    folder = hub.home / "bundles"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def known(hub: Hub, far: Store) -> None:
    """The hub learns what the far hub holds from its have-file."""
    reply = hub.post("/api/v1/bundles/have", raw=have_file(far),
                     headers={"Content-Type": "application/octet-stream"})
    assert reply.status == 200, reply.body
    assert reply.json()["hub"]["did"] == FAR.did


def test_a_round_trip_by_stick_with_one_side_driven_through_the_web(
    hub: Hub, far: LmdbStore, tmp_path: Path
) -> None:
    for n in range(20):
        technique(hub.ctx.store, n)
    known(hub, far)
    listed = hub.get("/api/v1/bundles/hubs", auth=True).json()
    assert [h["did"] for h in listed["hubs"]] == [FAR.did]
    assert listed["hubs"][0]["records"] == 5 and listed["hub_key"] == "unlocked"

    plan = hub.get(f"/api/v1/bundles/plan?for={FAR.did}", auth=True).json()
    assert plan["known"] and plan["records"] == 20 and len(plan["parts"]) == 1
    assert plan["difference"]["we_have_they_lack"] == 20  # (their 5: exact only if decoded)

    written = hub.post("/api/v1/bundles", {"for": FAR.did, "name": "to-highlands.car"})
    assert written.status == 201, written.body
    out = Path(written.json()["files"][0]["file"])
    assert out == (hub.home / "bundles" / "to-highlands.car").resolve()
    assert written.json()["bytes_written"] == out.stat().st_size
    assert written.json()["summary"] is True
    assert receive(far, out, tmp_path / "far") == 20

    # The far hub answers with only what the hub lacks (it learnt that from the bundle).
    state = PeerStates(far).get(hub.ctx.hub_did or "")
    assert state is not None and state.via == "bundle"
    back = tmp_path / "to-makerspace.car"
    with far.read() as txn:
        write_bundles(txn, plan_delta(txn, state.summary), back,
                      have=build_summary(txn, FAR, HybridClock().tick()))
    assert receive(hub.ctx.store, back, hub.home) == 5
    assert records(hub.ctx.store) == records(far)
    listed = hub.get("/api/v1/bundles/hubs", auth=True).json()
    assert listed["hubs"][0]["via"] == "bundle" and listed["hubs"][0]["records"] == 25
    again = hub.get(f"/api/v1/bundles/plan?for={FAR.did}", auth=True).json()
    assert again["records"] == 0  # nothing left to carry


def test_a_hub_nothing_is_known_of_gets_everything(hub: Hub) -> None:
    for n in range(3):
        technique(hub.ctx.store, n)
    plan = hub.get(f"/api/v1/bundles/plan?for={FAR.did}", auth=True).json()
    assert plan["known"] is False and plan["records"] == 3


def test_a_bundle_too_big_for_one_stick_is_split_into_parts(hub: Hub) -> None:
    data = os.urandom(9 * 2**20)  # one design file larger than two 4 MiB parts
    node = files.add_file(hub.ctx.store, io.BytesIO(data), name="loom.stl").cid
    index.publish(hub.ctx.store, ARTISAN, "design",
                  {"title": "Loom frame", "files": [node], "licence": "CC0-1.0"}, [node])
    plan = hub.get(f"/api/v1/bundles/plan?for={FAR.did}&max_size=4M", auth=True).json()
    assert len(plan["parts"]) == 3
    assert all(p["bytes"] <= 4 * 2**20 for p in plan["parts"])
    reply = hub.post("/api/v1/bundles", {"for": FAR.did, "max_size": "4M", "name": "loom.car"})
    assert reply.status == 201, reply.body
    names = [Path(f["file"]).name for f in reply.json()["files"]]
    assert names == ["loom-1-of-3.car", "loom-2-of-3.car", "loom-3-of-3.car"]
    assert all(f["bytes"] <= 4 * 2**20 for f in reply.json()["files"])


def test_the_download_is_one_checked_car_file_and_nothing_stays_behind(hub: Hub) -> None:
    technique(hub.ctx.store, 1)
    reply = hub.get(f"/api/v1/bundles/download?for={FAR.did}", auth=True)
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"] == "application/vnd.ipld.car"
    assert "attachment" in reply.headers["content-disposition"]
    blocks = list(CarReader(io.BytesIO(reply.body)))
    assert len(blocks) >= 2  # the manifest and the record
    assert not [p for p in hub.home.iterdir() if p.name.startswith(".bundle-")]


def test_a_config_export_folder_and_folders_inside_it(tmp_path: Path) -> None:
    media = tmp_path / "media"
    (media / "usb0").mkdir(parents=True)
    running = start_hub(tmp_path / "hub", export_folders=(media,))
    try:
        listed = running.get("/api/v1/bundles/hubs", auth=True).json()
        assert listed["export_folders"] == [str(running.home / "bundles"), str(media)]
        assert listed["sticks"] == []  # a plain folder is not a mounted stick
        folder = str(media / "usb0" / "highlands")
        reply = running.post("/api/v1/bundles", {"for": FAR.did, "folder": folder})
        assert reply.status == 201, reply.body
        assert Path(reply.json()["files"][0]["file"]).parent == Path(folder)
    finally:
        running._stop()


@pytest.mark.parametrize(
    ("folder", "status", "code"),
    [
        ("/etc", 403, "outside-export-folders"),
        ("/", 403, "outside-export-folders"),
        ("{home}/bundles/../../..", 403, "outside-export-folders"),
        ("{home}/bundles/escape/etc", 403, "outside-export-folders"),  # a symbolic link
        ("{home}/bundles/afile", 409, "cannot-write"),
        ("relative/folder", 422, "bad-folder"),
        ("", 422, "bad-folder"),
        ("/tmp/\x00/x", 422, "bad-folder"),
        ("/" + "a" * 1100, 422, "too-long"),
    ],
)
def test_folders_outside_the_export_folders_are_refused(
    hub: Hub, folder: str, status: int, code: str
) -> None:
    inside = hub.home / "bundles"
    inside.mkdir(exist_ok=True)
    (inside / "escape").symlink_to("/")
    (inside / "afile").write_bytes(b"not a folder")
    before = sorted(p.name for p in inside.iterdir())
    reply = hub.post("/api/v1/bundles", {"for": FAR.did, "folder": folder.format(home=hub.home)})
    assert (reply.status, reply.error_code) == (status, code), reply.body
    assert sorted(p.name for p in inside.iterdir()) == before
    assert not Path("/etc/to-" + FAR.did[-8:]).exists()


@pytest.mark.parametrize(
    "name", ["../x.car", "a/b.car", ".car", ".hidden.car", "x.txt", "x.car\n", "", "é.car", 7]
)
def test_bad_bundle_names_are_refused(hub: Hub, name: object) -> None:
    reply = hub.post("/api/v1/bundles", {"for": FAR.did, "name": name})
    assert reply.status == 422, reply.body
    assert bundles_written(hub) == []


def test_an_existing_file_is_replaced_only_when_asked(hub: Hub) -> None:
    body = {"for": FAR.did, "name": "weekly.car"}
    assert hub.post("/api/v1/bundles", body).status == 201
    again = hub.post("/api/v1/bundles", body)
    assert (again.status, again.error_code) == (409, "exists")
    assert hub.post("/api/v1/bundles", {**body, "replace": True}).status == 201


@pytest.mark.parametrize(
    "query",
    [
        "",
        "for=",
        "for=did:key:nope",
        f"for={FAR.did}&max_size=1K",
        f"for={FAR.did}&max_size=3M",
        f"for={FAR.did}&max_size=4m",
        f"for={FAR.did}&max_size=-4G",
        f"for={FAR.did}&max_size=4194304",  # bytes are counted from 5000000
        f"for={FAR.did}&max_size=1e9",
        f"for={FAR.did}&max_size=4G&max_size=8G",
    ],
)
def test_bad_plan_queries_are_refused(hub: Hub, query: str) -> None:
    reply = hub.get(f"/api/v1/bundles/plan?{query}", auth=True)
    assert reply.status == 400, reply.body
    assert reply.error_code in ("bad-query", "bad-did")


def test_the_hub_itself_is_not_a_destination(hub: Hub) -> None:
    reply = hub.get(f"/api/v1/bundles/plan?for={hub.ctx.hub_did}", auth=True)
    assert (reply.status, reply.error_code) == (422, "bad-hub")


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/api/v1/bundles/hubs", "GET"),
        (f"/api/v1/bundles/plan?for={FAR.did}", "GET"),
        ("/api/v1/bundles", "POST"),
        (f"/api/v1/bundles/download?for={FAR.did}", "GET"),
        ("/api/v1/bundles/unlock", "POST"),
        ("/api/v1/bundles/have", "POST"),
    ],
)
def test_bundles_are_the_operators_alone(hub: Hub, path: str, method: str) -> None:
    body = {"for": FAR.did} if method == "POST" else None
    nobody = hub.request(method, path, body)
    assert (nobody.status, nobody.error_code) == (401, "unauthorized")
    hub.post("/api/v1/keys", {"handle": "amaia", "passphrase": "clay and fire at dawn"})
    login = hub.request("POST", "/api/v1/session",
                        {"handle": "amaia", "passphrase": "clay and fire at dawn"})
    cookie = login.headers["set-cookie"].split(";")[0]
    artisan = hub.request(method, path, body,
                          headers={"Cookie": cookie, "X-Requested-With": "craftnet"})
    assert (artisan.status, artisan.error_code) == (403, "operator-only")
    assert bundles_written(hub) == []


def test_an_encrypted_hub_key_is_unlocked_once(tmp_path: Path) -> None:
    running = start_hub(tmp_path / "hub", hub_passphrase=HUB_PASS)
    try:
        assert running.get("/api/v1/bundles/hubs", auth=True).json()["hub_key"] == "locked"
        locked = running.post("/api/v1/bundles", {"for": FAR.did})
        assert (locked.status, locked.error_code) == (409, "hub-key-locked")
        download = running.get(f"/api/v1/bundles/download?for={FAR.did}", auth=True)
        assert (download.status, download.error_code) == (409, "hub-key-locked")
        wrong = running.post("/api/v1/bundles", {"for": FAR.did, "hub_passphrase": "nope"})
        assert (wrong.status, wrong.error_code) == (403, "wrong-passphrase")
        empty = running.post("/api/v1/bundles/unlock", {"passphrase": ""})
        assert empty.status == 422
        assert running.post("/api/v1/bundles/unlock", {"passphrase": HUB_PASS}).status == 200
        assert running.get("/api/v1/bundles/hubs", auth=True).json()["hub_key"] == "unlocked"
        assert running.post("/api/v1/bundles", {"for": FAR.did}).status == 201
        assert running.get(f"/api/v1/bundles/download?for={FAR.did}", auth=True).status == 200
    finally:
        running._stop()


def test_one_bundle_is_written_at_a_time(hub: Hub) -> None:
    with hub.ctx.exporting:  # another bundle is being written
        reply = hub.post("/api/v1/bundles", {"for": FAR.did})
    assert (reply.status, reply.error_code) == (409, "busy")
    assert hub.post("/api/v1/bundles", {"for": FAR.did}).status == 201


@pytest.mark.parametrize(
    "mangle",
    [
        lambda raw: b"",
        lambda raw: b"not cbor at all",
        lambda raw: raw[: len(raw) // 2],  # truncated
        lambda raw: raw[:-8] + bytes(8),  # a damaged signature
        lambda raw: raw.replace(b"craftnet-have", b"craftnet-hove"),
    ],
    ids=["empty", "garbage", "truncated", "bad-signature", "wrong-type"],
)
def test_hostile_have_files_are_refused_and_remembered_nowhere(
    hub: Hub, far: LmdbStore, mangle: object
) -> None:
    raw = mangle(have_file(far))  # type: ignore[operator]
    reply = hub.post("/api/v1/bundles/have", raw=raw,
                     headers={"Content-Type": "application/octet-stream"})
    assert (reply.status, reply.error_code) == (422, "bad-have-file"), reply.body
    assert PeerStates(hub.ctx.store).all() == []


def test_an_oversized_have_file_is_refused_before_it_is_read(hub: Hub) -> None:
    reply = hub.post("/api/v1/bundles/have", raw=bytes(2 * 2**20),
                     headers={"Content-Type": "application/octet-stream"})
    assert (reply.status, reply.error_code) == (413, "too-large")


def test_the_hubs_own_have_file_is_refused(hub: Hub) -> None:
    key = hub.ctx.signer.key()
    assert key is not None
    with hub.ctx.store.read() as txn:
        own = build_summary(txn, key, HybridClock().tick()).raw
    reply = hub.post("/api/v1/bundles/have", raw=own,
                     headers={"Content-Type": "application/octet-stream"})
    assert (reply.status, reply.error_code) == (422, "bad-hub")
