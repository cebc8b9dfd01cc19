"""Alliance membership rules: founders, certificates that expire, revocations, loops."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from craftnet.identity.keys import PrivateKey
from craftnet.identity.membership import (
    Certificate,
    Genesis,
    MemberRevocation,
    Membership,
    MembershipError,
    days_to_ts_span,
)
from craftnet.identity.succession import Revocation, Succession

DAY = days_to_ts_span(1)
FOUNDER, HUB_B, HUB_C, HUB_D, NEW_KEY = (
    PrivateKey.from_seed(bytes([i]) * 32).did for i in range(1, 6)
)
ALLIANCE = "bafyrei-global-micro-manufacturing"


def alliance(max_days: int = 365) -> Membership:
    name = "Global Micro-manufacturing Alliance"
    return Membership(Genesis(ALLIANCE, name, (FOUNDER,), max_days))


def cert(member: str, issuer: str, issued: int, days: int = 30) -> Certificate:
    return Certificate(ALLIANCE, member, issuer, issued, issued + days * DAY)


def test_founders_are_members_from_the_start_and_others_are_not() -> None:
    m = alliance()
    assert m.is_member(FOUNDER, 0)
    assert not m.is_member(HUB_B, 100 * DAY)
    assert m.members(5) == [FOUNDER]


def test_a_certificate_admits_a_hub_until_it_expires() -> None:
    m = alliance()
    m.add([cert(HUB_B, FOUNDER, 10 * DAY, days=30)])
    assert not m.is_member(HUB_B, 10 * DAY - 1)
    assert m.is_member(HUB_B, 10 * DAY)
    assert m.is_member(HUB_B, 40 * DAY - 1)
    assert not m.is_member(HUB_B, 40 * DAY)
    assert m.expiry(HUB_B, 20 * DAY) == 40 * DAY


def test_a_member_admits_others_but_a_non_member_cannot() -> None:
    m = alliance()
    m.add([cert(HUB_B, FOUNDER, 0), cert(HUB_C, HUB_B, 5 * DAY), cert(HUB_D, HUB_C, 100 * DAY)])
    assert m.is_member(HUB_C, 6 * DAY)
    # HUB_C's own certificate had expired when it signed HUB_D's.
    assert not m.is_member(HUB_D, 101 * DAY)
    with pytest.raises(MembershipError, match="was not a member"):
        m.check_certificate(cert(HUB_D, HUB_C, 100 * DAY))


def test_certificates_longer_than_the_alliance_allows_admit_nobody() -> None:
    m = alliance(max_days=30)
    too_long = cert(HUB_B, FOUNDER, 0, days=31)
    m.add([too_long])
    assert not m.is_member(HUB_B, DAY)
    with pytest.raises(MembershipError, match="longer than the alliance allows"):
        m.check_certificate(too_long)


def test_revocation_cuts_a_member_off_and_a_later_certificate_readmits_it() -> None:
    m = alliance()
    m.add([cert(HUB_B, FOUNDER, 0, days=100)])
    m.add([MemberRevocation(ALLIANCE, HUB_B, FOUNDER, 10 * DAY, "lost its key")])
    assert m.is_member(HUB_B, 10 * DAY - 1)
    assert not m.is_member(HUB_B, 10 * DAY)
    m.add([cert(HUB_B, FOUNDER, 20 * DAY)])
    assert m.is_member(HUB_B, 21 * DAY)


def test_only_founders_the_hub_itself_or_its_admitters_may_revoke() -> None:
    m = alliance()
    m.add([cert(HUB_B, FOUNDER, 0), cert(HUB_C, FOUNDER, 0), cert(HUB_D, HUB_B, DAY)])
    m.add([MemberRevocation(ALLIANCE, HUB_C, HUB_B, 2 * DAY)])  # B did not admit C
    assert m.is_member(HUB_C, 3 * DAY)
    m.add([MemberRevocation(ALLIANCE, HUB_D, HUB_B, 2 * DAY)])  # B admitted D
    assert not m.is_member(HUB_D, 3 * DAY)
    m.add([MemberRevocation(ALLIANCE, HUB_C, HUB_C, 4 * DAY)])  # C leaves
    assert not m.is_member(HUB_C, 5 * DAY)


def test_a_revoked_founder_is_no_longer_a_member_and_there_is_no_cascade() -> None:
    m = Membership(Genesis(ALLIANCE, "Maker's Fair hubs", (FOUNDER, HUB_B)))
    m.add([cert(HUB_C, HUB_B, DAY), MemberRevocation(ALLIANCE, HUB_B, FOUNDER, 2 * DAY)])
    assert not m.is_member(HUB_B, 3 * DAY)
    assert m.is_member(HUB_C, 3 * DAY)


def test_certificate_loops_prove_nothing() -> None:
    m = alliance()
    m.add([cert(HUB_B, HUB_C, 0), cert(HUB_C, HUB_B, 0)])
    assert not m.is_member(HUB_B, DAY)
    assert not m.is_member(HUB_C, DAY)


def test_facts_of_other_alliances_are_ignored() -> None:
    m = alliance()
    other = Certificate("bafyrei-other", HUB_B, FOUNDER, 0, DAY)
    assert m.add([other]) == 0
    assert not m.is_member(HUB_B, 1)
    with pytest.raises(MembershipError, match="for alliance"):
        m.check_certificate(other)


def test_a_rotated_key_inherits_the_old_keys_membership_and_the_old_key_loses_it() -> None:
    m = alliance()
    m.add([cert(HUB_B, FOUNDER, 0, days=30), Succession(HUB_B, NEW_KEY, 10 * DAY)])
    assert not m.is_member(NEW_KEY, 10 * DAY - 1)  # not before the succession
    assert m.is_member(NEW_KEY, 10 * DAY)
    assert not m.is_member(HUB_B, 10 * DAY)  # the old key speaks for nobody now
    assert m.is_member(HUB_B, 10 * DAY - 1)
    assert m.expiry(NEW_KEY, 11 * DAY) == 30 * DAY  # as long as the old certificate
    assert not m.is_member(NEW_KEY, 30 * DAY)
    assert m.members(11 * DAY) == sorted([FOUNDER, NEW_KEY])
    # The new key admits others as the old one could.
    m.add([cert(HUB_C, NEW_KEY, 12 * DAY)])
    assert m.is_member(HUB_C, 13 * DAY)


def test_a_rotated_founder_stays_a_founding_member() -> None:
    m = alliance()
    m.add([Succession(FOUNDER, NEW_KEY, 5 * DAY)])
    assert m.is_member(NEW_KEY, 400 * DAY) and m.expiry(NEW_KEY, 400 * DAY) is None
    assert not m.is_member(FOUNDER, 6 * DAY)


def test_revoking_either_key_ends_the_inherited_membership() -> None:
    for revoked in (HUB_B, NEW_KEY):
        m = alliance()
        m.add([cert(HUB_B, FOUNDER, 0, days=30), Succession(HUB_B, NEW_KEY, 10 * DAY)])
        m.add([MemberRevocation(ALLIANCE, revoked, FOUNDER, 20 * DAY, "stolen laptop")])
        assert m.is_member(NEW_KEY, 20 * DAY - 1)
        assert not m.is_member(NEW_KEY, 20 * DAY), revoked


def test_a_succession_signed_by_a_compromised_key_hands_nothing_over() -> None:
    m = alliance()
    m.add([cert(HUB_B, FOUNDER, 0, days=30), Succession(HUB_B, NEW_KEY, 10 * DAY)])
    # The hub says its old key was in a thief's hands from day 8: the succession on
    # day 10 may be the thief's, so the new key inherits nothing.
    m.add([Revocation(HUB_B, 12 * DAY, "key stolen", compromised_since=8 * DAY)])
    assert not m.is_member(NEW_KEY, 11 * DAY)
    assert not m.is_member(HUB_B, 9 * DAY)


def test_copy_tries_facts_without_keeping_them() -> None:
    m = alliance()
    probe = m.copy()
    probe.add([cert(HUB_B, FOUNDER, 0), Succession(HUB_B, NEW_KEY, DAY)])
    assert probe.is_member(NEW_KEY, 2 * DAY)
    assert not m.is_member(NEW_KEY, 2 * DAY) and not m.is_member(HUB_B, DAY)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Genesis(ALLIANCE, "", (FOUNDER,)), "name"),
        (lambda: Genesis(ALLIANCE, "Adopt-a-Workshop", ()), "founding hubs"),
        (lambda: Genesis(ALLIANCE, "Adopt-a-Workshop", (FOUNDER, FOUNDER)), "twice"),
        (lambda: Genesis(ALLIANCE, "Adopt-a-Workshop", ("did:key:zNope",)), "did:key"),
        (lambda: Genesis(ALLIANCE, "Adopt-a-Workshop", (FOUNDER,), 0), "max_cert_days"),
        (lambda: Genesis("", "Adopt-a-Workshop", (FOUNDER,)), "alliance id"),
        (lambda: Certificate(ALLIANCE, HUB_B, FOUNDER, 10, 10), "expire after"),
        (lambda: Certificate(ALLIANCE, HUB_B, FOUNDER, -1, 10), "non-negative"),
        (lambda: Certificate(ALLIANCE, 42, FOUNDER, 0, 10), "did:key string"),  # type: ignore[arg-type]
        (lambda: Certificate(ALLIANCE, HUB_B, FOUNDER, True, 10), "integer"),
        (lambda: MemberRevocation(ALLIANCE, "nobody", FOUNDER, 0), "did:key"),
    ],
)
def test_malformed_facts_are_refused_with_a_reason(build: object, message: str) -> None:
    with pytest.raises(MembershipError, match=message):
        build()  # type: ignore[operator]


HUBS = (FOUNDER, HUB_B, HUB_C, HUB_D, NEW_KEY)
facts = st.lists(
    st.one_of(
        st.builds(
            lambda o, n, t: Succession(HUBS[o], HUBS[n], t * DAY),
            st.integers(0, 3), st.integers(4, 4), st.integers(0, 20),
        ),
        st.builds(
            lambda m, i, t, d: Certificate(ALLIANCE, HUBS[m], HUBS[i], t * DAY, (t + d) * DAY),
            st.integers(1, 3), st.integers(0, 3), st.integers(0, 20), st.integers(1, 20),
        ),
        st.builds(
            lambda m, i, t: MemberRevocation(ALLIANCE, HUBS[m], HUBS[i], t * DAY),
            st.integers(0, 3), st.integers(0, 3), st.integers(0, 30),
        ),
    ),
    max_size=12,
)


@given(facts, st.randoms(use_true_random=False), st.integers(0, 40))
def test_answers_do_not_depend_on_the_order_facts_arrived_in(
    items: list[Certificate | MemberRevocation | Succession], rnd: object, day: int
) -> None:
    first = alliance()
    first.add(items)
    shuffled = list(items)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    second = alliance()
    for item in shuffled:
        second.add([item])
    assert first.members(day * DAY) == second.members(day * DAY)
