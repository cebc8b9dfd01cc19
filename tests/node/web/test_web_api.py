"""The JSON API as a client sees it: a real hub on 127.0.0.1 with a real LMDB store."""

from __future__ import annotations

from craftnet.archive import index
from craftnet.archive.cid import Cid
from craftnet.archive.records import Record
from tests.node.web.web_hub import Hub, make_artisan

PASS = "clay and fire"


def publish(hub: Hub, rtype: str, body: dict[str, object], **extra: object) -> dict[str, object]:
    """Publish as the artisan 'amaia' and return the reply's JSON (asserting 201)."""
    reply = hub.post(
        "/api/v1/records",
        {"type": rtype, "body": body, "artisan": "amaia", "passphrase": PASS, **extra},
    )
    assert reply.status == 201, reply.body
    data: dict[str, object] = reply.json()
    return data


def upload(hub: Hub, name: str, data: bytes) -> str:
    """Upload a file with the token; return its CID."""
    reply = hub.post(
        f"/api/v1/files?name={name}", raw=data, headers={"Content-Type": "application/octet-stream"}
    )
    assert reply.status == 201, reply.body
    return str(reply.json()["cid"])


def test_publish_signs_with_the_artisans_key_not_the_hubs(hub: Hub) -> None:
    did = make_artisan(hub)
    data = publish(
        hub,
        "technique",
        {
            "title": "Pit firing with seaweed",
            "steps": ["Dig the pit", "Fire overnight"],
            "licence": "CC-BY-4.0",
            "tags": ["Ceramics", "coast"],
        },
    )
    with hub.ctx.store.read() as txn:
        record = index.get_record(txn, Cid.parse(str(data["cid"])))
    record.verify()
    assert record.author == did != hub.ctx.hub_did
    assert record.body["tags"] == ["Ceramics", "coast"]  # the artisan's own spelling
    got = hub.get(f"/api/v1/records/{data['cid']}")
    assert got.status == 200
    assert got.headers["etag"] == f'"{data["cid"]}"'
    assert got.json()["body"]["steps"][0] == {"text": "Dig the pit", "media": []}
    assert (
        hub.get(
            f"/api/v1/records/{data['cid']}", headers={"If-None-Match": f'"{data["cid"]}"'}
        ).status
        == 304
    )


def test_raw_block_is_the_signed_record(hub: Hub) -> None:
    make_artisan(hub)
    data = publish(
        hub, "technique", {"title": "Indigo vat", "steps": ["Ferment"], "licence": "CC0-1.0"}
    )
    raw = hub.get(f"/api/v1/records/{data['cid']}/raw")
    assert raw.headers["content-type"] == "application/vnd.ipld.dag-cbor"
    record = Record.from_block(raw.body)
    record.verify()
    assert str(record.cid) == data["cid"]


def test_listing_filters_and_cursor_pages(hub: Hub) -> None:
    make_artisan(hub)
    for n in range(5):
        publish(
            hub,
            "design",
            {
                "title": f"Spoon {n}",
                "licence": "CC-BY-4.0",
                "process": "cnc-milling" if n % 2 else "hand",
                "materials": ["Oak"],
            },
        )
    publish(hub, "technique", {"title": "Whittling", "steps": ["Carve"], "licence": "MIT"})
    seen: list[str] = []
    cursor = None
    while True:
        path = "/api/v1/records?type=design&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = hub.get(path).json()
        seen += [r["body"]["title"] for r in page["records"]]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert seen == [f"Spoon {n}" for n in reversed(range(5))]
    milled = hub.get("/api/v1/records?process=cnc-milling&limit=1").json()
    assert milled["records"][0]["body"]["title"] == "Spoon 3"
    second = hub.get(f"/api/v1/records?process=cnc-milling&limit=1&cursor={milled['cursor']}")
    assert [r["body"]["title"] for r in second.json()["records"]] == ["Spoon 1"]
    assert second.json()["cursor"] is None
    oak = hub.get("/api/v1/records?material=oak&licence=CC-BY-4.0&limit=50").json()
    assert len(oak["records"]) == 5
    assert hub.get("/api/v1/records?licence=MIT").json()["records"][0]["type"] == "technique"


