"""Key-succession and revocation records feed the identity layer's KeyHistory."""

from __future__ import annotations

from craftnet.archive.hlc import pack
from craftnet.archive.index import ingest_records
from craftnet.archive.key_facts import key_facts, key_history
from craftnet.archive.records import Record
from craftnet.archive.store import Store
from craftnet.identity.keys import PrivateKey

OLD = PrivateKey.from_seed(b"rustic-futurism-hub-potter-00001")
NEW = PrivateKey.from_seed(b"rustic-futurism-hub-potter-00002")
STRANGER = PrivateKey.from_seed(b"someone-at-the-maker-fair-000003")
T0 = pack(2_000_000_000_000)


def succession(ts: int) -> Record:
    body = {"new": NEW.did, "reason": "yearly rotation"}
    return Record.create(OLD, "key-succession", body, ts=ts)


def revocation(by: PrivateKey, since: int, ts: int) -> Record:
    body = {"did": OLD.did, "since": since, "reason": "old laptop stolen"}
    return Record.create(by, "revocation", body, ts=ts)


def test_facts_are_stored_and_found_from_both_keys(store: Store) -> None:
    handover, revoked = succession(T0), revocation(NEW, T0 + 50, T0 + 60)
    assert ingest_records(store, [handover.block, revoked.block]).ok
    with store.read() as txn:
        about_old = key_facts(txn, OLD.did)
        about_new = key_facts(txn, NEW.did)
        everything = key_facts(txn)
    assert [(f.kind, f.other, f.record) for f in about_old] == [
        ("succession", NEW.did, handover.cid),
        ("revocation", NEW.did, revoked.cid),
    ]
    assert about_old[0].reason == "yearly rotation"
    assert about_old[1].since == T0 + 50
    assert about_old[1].ts == T0 + 60
    assert [(f.kind, f.other) for f in about_new] == [("predecessor", OLD.did)]
    assert len(everything) == 3


def test_key_history_follows_the_chain(store: Store) -> None:
    ingest_records(store, [succession(T0 + 10).block])
    with store.read() as txn:
        history = key_history(txn)
    assert history.current(OLD.did) == NEW.did
    assert history.identity_of(NEW.did) == OLD.did
    assert history.valid_at(OLD.did, T0 + 9)
    assert not history.valid_at(OLD.did, T0 + 10)
    assert history.valid_at(NEW.did, T0 + 10)


def test_a_revocation_dated_back_marks_a_compromise(store: Store) -> None:
    # The new key says the old one was stolen at T0 + 5; the "succession" signed at
    # T0 + 10 may be the thief's, so it takes no effect.
    ingest_records(store, [succession(T0 + 10).block, revocation(OLD, T0 + 5, T0 + 20).block])
    with store.read() as txn:
        history = key_history(txn)
    assert history.valid_at(OLD.did, T0 + 4)
    assert not history.valid_at(OLD.did, T0 + 5)
    assert history.current(OLD.did) == OLD.did


def test_a_future_since_retires_the_key_then(store: Store) -> None:
    ingest_records(store, [revocation(OLD, T0 + 100, T0).block])
    with store.read() as txn:
        history = key_history(txn)
    assert history.valid_at(OLD.did, T0 + 99)
    assert not history.valid_at(OLD.did, T0 + 100)


def test_strangers_cannot_revoke_someone_elses_key(store: Store) -> None:
    ingest_records(store, [revocation(STRANGER, T0, T0).block])
    with store.read() as txn:
        assert len(key_facts(txn, OLD.did)) == 1  # kept, as every signed record is
        history = key_history(txn)
    assert history.valid_at(OLD.did, T0 + 1_000)
