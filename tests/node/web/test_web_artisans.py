"""Artisans as themselves: login with handle and passphrase, sessions that end, the
operator's policy on who may add keys, and one publication per submit."""

from __future__ import annotations

from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from craftnet.archive.lmdb_store import LmdbStore
from craftnet.node.web.auth import ARTISAN_SESSION_SECONDS, Gate
from craftnet.node.web.replies import Replies
from craftnet.node.web.strength import rate
from tests.node.web.web_hub import Hub, Reply, make_artisan, start_hub

PASS = "clay and fire"
CSRF = {"X-Requested-With": "craftnet"}
TECHNIQUE = {"title": "Pit firing", "steps": ["Dig", "Fire"], "licence": "CC-BY-4.0"}


def cookie_of(reply: Reply) -> dict[str, str]:
    """The session cookie a reply set, as a request header."""
    jar: SimpleCookie = SimpleCookie()
    jar.load(reply.headers["set-cookie"])
    return {"Cookie": f"craftnet_session={jar['craftnet_session'].value}"}


def login(hub: Hub, handle: str = "amaia", passphrase: str = PASS) -> Reply:
    """POST /api/v1/session as an artisan."""
    return hub.request("POST", "/api/v1/session", {"handle": handle, "passphrase": passphrase})


def as_artisan(hub: Hub, cookie: dict[str, str], method: str, path: str, body: Any) -> Reply:
    """A write in the artisan's browser session (cookie and CSRF header)."""
    return hub.request(method, path, body, headers={**cookie, **CSRF})


def test_an_artisan_logs_in_and_publishes_signed_by_their_own_key(hub: Hub) -> None:
    did = make_artisan(hub)
    reply = login(hub)
    assert reply.status == 200 and reply.json() == {
        "logged_in": True,
        "role": "artisan",
        "handle": "amaia",
    }
    assert (
        "HttpOnly" in reply.headers["set-cookie"]
        and "SameSite=Strict" in reply.headers["set-cookie"]
    )
    cookie = cookie_of(reply)
    status = hub.request("GET", "/api/v1/status", headers=cookie).json()
    assert status["artisan"] == "amaia" and status["operator"] is False
    made = as_artisan(
        hub, cookie, "POST", "/api/v1/records", {"type": "technique", "body": TECHNIQUE}
    )
    assert made.status == 201, made.body
    assert made.json()["record"]["author"] == did
    # The same write without the CSRF header is refused: a cross-site form cannot send it.
    forged = hub.request(
        "POST", "/api/v1/records", {"type": "technique", "body": TECHNIQUE}, headers=cookie
    )
    assert forged.status == 403 and forged.error_code == "csrf"


def test_a_wrong_passphrase_or_token_says_so_and_opens_nothing(hub: Hub) -> None:
    make_artisan(hub)
    wrong = login(hub, passphrase="clay and water")
    assert wrong.status == 401 and wrong.error_code == "wrong-passphrase"
    assert "wrong passphrase" in wrong.json()["error"]["message"]
    assert "set-cookie" not in wrong.headers
    nobody = login(hub, handle="mallory")
    assert nobody.status == 401 and nobody.error_code == "unknown-artisan"
    token = hub.request("POST", "/api/v1/session", {"token": "cnt_not-it"})
    assert token.status == 401 and "wrong token" in token.json()["error"]["message"]


def test_logout_ends_the_session_and_drops_the_key(hub: Hub) -> None:
    make_artisan(hub)
    cookie = cookie_of(login(hub))
    out = hub.request("DELETE", "/api/v1/session", headers=cookie)
    assert out.status == 200 and out.json() == {"logged_in": False}
    after = as_artisan(
        hub, cookie, "POST", "/api/v1/records", {"type": "technique", "body": TECHNIQUE}
    )
    assert after.status == 401


def test_sessions_expire() -> None:
    now = [1000.0]
    gate = Gate("0" * 64, clock=lambda: now[0])
    sid = gate.open_session()
    assert gate.session_ok(sid)
    now[0] += ARTISAN_SESSION_SECONDS * 10
    assert not gate.session_ok(sid) and gate.session(sid) is None


def test_an_artisan_session_cannot_change_the_policy_or_add_keys(hub: Hub) -> None:
    make_artisan(hub)
    cookie = cookie_of(login(hub))
    policy = as_artisan(hub, cookie, "PUT", "/api/v1/policy", {"walk_in_keys": True})
    assert policy.status == 403 and policy.error_code == "operator-only"
    key = as_artisan(
        hub, cookie, "POST", "/api/v1/keys", {"handle": "lin", "passphrase": "ink on washi"}
    )
    assert key.status == 403


def test_walk_ins_make_a_key_only_when_the_operator_allows_and_are_logged_in(hub: Hub) -> None:
    body = {"handle": "lin", "passphrase": "ink on washi paper"}
    refused = hub.request("POST", "/api/v1/keys", body, headers=CSRF)
    assert refused.status == 401 and refused.error_code == "operator-only"
    allowed = hub.request("PUT", "/api/v1/policy", {"walk_in_keys": True}, auth=True)
    assert allowed.status == 200 and allowed.json() == {"walk_in_keys": True}
    assert hub.get("/api/v1/policy").json() == {"walk_in_keys": True}
    assert (hub.home / "web-policy.json").exists()  # kept across restarts
    made = hub.request("POST", "/api/v1/keys", body, headers=CSRF)
    assert made.status == 201, made.body
    cookie = cookie_of(made)
    status = hub.request("GET", "/api/v1/status", headers=cookie).json()
    assert status["artisan"] == "lin"