def test_search_ranks_titles_first_and_counts_facets(hub: Hub) -> None:
    make_artisan(hub)
    publish(
        hub,
        "technique",
        {
            "title": "Loom repair",
            "steps": ["Replace the heddle"],
            "licence": "CC-BY-4.0",
            "summary": "Keeping looms going",
        },
    )
    publish(
        hub,
        "design",
        {"title": "Heddle bar", "description": "for a loom", "licence": "CC-BY-SA-4.0"},
    )
    result = hub.get("/api/v1/search?q=loom").json()
    assert [h["title"] for h in result["hits"]] == ["Loom repair", "Heddle bar"]
    assert result["facets"]["type"] == {"design": 1, "technique": 1}
    only = hub.get("/api/v1/search?q=loom&type=design").json()
    assert [h["title"] for h in only["hits"]] == ["Heddle bar"]
    prefix = hub.get("/api/v1/search?q=hedd").json()
    assert prefix["total"] == 2
    assert hub.get("/api/v1/search?q=").json()["total"] == 0


def test_search_catches_up_with_records_written_outside_the_api(hub: Hub) -> None:
    from craftnet.identity.keys import PrivateKey

    key = PrivateKey.generate()
    index.publish(
        hub.ctx.store,
        key,
        "technique",
        {
            "title": "Sashiko mending",
            "steps": [{"text": "Stitch", "media": []}],
            "licence": "CC-BY-4.0",
            "language": "en",
        },
    )
    # Written straight to the store (as sync or a bundle import would): the next search
    # sees the store hold more records than the index has seen, and indexes them.
    assert hub.get("/api/v1/search?q=sashiko").json()["total"] == 1
    assert (
        hub.get("/api/v1/records?licence=CC-BY-4.0").json()["records"][0]["body"]["title"]
        == "Sashiko mending"
    )


def test_files_stream_with_range_etag_and_content_type(hub: Hub) -> None:
    data = bytes(range(256)) * 4000  # about 1 MB, several chunks
    cid = upload(hub, "bracket.stl", data)
    whole = hub.get(f"/api/v1/files/{cid}")
    assert whole.status == 200 and whole.body == data
    assert whole.headers["content-type"] == "model/stl"
    assert whole.headers["etag"] == f'"{cid}"'
    assert whole.headers["accept-ranges"] == "bytes"
    assert "sandbox" in whole.headers["content-security-policy"]
    part = hub.get(f"/api/v1/files/{cid}", headers={"Range": "bytes=70000-70099"})
    assert part.status == 206
    assert part.body == data[70000:70100]
    assert part.headers["content-range"] == f"bytes 70000-70099/{len(data)}"
    tail = hub.get(f"/api/v1/files/{cid}", headers={"Range": "bytes=-10"})
    assert tail.body == data[-10:]
    past = hub.get(f"/api/v1/files/{cid}", headers={"Range": f"bytes={len(data)}-"})
    assert past.status == 416 and past.headers["content-range"] == f"bytes */{len(data)}"
    assert hub.get(f"/api/v1/files/{cid}", headers={"If-None-Match": f'"{cid}"'}).status == 304
    info = hub.get(f"/api/v1/files/{cid}/info").json()
    assert info == {
        "cid": cid,
        "name": "bracket.stl",
        "size": len(data),
        "content_type": "model/stl",
    }


def test_design_with_an_uploaded_file_and_its_preview(hub: Hub) -> None:
    from craftnet.archive.demo import heddle_stl

    make_artisan(hub)
    cid = upload(hub, "heddle.stl", heddle_stl())
    data = publish(hub, "design", {"title": "Heddle", "files": [cid], "licence": "CC-BY-4.0"})
    assert data["record"]["links"] == [cid]  # type: ignore[index]
    svg = hub.get(f"/api/v1/files/{cid}/preview.svg")
    assert svg.status == 200 and svg.headers["content-type"] == "image/svg+xml"
    assert svg.body.startswith(b"<svg") and b"<polygon" in svg.body


