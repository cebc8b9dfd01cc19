"""Alliance records in a store: genesis, invitations as tokens, joining, revoking."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from craftnet.archive import codec
from craftnet.archive.alliance import (
    MAX_ORGANISATION_CHARS,
    TOKEN_PREFIX,
    AllianceView,
    accept_token,
    check_organisation,
    create_alliance,
    hlc_now,
    invite,
    issue_certificate,
    load_membership,
    make_token,
    member_labels,
    read_token,
    revoke_member,
)
from craftnet.archive.cid import Cid
from craftnet.archive.index import publish
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.identity.errors import IdentityError
from craftnet.identity.keys import PrivateKey
from craftnet.identity.membership import MembershipError
from craftnet.identity.verify import KeyVerifier


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
        read_token(TOKEN_PREFIX + "A" * 50_000)
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


def test_a_proof_lets_a_member_whose_certificate_we_lack_in_at_first_contact(
    stores: list[LmdbStore], tmp_path: Path
) -> None:
    # The founder admits the Oaxaca and Lisbon hubs; the Oaxaca hub admits the Nairobi
    # hub (its token carries Oaxaca's own proof). Lisbon holds the genesis and its own
    # certificate, nothing about Nairobi.
    founder, oaxaca, nairobi, lisbon = (PrivateKey.generate() for _ in range(4))
    genesis = create_alliance(stores[0], founder, "Global Micro-manufacturing Alliance")
    alliance = str(genesis.cid)
    _, to_oaxaca = invite(stores[0], founder, alliance, oaxaca.did)
    accept_token(stores[1], to_oaxaca, oaxaca.did)
    nairobi_cert, to_nairobi = invite(stores[1], oaxaca, alliance, nairobi.did)
    _, to_lisbon = invite(stores[0], founder, alliance, lisbon.did)
    with LmdbStore(tmp_path / "nairobi") as nairobi_store, LmdbStore(tmp_path / "lisbon") as ls:
        accept_token(nairobi_store, to_nairobi, nairobi.did)  # joined via a non-founder
        accept_token(ls, to_lisbon, lisbon.did)
        lisbon_view = AllianceView(ls, alliance, lisbon.did)
        assert not lisbon_view.is_member(nairobi.did)

        proof = AllianceView(nairobi_store, alliance, nairobi.did).proof()
        assert len(proof) == 2 and nairobi_cert.block in proof
        learned = lisbon_view.admit(nairobi.did, proof, KeyVerifier())
        assert learned is not None and {r.block for r in learned} == set(proof)
        assert lisbon_view.is_member(nairobi.did) and lisbon_view.is_member(oaxaca.did)
        # Learned facts survive a reload from a store that does not hold them yet.
        lisbon_view.reload()
        assert lisbon_view.is_member(nairobi.did)
        assert lisbon_view.admit(nairobi.did, proof, KeyVerifier()) == []
        # The founder needs no proof; a proof naming someone else proves nothing.
        assert AllianceView(stores[0], alliance, founder.did).proof() == ()
        stranger = PrivateKey.generate()
        assert lisbon_view.admit(stranger.did, proof, KeyVerifier()) is None
        assert lisbon_view.admit(stranger.did, (), KeyVerifier()) is None


def test_after_a_rotation_the_new_key_proves_membership_through_the_succession(
    stores: list[LmdbStore],
) -> None:
    founder, old, new = (PrivateKey.generate() for _ in range(3))
    genesis = create_alliance(stores[0], founder, "Neo-Vernacular builders")
    alliance = str(genesis.cid)
    cert, token = invite(stores[0], founder, alliance, old.did)
    accept_token(stores[1], token, old.did)
    succession = publish(stores[1], old, "key-succession", {"new": new.did, "reason": "routine"})
    view = AllianceView(stores[1], alliance, new.did)
    assert view.is_member(new.did) and not view.is_member(old.did)
    proof = view.proof()
    assert set(proof) == {cert.block, succession.block}

    founder_view = AllianceView(stores[0], alliance, founder.did)
    assert not founder_view.is_member(new.did)
    learned = founder_view.admit(new.did, proof, KeyVerifier())
    assert learned is not None and {r.cid for r in learned} == {succession.cid}
    assert founder_view.is_member(new.did) and not founder_view.is_member(old.did)
    assert load_membership(stores[1], alliance).members(hlc_now()) == sorted(
        [founder.did, new.did]
    )


def test_a_forged_or_foreign_proof_is_refused_with_a_reason(stores: list[LmdbStore]) -> None:
    founder, member = PrivateKey.generate(), PrivateKey.generate()
    genesis = create_alliance(stores[0], founder, "Maker's Fair hubs")
    alliance = str(genesis.cid)
    cert = issue_certificate(stores[0], founder, alliance, member.did)
    view = AllianceView(stores[0], alliance, founder.did)
    forged = bytearray(cert.block)
    forged[-3] ^= 1
    with pytest.raises(IdentityError):
        view.admit(PrivateKey.generate().did, (bytes(forged),), KeyVerifier())
    with pytest.raises(MembershipError, match="no part of a membership proof"):
        view.admit(PrivateKey.generate().did, (genesis.block,), KeyVerifier())
    with pytest.raises(MembershipError, match="malformed"):
        view.admit(PrivateKey.generate().did, (b"\xa0",), KeyVerifier())
    with pytest.raises(MembershipError, match="at most"):
        view.admit(PrivateKey.generate().did, (cert.block,) * 17, KeyVerifier())


# ---------------------------------------------------------------------- organisations


def test_an_invitation_carries_the_organisation_to_the_joining_hub(
    stores: list[LmdbStore],
) -> None:
    founder, newcomer = PrivateKey.generate(), PrivateKey.generate()
    alliance = str(create_alliance(stores[0], founder, "Global Micro-manufacturing Alliance").cid)
    cert, token = invite(stores[0], founder, alliance, newcomer.did, days=30,
                         name="Oaxaca hub", organisation="  Lisbon Makers Co-op ")
    assert cert.body["organisation"] == "Lisbon Makers Co-op"  # surrounding spaces dropped
    accept_token(stores[1], token, newcomer.did)
    for store in stores:
        assert member_labels(store, alliance) == {
            newcomer.did: {"name": "Oaxaca hub", "organisation": "Lisbon Makers Co-op"}
        }
    # A newer certificate (a renewal) says who runs the hub now.
    invite(stores[0], founder, alliance, newcomer.did, days=60, organisation="Highland Weavers")
    assert member_labels(stores[0], alliance)[newcomer.did] == {"organisation": "Highland Weavers"}
    plain = PrivateKey.generate()
    issue_certificate(stores[0], founder, alliance, plain.did, days=30)
    assert plain.did not in member_labels(stores[0], alliance)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("", "needs a name"),
        ("   \t ", "needs a name"),
        ("x" * (MAX_ORGANISATION_CHARS + 1), "at most 200 characters"),
        ("Lisbon\nMakers", "U+000A"),
        ("\x1b[31mRed Co-op", "U+001B"),
        ("Evil\u202eCorp", "U+202E"),  # a right-to-left override
        ("Zero\u200bWidth", "U+200B"),
        ("Line\u2028Sep", "U+2028"),
        ("Private\ue000Use", "U+E000"),
        ("Unassigned\U000e0080", "U+E0080"),
        ("Lone\ud800Surrogate", "U+D800"),
        ("-- !!", "at least one letter or digit"),
        (42, "is text, got int"),
        (None, "is text, got NoneType"),
    ],
)
def test_hostile_organisations_are_refused_saying_why(value: object, words: str) -> None:
    with pytest.raises(MembershipError, match=words.replace("+", "\\+").replace("[", "\\[")):
        check_organisation(value)


def test_organisations_in_any_script_are_taken() -> None:
    for name in ("Cooperativa Tecelã do Alto", "東京ファブラボ", "Ателье «Ремесло»", "x" * 200):
        assert check_organisation(name) == name


def test_a_hostile_organisation_another_hub_signed_is_not_shown(stores: list[LmdbStore]) -> None:
    founder, member = PrivateKey.generate(), PrivateKey.generate()
    alliance = str(create_alliance(stores[0], founder, "Global Micro-manufacturing Alliance").cid)
    with pytest.raises(MembershipError, match="U\\+202E"):
        issue_certificate(stores[0], founder, alliance, member.did, organisation="A\u202eB")
    # Written by another implementation, past our checks: the record is valid, the label
    # is left out of member lists (witness counts still group by the raw value).
    publish(stores[0], founder, "membership",
            {"alliance": Cid.parse(alliance), "member": member.did,
             "expires": hlc_now() + (30 * 86_400_000 << 16), "organisation": "A\u202eB"},
            links=[Cid.parse(alliance)])
    assert load_membership(stores[0], alliance).is_member(member.did, hlc_now())
    assert member_labels(stores[0], alliance) == {}