def test_guessable_passphrases_are_refused_with_a_hint_in_plain_words(hub: Hub) -> None:
    for weak in ("1234", "password", "amaia2035"):
        reply = hub.post("/api/v1/keys", {"handle": "amaia", "passphrase": weak})
        assert reply.status == 422 and reply.error_code == "weak-passphrase", weak
        assert reply.json()["error"]["message"].startswith("This passphrase is")
    verdict = hub.request("POST", "/api/v1/keys/strength", {"passphrase": "password"}).json()
    assert verdict["ok"] is False and "common" in verdict["hint"]
    assert rate("kiln glaze at dawn").ok


def test_the_same_submit_twice_publishes_once(hub: Hub) -> None:
    make_artisan(hub)
    cookie = cookie_of(login(hub))
    before = hub.record_count()
    headers = {**cookie, **CSRF, "Idempotency-Key": "form-1-abcdefgh"}
    body = {"type": "technique", "body": TECHNIQUE}
    first = hub.request("POST", "/api/v1/records", body, headers=headers)
    again = hub.request("POST", "/api/v1/records", body, headers=headers)
    assert first.status == 201 and again.status == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert first.json()["cid"] == again.json()["cid"]
    assert hub.record_count() == before + 1
    other = hub.request(
        "POST", "/api/v1/records", body, headers={**headers, "Idempotency-Key": "form-2-abcdefgh"}
    )
    assert other.status == 201 and hub.record_count() == before + 2


def test_step_photos_must_be_on_the_hub(hub: Hub) -> None:
    make_artisan(hub)
    photo = hub.post("/api/v1/files?name=hands.png", raw=b"\x89PNG fake", headers={})
    assert photo.status == 201
    steps = [
        {"text": "Wedge the clay", "media": [photo.json()["cid"]]},
        {"text": "Throw", "media": []},
    ]
    body = {**TECHNIQUE, "steps": steps}
    made = hub.post(
        "/api/v1/records",
        {"type": "technique", "artisan": "amaia", "passphrase": PASS, "body": body},
    )
    assert made.status == 201, made.body
    assert made.json()["record"]["links"] == [photo.json()["cid"]]
    missing = "bafkr4ibuhqmlzx4yx3ygcszqn5r6qhcn2qxd3wbvnvvobrg4ipmgfsnjmm"
    body["steps"][1]["media"] = [missing]
    refused = hub.post(
        "/api/v1/records",
        {"type": "technique", "artisan": "amaia", "passphrase": PASS, "body": body},
    )
    assert refused.status == 409 and refused.error_code == "missing-file"


def test_an_unknown_artisan_is_a_404_page_and_answer(hub: Hub) -> None:
    nobody = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
    assert hub.get(f"/api/v1/artisans/{nobody}").status == 404
    page = hub.get(f"/artisans/{nobody}")
    assert page.status == 404 and b"<h1>404" in page.body


def test_the_same_submit_after_a_restart_still_publishes_once(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    first_run = start_hub(home)
    try:
        make_artisan(first_run)
        body = {"type": "technique", "artisan": "amaia", "passphrase": PASS, "body": TECHNIQUE}
        headers = {"Idempotency-Key": "form-restart-1"}
        first = first_run.post("/api/v1/records", body, headers=headers)
        assert first.status == 201
        # The answer was kept with the record; a key used by another signer is another slot.
        for n in range(3):
            assert first_run.post("/api/v1/records", body,
                                  headers={"Idempotency-Key": f"form-other-{n}"}).status == 201
    finally:
        first_run._stop()
    second_run = start_hub(home)  # a restarted hub: the same store and keystore
    try:
        before = second_run.record_count()
        again = second_run.post("/api/v1/records", body, headers=headers)
        assert again.status == 200 and again.headers["idempotent-replayed"] == "true"
        assert again.json()["cid"] == first.json()["cid"]
        assert again.json()["record"] == first.json()["record"]
        assert second_run.record_count() == before
    finally:
        second_run._stop()


def test_only_the_last_answers_are_kept(tmp_path: Path) -> None:
    replies = Replies(kept=3)
    with LmdbStore(tmp_path / "store") as store:
        for n in range(5):
            store.transact(lambda txn, n=n: replies.put(txn, ("did:key:z6Mk", f"key-{n}"),
                                                        {"cid": str(n), "warnings": []}))
        with store.read() as txn:
            kept = [replies.get(txn, ("did:key:z6Mk", f"key-{n}")) for n in range(5)]
            assert kept[:2] == [None, None]
            assert [k["cid"] for k in kept[2:] if k] == ["2", "3", "4"]
            assert replies.get(txn, ("did:key:z6Mkother", "key-4")) is None
            assert txn.count("meta") <= 3 * 2 + 1 + 2  # slots, ring, next (+ the store's own)