def test_derivative_with_conflicting_licence_needs_confirmation(hub: Hub) -> None:
    make_artisan(hub)
    parent = publish(hub, "design", {"title": "Shade", "licence": "CC-BY-SA-4.0"})
    check = hub.get(f"/api/v1/licences/check?licence=CC-BY-4.0&parent={parent['cid']}").json()
    assert [w["code"] for w in check["warnings"]] == ["share-alike"]
    before = hub.record_count()
    body = {"title": "Remix", "licence": "CC-BY-4.0", "derived_from": [parent["cid"]]}
    refused = hub.post(
        "/api/v1/records", {"type": "design", "body": body, "artisan": "amaia", "passphrase": PASS}
    )
    assert refused.status == 409 and refused.error_code == "licence-conflict"
    assert refused.json()["error"]["warnings"][0]["severity"] == "error"
    assert hub.record_count() == before
    done = publish(hub, "design", body, confirm_licence=True)
    assert [w["code"] for w in done["warnings"]] == ["share-alike"]  # type: ignore[union-attr]
    graph = hub.get(f"/api/v1/records/{done['cid']}/provenance").json()
    assert {n["role"] for n in graph["nodes"]} == {"root", "ancestor"}
    assert graph["edges"] == [
        {"child": done["cid"], "parent": parent["cid"], "kind": "derived_from"}
    ]


def test_documents_create_edit_history_and_blame(hub: Hub) -> None:
    make_artisan(hub)
    make_artisan(hub, "kofi", "kente strips")
    made = hub.post(
        "/api/v1/documents",
        {
            "artisan": "amaia",
            "passphrase": PASS,
            "kind": "technique",
            "fields": {
                "title": "Kiln care",
                "summary": "Keep it dry",
                "tags": ["kiln"],
                "steps": ["Brush the ash"],
            },
        },
    )
    assert made.status == 201, made.body
    doc = made.json()["cid"]
    edit = hub.post(
        f"/api/v1/documents/{doc}/edits",
        {
            "artisan": "kofi",
            "passphrase": "kente strips",
            "fields": {"summary": "Keep it dry and warm", "steps": ["Check the seal"]},
            "remove": {"tags": ["kiln"]},
        },
    )
    assert edit.status == 201, edit.body
    state = hub.get(f"/api/v1/documents/{doc}").json()
    assert state["fields"]["summary"] == "Keep it dry and warm"
    assert state["fields"]["steps"] == ["Brush the ash", "Check the seal"]
    assert "tags" not in state["fields"]
    history = hub.get(f"/api/v1/documents/{doc}/history").json()["history"]
    assert [h["status"] for h in history] == ["applied", "applied"]
    blame = hub.get(f"/api/v1/documents/{doc}/blame").json()["fields"]
    assert blame["title"]["kind"] == "register"
    listed = hub.get("/api/v1/documents").json()["documents"]
    assert listed == [
        {"cid": doc, "kind": "technique", "owner": listed[0]["owner"], "title": "Kiln care"}
    ]
    assert hub.get("/api/v1/search?q=seal").json()["hits"][0]["cid"] == doc


