"""Alliance records in a store: genesis, invitations as tokens, joining, revoking."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from craftnet.archive import codec
from craftnet.archive.alliance import (
    TOKEN_PREFIX,
    accept_token,
    create_alliance,
    hlc_now,
    issue_certificate,
    load_membership,
    make_token,
    read_token,
    revoke_member,
)
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.identity.keys import PrivateKey
from craftnet.identity.membership import MembershipError


@pytest.fixture
def stores(tmp_path: Path) -> list[LmdbStore]:
    made = [LmdbStore(tmp_path / f"hub{i}") for i in range(2)]
    yield made  # type: ignore[misc]
    for store in made:
        store.close()


def test_invite_and_join_make_the_new_hub_a_member_on_both_sides(stores: list[LmdbStore]) -> None:
    founder, newcomer = PrivateKey.generate(), PrivateKey.generate()
    genesis = create_alliance(
        stores[0],
        founder,
        "Intergenerational Making Cooperatives",
        rules="Share designs under open licences.",
    )
    alliance = str(genesis.cid)
    cert = issue_certificate(stores[0], founder, alliance, newcomer.did, days=90, name="Oaxaca hub")
    token = make_token(genesis, cert)
    assert token.startswith(TOKEN_PREFIX)

    joined = accept_token(stores[1], token, newcomer.did)
    assert joined.name == "Intergenerational Making Cooperatives"
    for store in stores:
        membership = load_membership(store, alliance)
        assert membership.is_member(newcomer.did, hlc_now())
        assert membership.is_member(founder.did, hlc_now())


def test_a_token_for_another_hub_or_a_damaged_token_is_refused(stores: list[LmdbStore]) -> None:
    founder, newcomer = PrivateKey.generate(), PrivateKey.generate()
    genesis = create_alliance(stores[0], founder, "Adopt-a-Workshop")
    cert = issue_certificate(stores[0], founder, str(genesis.cid), newcomer.did)
    token = make_token(genesis, cert)
    with pytest.raises(MembershipError, match="is for"):
        accept_token(stores[1], token, PrivateKey.generate().did)
    with pytest.raises(MembershipError, match="starts with"):
        read_token("hello")
    with pytest.raises(MembershipError, match="damaged"):
        read_token(token[:-7])
    with pytest.raises(MembershipError, match="starts with"):
        read_token(TOKEN_PREFIX + "A" * 20_000)
    # Well-formed CBOR that is not a token.
    other = TOKEN_PREFIX + base64.urlsafe_b64encode(codec.encode({"v": 2})).decode()
    with pytest.raises(MembershipError, match="not one this version"):
        read_token(other)
    # A record whose signature was tampered with.
    raw = codec.decode(base64.urlsafe_b64decode(token[len(TOKEN_PREFIX) :] + "=="))
    block = bytearray(raw["c"])
    block[-3] ^= 1
    bad = codec.encode({"v": 1, "g": raw["g"], "c": bytes(block)})
    with pytest.raises(MembershipError, match="do not verify"):
        read_token(TOKEN_PREFIX + base64.urlsafe_b64encode(bad).decode().rstrip("="))
    # Swapped: the "certificate" is the genesis.
    swapped = codec.encode({"v": 1, "g": raw["g"], "c": raw["g"]})
    with pytest.raises(MembershipError, match="membership certificate"):
        read_token(TOKEN_PREFIX + base64.urlsafe_b64encode(swapped).decode())


def test_a_non_member_cannot_invite_and_revocation_ends_membership(
    stores: list[LmdbStore],
) -> None:
    founder, member, outsider = (PrivateKey.generate() for _ in range(3))
    genesis = create_alliance(stores[0], founder, "Living Heritage Program hubs")
    alliance = str(genesis.cid)
    with pytest.raises(MembershipError, match="was not a member"):
        issue_certificate(stores[0], outsider, alliance, member.did)
    issue_certificate(stores[0], founder, alliance, member.did)
    with pytest.raises(MembershipError, match="may not revoke"):
        revoke_member(stores[0], outsider, alliance, member.did)
    revoke_member(stores[0], founder, alliance, member.did, "hub closed")
    assert not load_membership(stores[0], alliance).is_member(member.did, hlc_now())


def test_an_unknown_alliance_says_how_to_join(stores: list[LmdbStore]) -> None:
    genesis = create_alliance(stores[0], PrivateKey.generate(), "Rustic Futurism circle")
    with pytest.raises(MembershipError, match="join with an invitation"):
        load_membership(stores[1], str(genesis.cid))
    with pytest.raises(MembershipError, match="not an alliance id"):
        load_membership(stores[1], "not-a-cid")
