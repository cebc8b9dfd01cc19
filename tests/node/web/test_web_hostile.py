"""Hostile and careless clients: every refusal is a clear 4xx in the one error shape, and
nothing is stored."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from craftnet.archive import blocks, files
from craftnet.archive.lmdb_store import LmdbStore
from tests.node.web.web_hub import Hub, make_artisan, start_hub

PASS = "clay and fire"
GOOD = {
    "type": "technique",
    "artisan": "amaia",
    "passphrase": PASS,
    "body": {"title": "Raku", "steps": ["Fire"], "licence": "CC-BY-4.0"},
}


@pytest.fixture
def small_hub(tmp_path: Path) -> Hub:
    """A hub that takes uploads of at most 64 KiB, with one artisan."""
    running = start_hub(tmp_path / "small", max_upload_bytes=64 * 1024)
    make_artisan(running)
    yield running  # type: ignore[misc]
    running._stop()


def assert_nothing_stored(hub: Hub, records: int, blocks: int) -> None:
    """The store holds exactly what it held before."""
    assert (hub.record_count(), hub.block_count()) == (records, blocks)


def test_writes_without_or_with_a_wrong_token_are_refused(small_hub: Hub) -> None:
    hub = small_hub
    before = hub.record_count(), hub.block_count()
    missing = hub.request("POST", "/api/v1/records", GOOD)
    assert missing.status == 401 and missing.error_code == "unauthorized"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = hub.request(
        "POST", "/api/v1/records", GOOD, headers={"Authorization": "Bearer cnt_not-the-token"}
    )
    assert wrong.status == 401 and wrong.error_code == "unauthorized"
    basic = hub.request("POST", "/api/v1/records", GOOD, headers={"Authorization": "Basic eDp5"})
    assert basic.status == 401
    upload = hub.request("POST", "/api/v1/files?name=a.stl", raw=b"solid x")
    assert upload.status == 401
    assert_nothing_stored(hub, *before)


@pytest.mark.parametrize(
    ("raw", "ctype", "status", "code"),
    [
        (b"{not json", "application/json", 400, "malformed-json"),
        (b"[1, 2]", "application/json", 400, "malformed-json"),
        (b'{"a": NaN}', "application/json", 400, "malformed-json"),
        (b"\xff\xfe", "application/json", 400, "malformed-json"),
        (b'{"type": "technique"}', "text/plain", 415, "unsupported-media-type"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "malformed-json"),
    ],
)
def test_malformed_bodies(small_hub: Hub, raw: bytes, ctype: str, status: int, code: str) -> None:
    before = small_hub.record_count(), small_hub.block_count()
    reply = small_hub.post("/api/v1/records", raw=raw, headers={"Content-Type": ctype})
    assert (reply.status, reply.error_code) == (status, code)
    assert_nothing_stored(small_hub, *before)


def test_oversize_json_body(small_hub: Hub) -> None:
    huge = b'{"x": "' + b"a" * (2 * 2**20) + b'"}'
    reply = small_hub.post(
        "/api/v1/records", raw=huge, headers={"Content-Type": "application/json"}
    )
    assert reply.status == 413 and reply.error_code == "too-large"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"type": 7}, "wrong-type"),
        ({"type": "revocation"}, "invalid-record"),
        ({"body": "a string"}, "wrong-type"),
        ({"body": {"title": "x", "steps": "not a list", "licence": "CC-BY-4.0"}}, "invalid-record"),
        ({"body": {"title": "x", "steps": ["a"], "licence": "WTFPL-9"}}, "invalid-record"),
        (
            {"body": {"title": "x", "steps": ["a"], "licence": "CC-BY-4.0", "colour": "red"}},
            "invalid-record",
        ),
        ({"body": {"title": 1.5, "steps": ["a"], "licence": "CC-BY-4.0"}}, "invalid-record"),
        ({"body": {"title": "x\x00y", "steps": ["a"], "licence": "CC-BY-4.0"}}, "invalid-record"),
        (
            {"body": {"title": "x", "steps": ["a"], "licence": "CC-BY-4.0", "tags": "kiln"}},
            "invalid-record",
        ),
        ({"artisan": "../hub"}, "bad-handle"),
        ({"artisan": "nobody"}, "not-found"),
        ({"passphrase": 1234}, "wrong-type"),
        ({"confirm_licence": "yes"}, "wrong-type"),
    ],
)
def test_wrong_types_and_invalid_records(
    small_hub: Hub, change: dict[str, object], code: str
) -> None:
    before = small_hub.record_count(), small_hub.block_count()
    reply = small_hub.post("/api/v1/records", {**GOOD, **change})
    assert 400 <= reply.status < 500, reply.body
    assert reply.error_code == code
    assert_nothing_stored(small_hub, *before)


def test_wrong_passphrase_stores_nothing(small_hub: Hub) -> None:
    before = small_hub.record_count(), small_hub.block_count()
    reply = small_hub.post("/api/v1/records", {**GOOD, "passphrase": "not mine"})
    assert reply.status == 403 and reply.error_code == "wrong-passphrase"
    assert_nothing_stored(small_hub, *before)


def test_design_naming_a_file_the_hub_lacks(small_hub: Hub) -> None:
    before = small_hub.record_count(), small_hub.block_count()
    ghost = "bafkr4ia6fyoyh5qcmkhwvvfnymvqzd4p3d2mz2rfy2ie4tdpxxjuyvpxk4"
    reply = small_hub.post(
        "/api/v1/records",
        {
            **GOOD,
            "type": "design",
            "body": {"title": "Ghost", "files": [ghost], "licence": "CC-BY-4.0"},
        },
    )
    assert (reply.status, reply.error_code) == (409, "missing-file")
    assert_nothing_stored(small_hub, *before)


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "..",
        "a/b.stl",
        "a\\b.stl",
        ".hidden",
        "nul\x00.stl",
        "x" * 300,
        "..%2f..%2fkeys",
        "C:evil.stl",
    ],
)
def test_path_traversal_in_file_names(small_hub: Hub, name: str) -> None:
    from urllib.parse import quote

    before = small_hub.record_count(), small_hub.block_count()
    reply = small_hub.post(
        f"/api/v1/files?name={quote(name, safe='%')}",
        raw=b"solid x\n",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert reply.status in (400, 414), reply.body
    assert reply.error_code in ("bad-file-name", "bad-query")
    assert_nothing_stored(small_hub, *before)
    assert not (small_hub.home.parent / "etc").exists()


def test_oversize_uploads_store_nothing(small_hub: Hub) -> None:
    before = small_hub.record_count(), small_hub.block_count()
    declared = small_hub.post(
        "/api/v1/files?name=big.stl",
        raw=b"x" * (65 * 1024),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert declared.status == 413 and declared.error_code == "too-large"
    assert_nothing_stored(small_hub, *before)


def test_oversize_chunked_upload_without_a_length(small_hub: Hub) -> None:
    import http.client

    before = small_hub.record_count(), small_hub.block_count()
    conn = http.client.HTTPConnection(small_hub.host, small_hub.port, timeout=30)
    body = (b"y" * 8192 for _ in range(20))  # 160 KiB, sent chunked: no Content-Length
    conn.request(
        "POST",
        "/api/v1/files?name=big.stl",
        body=body,
        headers={"Authorization": f"Bearer {small_hub.token}", "Transfer-Encoding": "chunked"},
        encode_chunked=True,
    )
    response = conn.getresponse()
    assert response.status == 413
    conn.close()
    assert_nothing_stored(small_hub, *before)


def test_empty_upload_and_missing_name(small_hub: Hub) -> None:
    empty = small_hub.post(
        "/api/v1/files?name=a.stl", raw=b"", headers={"Content-Type": "application/octet-stream"}
    )
    assert empty.status == 400 and empty.error_code == "empty-file"
    nameless = small_hub.post(
        "/api/v1/files", raw=b"abc", headers={"Content-Type": "application/octet-stream"}
    )
    assert nameless.status == 400 and nameless.error_code == "bad-file-name"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/records/not-a-cid", 400, "bad-cid"),
        (
            "/api/v1/records/bafyr4ia6fyoyh5qcmkhwvvfnymvqzd4p3d2mz2rfy2ie4tdpxxjuyvpxk4",
            404,
            "not-found",
        ),
        ("/api/v1/records?limit=0", 400, "bad-query"),
        ("/api/v1/records?limit=100000", 400, "bad-query"),
        ("/api/v1/records?limit=-1", 400, "bad-query"),
        ("/api/v1/records?cursor=zz", 400, "bad-query"),
        ("/api/v1/records?cursor=00", 400, "bad-query"),
        ("/api/v1/records?tag=x&cursor=00", 400, "bad-query"),
        ("/api/v1/records?type=Not%20A%20Type", 400, "bad-query"),
        ("/api/v1/records?type=a&type=b", 400, "bad-query"),
        ("/api/v1/search?q=" + "a" * 5000, 400, "bad-query"),
        ("/api/v1/search?q=" + "a" * 36_000, 414, "uri-too-long"),
        ("/api/v1/search?offset=99999999", 400, "bad-query"),
        ("/api/v1/artisans/mallory", 400, "bad-did"),
        (
            "/api/v1/documents/bafyr4ia6fyoyh5qcmkhwvvfnymvqzd4p3d2mz2rfy2ie4tdpxxjuyvpxk4",
            404,
            "not-found",
        ),
        (
            "/api/v1/files/bafyr4ia6fyoyh5qcmkhwvvfnymvqzd4p3d2mz2rfy2ie4tdpxxjuyvpxk4",
            404,
            "not-found",
        ),
        ("/api/v1/licences/check", 400, "bad-query"),
        ("/api/v1/licences/check?licence=Nope", 422, "invalid-record"),
        ("/api/v1/nothing-here", 404, "not-found"),
    ],
)
def test_bad_reads(small_hub: Hub, path: str, status: int, code: str) -> None:
    reply = small_hub.get(path)
    assert (reply.status, reply.error_code) == (status, code), reply.body


def test_wrong_method_and_no_traceback(small_hub: Hub) -> None:
    reply = small_hub.request("PUT", "/api/v1/records")
    assert reply.status == 405 and reply.error_code == "method-not-allowed"
    for body in (small_hub.get("/api/v1/records/xyz").body, reply.body):
        assert b"Traceback" not in body and b'File "' not in body


def test_edits_by_strangers_and_bad_fields(small_hub: Hub) -> None:
    hub = small_hub
    made = hub.post(
        "/api/v1/documents",
        {
            "artisan": "amaia",
            "passphrase": PASS,
            "kind": "technique",
            "mode": "owner",
            "fields": {"title": "Mine"},
        },
    )
    assert made.status == 201
    doc = made.json()["cid"]
    make_artisan(hub, "mallory", "moonlit sneaky otter")
    before = hub.record_count()
    stranger = hub.post(
        f"/api/v1/documents/{doc}/edits",
        {"artisan": "mallory", "passphrase": "moonlit sneaky otter", "fields": {"title": "Theirs"}},
    )
    assert stranger.status == 403 and stranger.error_code == "not-an-editor"
    bad_field = hub.post(
        f"/api/v1/documents/{doc}/edits",
        {"artisan": "amaia", "passphrase": PASS, "fields": {"Title!": "x"}},
    )
    assert bad_field.status == 422
    float_value = hub.post(
        f"/api/v1/documents/{doc}/edits",
        {"artisan": "amaia", "passphrase": PASS, "fields": {"size": 1.5}},
    )
    assert float_value.status == 422 and float_value.error_code == "wrong-type"
    nothing = hub.post(f"/api/v1/documents/{doc}/edits", {"artisan": "amaia", "passphrase": PASS})
    assert nothing.status == 422
    assert hub.record_count() == before


def test_weak_or_taken_handles(small_hub: Hub) -> None:
    taken = small_hub.post("/api/v1/keys", {"handle": "amaia", "passphrase": "another"})
    assert taken.status == 409 and taken.error_code == "exists"
    weak = small_hub.post("/api/v1/keys", {"handle": "newbie", "passphrase": "abc"})
    assert weak.status == 422 and weak.error_code == "weak-passphrase"
    odd = small_hub.post("/api/v1/keys", {"handle": "Big Name", "passphrase": "long enough"})
    assert odd.status == 422 and odd.error_code == "bad-handle"
    garbage = small_hub.post(
        "/api/v1/keys/import",
        {"handle": "imp", "passphrase": "long enough", "key_file": "{}", "export_passphrase": "x"},
    )
    assert garbage.status == 422


def test_a_record_is_not_a_file(small_hub: Hub) -> None:
    """Asking for a record's CID as a file is the client's mistake (404), not damage (500)."""
    made = small_hub.post("/api/v1/records", GOOD)
    assert made.status == 201, made.body
    cid = made.json()["cid"]
    for suffix in ("", "/info", "/preview.svg"):
        reply = small_hub.get(f"/api/v1/files/{cid}{suffix}")
        assert reply.status == 404 and reply.error_code == "not-a-file", (suffix, reply.body)
        assert "record" in reply.json()["error"]["message"]


def test_a_wrong_method_says_what_is_allowed(small_hub: Hub) -> None:
    reply = small_hub.request("DELETE", "/api/v1/records")
    assert reply.status == 405 and reply.error_code == "method-not-allowed"
    assert {"GET", "POST"} <= {m.strip() for m in reply.headers["allow"].split(",")}


def test_a_file_whose_chunks_are_still_arriving_is_refused_before_any_byte(
    small_hub: Hub, tmp_path: Path
) -> None:
    """As sync brings a file node before its chunks: 409 with a clear message, no 200 first."""
    other = LmdbStore(tmp_path / "other")
    try:
        added = files.add_file(other, io.BytesIO(random.Random(5).randbytes(300_000)), name="a.stl")
        with other.read() as txn:
            node = blocks.get_block(txn, added.cid)
    finally:
        other.close()
    small_hub.ctx.store.transact(lambda txn: blocks.put_block(txn, added.cid, node))
    for suffix in ("", "/preview.svg"):
        reply = small_hub.get(f"/api/v1/files/{added.cid}{suffix}")
        assert reply.status == 409 and reply.error_code == "incomplete-file", reply.body
        assert "still" in reply.json()["error"]["message"]
    assert small_hub.get(f"/api/v1/files/{added.cid}/info").json()["size"] == 300_000