def test_keys_export_and_import_move_an_artisan(hub: Hub, tmp_path: object) -> None:
    did = make_artisan(hub)
    exported = hub.post(
        "/api/v1/keys/amaia/export",
        {"passphrase": PASS, "export_passphrase": "usb stick in the kiln shed"},
    )
    assert exported.status == 200, exported.body
    key_file = exported.json()["key_file"]
    assert "ciphertext" in key_file and "seed" not in key_file
    again = hub.post(
        "/api/v1/keys/import",
        {
            "handle": "amaia2",
            "passphrase": "new one for the loom hub",
            "key_file": key_file,
            "export_passphrase": "usb stick in the kiln shed",
        },
    )
    # The same key is already here under another handle: the keystore refuses a twin.
    assert again.status == 422 and again.error_code == "keystore"
    wrong = hub.post(
        "/api/v1/keys/amaia/export",
        {"passphrase": "not it", "export_passphrase": "usb stick in the kiln shed"},
    )
    assert wrong.status == 403 and wrong.error_code == "wrong-passphrase"
    assert hub.get("/api/v1/keys").json()["artisans"][0]["did"] == did
    artisan = hub.get(f"/api/v1/artisans/{did}").json()
    assert artisan["handle"] == "amaia" and artisan["records"] == []


def test_status_peers_and_licences(hub: Hub) -> None:
    status = hub.get("/api/v1/status").json()
    assert status["hub"] == hub.ctx.hub_did
    assert status["network"]["state"] == "not connected"
    peers = hub.get("/api/v1/peers").json()
    assert peers["enabled"] is False and peers["peers"] == []
    assert peers["message"] == "networking not enabled in this version"
    licences = hub.get("/api/v1/licences").json()
    assert "CC-BY-SA-4.0" in {lic["spdx"] for lic in licences["licences"]}


def test_session_cookie_login_writes_need_the_csrf_header(hub: Hub) -> None:
    wrong = hub.request("POST", "/api/v1/session", {"token": "cnt_guess"})
    assert wrong.status == 401 and wrong.error_code == "unauthorized"
    login = hub.request("POST", "/api/v1/session", {"token": hub.token})
    assert login.status == 200
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    session = cookie.split(";")[0]
    body = {"handle": "rosa", "passphrase": "petg bottles"}
    no_header = hub.request("POST", "/api/v1/keys", body, headers={"Cookie": session})
    assert no_header.status == 403 and no_header.error_code == "csrf"
    ok = hub.request(
        "POST", "/api/v1/keys", body, headers={"Cookie": session, "X-Requested-With": "craftnet"}
    )
    assert ok.status == 201
    assert hub.request("DELETE", "/api/v1/session", headers={"Cookie": session}).status == 200
    after = hub.request(
        "POST",
        "/api/v1/keys",
        {"handle": "lin", "passphrase": "laser"},
        headers={"Cookie": session, "X-Requested-With": "craftnet"},
    )
    assert after.status == 401


def test_reads_can_require_the_token(tmp_path: object) -> None:
    from pathlib import Path

    from tests.node.web.web_hub import start_hub

    closed = start_hub(Path(str(tmp_path)) / "closed", require_token_for_reads=True)
    try:
        assert closed.get("/api/v1/records").status == 401
        assert closed.get("/api/v1/records", auth=True).status == 200
        page = closed.get("/search?q=x")
        assert page.status == 303 and page.headers["location"].startswith("/login")
        assert closed.get("/login").status == 200
    finally:
        closed._stop()


class StaticPeers:
    """A peers provider reporting fixed facts, as the networking part would."""

    def status(self) -> dict[str, object]:
        """One connected peer and a sync report."""
        return {
            "enabled": True,
            "state": "connected",
            "message": "1 peer",
            "peers": [{"id": "12D3KooWPorto<hub>", "addrs": ["/ip4/127.0.0.1/tcp/4710"]}],
            "sync": {"last_reconcile": "2035-06-01T10:00:00Z", "missing_blocks": 0},
        }


def test_the_peers_page_shows_what_the_networking_part_reports(hub: Hub) -> None:
    hub.ctx.peers = StaticPeers()
    assert hub.get("/api/v1/peers").json()["peers"][0]["id"] == "12D3KooWPorto<hub>"
    page = hub.get("/peers").body.decode()
    assert "12D3KooWPorto&lt;hub&gt;" in page and "<hub>" not in page
    assert "missing_blocks" in page and "connected" in page
