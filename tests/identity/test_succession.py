"""Key succession and revocation rules, told through a potter rotating her key."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from craftnet.identity.errors import SuccessionError
from craftnet.identity.keys import PrivateKey
from craftnet.identity.succession import (
    BEGINNING,
    Fact,
    KeyHistory,
    Revocation,
    Succession,
)

# A pool of real did:keys. The potter's keys come first, in the order she used them.
DIDS = [PrivateKey.from_seed(bytes([i]) * 32).did for i in range(1, 13)]
WORKSHOP, LAPTOP, PHONE, THIEF, OTHER = DIDS[:5]


# --- the story of one artisan ---------------------------------------------------------


def test_a_potter_rotates_her_key_and_her_works_stay_together() -> None:
    history = KeyHistory()
    history.add(Succession(WORKSHOP, LAPTOP, ts=1_000))
    history.add(Succession(LAPTOP, PHONE, ts=2_000))

    # Every key of hers leads to the same identity and to the same newest key.
    for did in (WORKSHOP, LAPTOP, PHONE):
        assert history.identity_of(did) == WORKSHOP
        assert history.current(did) == PHONE
        assert history.chain(did) == [WORKSHOP, LAPTOP, PHONE]

    # Records made before a succession still verify against the old key...
    assert history.valid_at(WORKSHOP, 999)
    assert history.valid_at(LAPTOP, 1_500)
    # ...but an old key signing after it handed over is not trusted,
    assert not history.valid_at(WORKSHOP, 1_000)
    assert not history.valid_at(LAPTOP, 2_500)
    # nor is a new key signing before it was named (a backdated record).
    assert not history.valid_at(PHONE, 1_999)
    assert history.valid_at(PHONE, 2_000)
    assert history.start(LAPTOP) == 1_000 and history.end(LAPTOP) == 2_000
    assert history.start(WORKSHOP) == BEGINNING and history.end(PHONE) is None


def test_the_documented_human_treasure_story() -> None:
    """The example table of docs/identity.md, step by step."""
    w, laptop, phone, thief = WORKSHOP, LAPTOP, PHONE, THIEF
    history = KeyHistory()
    assert history.valid_at(w, 100) and history.valid_at(w, 900)
    history.add(Succession(w, laptop, 1_000))
    assert history.valid_at(laptop, 1_200) and history.identity_of(laptop) == w
    assert not history.valid_at(w, 1_300)
    history.add(Succession(laptop, phone, 2_000))
    assert history.current(w) == phone
    with pytest.raises(SuccessionError, match="two successors"):
        history.add(Succession(laptop, thief, 2_500))
    assert history.current(w) == laptop
    assert history.identity_of(thief) == thief and history.identity_of(phone) == phone
    assert history.may_revoke(laptop, laptop)
    history.add(Revocation.void_from(laptop, issued=2_600, since=2_200, reason="copied"))
    assert history.chain(w) == [w, laptop, phone]
    assert history.conflicts == []
    assert history.valid_at(phone, 2_000) and history.valid_at(laptop, 1_999)
    assert not history.valid_at(laptop, 2_200)
    # The other ending: the impostor revokes the laptop key from before her hand-over.
    history.add(Revocation.void_from(laptop, issued=2_700, since=1_900, reason="mine now"))
    assert history.current(w) == laptop and history.identity_of(thief) == thief


def test_a_key_without_history_is_valid_and_its_own_identity() -> None:
    history = KeyHistory()
    assert history.valid_at(OTHER, 0)
    assert history.current(OTHER) == OTHER == history.identity_of(OTHER)
    assert history.chain(OTHER) == [OTHER]


def test_plain_revocation_keeps_earlier_records() -> None:
    history = KeyHistory([Revocation(WORKSHOP, ts=5_000, reason="retired the kiln laptop")])
    assert history.valid_at(WORKSHOP, 4_999)
    assert not history.valid_at(WORKSHOP, 5_000)
    assert history.end(WORKSHOP) == 5_000


def test_compromise_voids_records_from_the_compromise_on() -> None:
    history = KeyHistory(
        [Revocation(WORKSHOP, ts=5_000, reason="laptop stolen", compromised_since=3_000)]
    )
    assert history.valid_at(WORKSHOP, 2_999)
    assert not history.valid_at(WORKSHOP, 3_000)
    assert not history.valid_at(WORKSHOP, 4_000)


def test_revocation_records_map_to_facts() -> None:
    # A revocation record says: issued at `issued`, the key's records are void from `since`.
    late = Revocation.void_from(WORKSHOP, issued=5_000, since=3_000, reason="laptop stolen")
    assert late == Revocation(WORKSHOP, 5_000, "laptop stolen", compromised_since=3_000)
    now = Revocation.void_from(WORKSHOP, issued=5_000, since=5_000, reason="retired")
    assert now == Revocation(WORKSHOP, 5_000, "retired")
    planned = Revocation.void_from(WORKSHOP, issued=5_000, since=9_000, reason="moving hub")
    assert planned == Revocation(WORKSHOP, 9_000, "moving hub")
    with pytest.raises(SuccessionError, match="integer"):
        Revocation.void_from(WORKSHOP, issued=5_000, since=None)  # type: ignore[arg-type]


def test_earliest_revocation_and_compromise_win() -> None:
    history = KeyHistory(
        [
            Revocation(WORKSHOP, ts=9_000, compromised_since=8_000),
            Revocation(WORKSHOP, ts=7_000),
            Revocation(WORKSHOP, ts=9_500, compromised_since=6_000),
        ]
    )
    assert history.end(WORKSHOP) == 7_000
    assert history.valid_at(WORKSHOP, 5_999)
    assert not history.valid_at(WORKSHOP, 6_000)


def test_revoking_an_old_key_does_not_touch_its_successor() -> None:
    history = KeyHistory([Succession(WORKSHOP, LAPTOP, 1_000), Revocation(WORKSHOP, 3_000)])
    assert history.current(WORKSHOP) == LAPTOP
    assert history.valid_at(LAPTOP, 3_500)


def test_a_succession_signed_after_revocation_takes_no_effect() -> None:
    history = KeyHistory([Revocation(WORKSHOP, 1_000, reason="lost")])
    with pytest.raises(SuccessionError, match="after it was revoked"):
        history.add(Succession(WORKSHOP, THIEF, 1_500))
    assert history.current(WORKSHOP) == WORKSHOP
    assert history.identity_of(THIEF) == THIEF


def test_the_same_succession_twice_is_harmless() -> None:
    history = KeyHistory()
    history.add(Succession(WORKSHOP, LAPTOP, 1_000))
    history.add(Succession(WORKSHOP, LAPTOP, 1_000))
    history.add(Succession(WORKSHOP, LAPTOP, 1_200))  # restated later: earliest counts
    assert history.start(LAPTOP) == 1_000
    assert history.conflicts == []


# --- conflicts ------------------------------------------------------------------------


def test_fork_names_both_successors_and_stops_the_identity() -> None:
    history = KeyHistory()
    history.add(Succession(WORKSHOP, LAPTOP, 1_000))
    with pytest.raises(SuccessionError) as info:
        history.add(Succession(WORKSHOP, THIEF, 1_100))
    assert LAPTOP in str(info.value) and THIEF in str(info.value)
    assert "compromised_since" in str(info.value)
    # Neither branch inherits the potter's identity until someone resolves the fork.
    assert history.current(WORKSHOP) == WORKSHOP
    assert history.identity_of(LAPTOP) == LAPTOP
    assert history.identity_of(THIEF) == THIEF
    # The forked key stops at its first hand-over, whoever made it.
    assert not history.valid_at(WORKSHOP, 1_000)
    [conflict] = history.conflicts
    assert conflict.kind == "fork" and conflict.did == WORKSHOP


def test_fork_is_resolved_by_disowning_the_impostor() -> None:
    history = KeyHistory([Succession(WORKSHOP, LAPTOP, 1_000), Succession(WORKSHOP, THIEF, 1_100)])
    # The potter (still holding the workshop key) says it leaked at 1_050.
    history.add(Revocation(WORKSHOP, 1_200, reason="key copied", compromised_since=1_050))
    assert history.conflicts == []
    assert history.current(WORKSHOP) == LAPTOP
    assert history.identity_of(THIEF) == THIEF


def test_fork_is_reported_whichever_arrives_first() -> None:
    first, second = Succession(WORKSHOP, LAPTOP, 1_000), Succession(WORKSHOP, THIEF, 1_100)
    for order in ((first, second), (second, first)):
        history = KeyHistory()
        history.add(order[0])
        with pytest.raises(SuccessionError, match="two successors"):
            history.add(order[1])
        assert history.current(WORKSHOP) == WORKSHOP


def test_contested_successor() -> None:
    history = KeyHistory([Succession(WORKSHOP, PHONE, 1_000)])
    with pytest.raises(SuccessionError, match="named as successor by two keys"):
        history.add(Succession(OTHER, PHONE, 1_100))
    assert history.identity_of(PHONE) == PHONE


@pytest.mark.parametrize("length", [2, 3, 5])
def test_cycles_are_refused_and_never_loop(length: int) -> None:
    keys = DIDS[:length]
    history = KeyHistory()
    for i in range(length - 1):
        history.add(Succession(keys[i], keys[i + 1], 1_000 * (i + 1)))
    with pytest.raises(SuccessionError, match="cycle"):
        history.add(Succession(keys[-1], keys[0], 1_000 * length))
    for did in keys:
        assert history.current(did) == did == history.identity_of(did)


def test_a_succession_before_the_key_was_valid_is_ignored() -> None:
    history = KeyHistory([Succession(WORKSHOP, LAPTOP, 2_000)])
    with pytest.raises(SuccessionError, match="before it became valid"):
        history.add(Succession(LAPTOP, PHONE, 1_500))
    assert history.current(WORKSHOP) == LAPTOP
    assert history.identity_of(PHONE) == PHONE


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Succession(WORKSHOP, WORKSHOP, 1), "cannot succeed itself"),
        (lambda: Succession("did:key:zNope", LAPTOP, 1), "old key of a succession"),
        (lambda: Succession(WORKSHOP, "did:web:hub", 1), "new key of a succession"),
        (lambda: Succession(WORKSHOP, LAPTOP, "1"), "integer timestamp"),  # type: ignore[arg-type]
        (lambda: Succession(WORKSHOP, LAPTOP, True), "integer timestamp"),
        (lambda: Revocation("x", 1), "revoked key"),
        (lambda: Revocation(WORKSHOP, 1, compromised_since=2), "cannot know of a compromise"),
        (lambda: Revocation(WORKSHOP, 1, compromised_since=1.5), "integer timestamp"),  # type: ignore[arg-type]
    ],
)
def test_malformed_facts_are_refused(make: Callable[[], object], message: str) -> None:
    with pytest.raises(SuccessionError, match=message):
        make()


def test_only_facts_are_accepted() -> None:
    with pytest.raises(SuccessionError, match="not a succession or revocation"):
        KeyHistory().extend(["succession"])  # type: ignore[list-item]


def test_who_may_revoke() -> None:
    history = KeyHistory([Succession(WORKSHOP, LAPTOP, 1_000), Succession(LAPTOP, PHONE, 2_000)])
    assert history.may_revoke(WORKSHOP, WORKSHOP)
    assert history.may_revoke(PHONE, WORKSHOP)  # the newer key disowns the older
    assert not history.may_revoke(WORKSHOP, PHONE)  # not the other way round
    assert not history.may_revoke(OTHER, WORKSHOP)
    assert history.may_revoke(OTHER, OTHER)


# --- properties over random chains ----------------------------------------------------


@st.composite
def chains(draw: st.DrawFn) -> tuple[list[str], list[int], list[Succession]]:
    """A chain of 1-8 distinct keys with strictly increasing succession times."""
    keys = draw(st.lists(st.sampled_from(DIDS), min_size=1, max_size=8, unique=True))
    gaps = draw(st.lists(st.integers(1, 1_000), min_size=len(keys) - 1, max_size=len(keys) - 1))
    times, now = [], draw(st.integers(-10_000, 10_000))
    for gap in gaps:
        now += gap
        times.append(now)
    links = [Succession(keys[i], keys[i + 1], times[i]) for i in range(len(keys) - 1)]
    return keys, times, draw(st.permutations(links))


@given(chain=chains(), probe=st.integers(-20_000, 30_000))
def test_a_chain_has_one_identity_one_head_and_one_valid_key_at_a_time(
    chain: tuple[list[str], list[int], list[Succession]], probe: int
) -> None:
    keys, _, links = chain
    history = KeyHistory()
    for link in links:  # in any arrival order
        history.add(link)
    assert history.conflicts == []
    for did in keys:
        assert history.identity_of(did) == keys[0]
        assert history.current(did) == keys[-1]
        assert history.chain(did) == keys
    # The validity windows tile the timeline: exactly one key speaks at any time.
    assert sum(history.valid_at(did, probe) for did in keys) == 1


@given(chain=chains(), data=st.data())
def test_retiring_a_key_after_its_hand_over_touches_only_that_key(
    chain: tuple[list[str], list[int], list[Succession]], data: st.DataObject
) -> None:
    keys, _, links = chain
    before = KeyHistory(links)
    victim = data.draw(st.sampled_from(keys))
    end = before.end(victim)
    start = before.start(victim)
    # Strictly after the hand-over: a key revoked at ts cannot sign a hand-over at ts.
    low = end + 1 if end is not None else (start if start != BEGINNING else -20_000)
    at = data.draw(st.integers(low, low + 2_000))
    after = KeyHistory([*links, Revocation(victim, at, reason="retired")])
    probe = data.draw(st.integers(-20_000, 30_000))
    for did in keys:
        expected = before.valid_at(did, probe) and (did != victim or probe < at)
        assert after.valid_at(did, probe) == expected
        assert after.chain(did) == keys


@given(chain=chains(), data=st.data())
def test_revoking_a_key_before_it_hands_over_voids_the_hand_over(
    chain: tuple[list[str], list[int], list[Succession]], data: st.DataObject
) -> None:
    keys, times, links = chain
    if len(keys) < 2:
        return
    i = data.draw(st.integers(0, len(keys) - 2))
    at = times[i] - data.draw(st.integers(0, 100))
    if i > 0:
        at = max(at, times[i - 1])
    history = KeyHistory([*links, Revocation(keys[i], at, reason="lost")])
    assert history.current(keys[0]) == keys[i]
    assert history.identity_of(keys[i + 1]) == keys[i + 1]


@given(chain=chains(), data=st.data())
def test_a_second_successor_forks_and_names_both(
    chain: tuple[list[str], list[int], list[Succession]], data: st.DataObject
) -> None:
    keys, times, links = chain
    if len(keys) < 2:
        return
    history = KeyHistory(links)
    i = data.draw(st.integers(0, len(keys) - 2))
    rival = data.draw(st.sampled_from([d for d in DIDS if d not in keys]))
    with pytest.raises(SuccessionError) as info:
        history.add(Succession(keys[i], rival, times[i] + 1))
    for did in (keys[i], keys[i + 1], rival):
        assert did in str(info.value)
    assert history.current(keys[0]) == keys[i]
    assert history.identity_of(rival) == rival
    assert history.identity_of(keys[i + 1]) == keys[i + 1]


@given(chain=chains(), data=st.data())
def test_closing_a_chain_into_a_loop_is_refused(
    chain: tuple[list[str], list[int], list[Succession]], data: st.DataObject
) -> None:
    keys, times, links = chain
    if len(keys) < 2:
        return
    history = KeyHistory(links)
    back_to = data.draw(st.integers(0, len(keys) - 2))
    with pytest.raises(SuccessionError):
        history.add(Succession(keys[-1], keys[back_to], times[-1] + 1))
    for did in keys:  # every question still terminates
        history.current(did)
        history.identity_of(did)
        history.chain(did)


@st.composite
def fact_soups(draw: st.DrawFn) -> list[Fact]:
    """Arbitrary facts over a few keys: forks, cycles, revocations, duplicates."""
    pool = DIDS[:6]
    facts: list[Fact] = []
    for _ in range(draw(st.integers(0, 14))):
        if draw(st.booleans()):
            old, new = draw(st.lists(st.sampled_from(pool), min_size=2, max_size=2, unique=True))
            facts.append(Succession(old, new, draw(st.integers(0, 50))))
        else:
            ts = draw(st.integers(0, 50))
            since = draw(st.none() | st.integers(0, ts))
            facts.append(Revocation(draw(st.sampled_from(pool)), ts, "", since))
    return facts


def _snapshot(history: KeyHistory) -> object:
    pool = DIDS[:6]
    return (
        {d: (history.current(d), history.identity_of(d), history.chain(d)) for d in pool},
        {(d, t): history.valid_at(d, t) for d in pool for t in range(-1, 52, 3)},
        sorted((c.kind, c.did, c.successions) for c in history.conflicts),
    )


@given(facts=fact_soups(), order=st.randoms(use_true_random=False))
def test_arrival_order_never_matters(facts: list[Fact], order: random.Random) -> None:
    shuffled = list(facts)
    order.shuffle(shuffled)
    one_by_one = KeyHistory()
    for fact in shuffled:
        with contextlib.suppress(SuccessionError):  # refused now, kept for later
            one_by_one.add(fact)
    assert _snapshot(one_by_one) == _snapshot(KeyHistory(facts))


@given(facts=fact_soups(), split=st.integers(0, 14))
def test_bulk_load_then_live_adds_equals_bulk_load_of_all(facts: list[Fact], split: int) -> None:
    history = KeyHistory(facts[:split])
    for fact in facts[split:]:
        with contextlib.suppress(SuccessionError):
            history.add(fact)
    assert _snapshot(history) == _snapshot(KeyHistory(facts))
    assert history.facts == frozenset(facts)


@given(facts=fact_soups())
def test_effective_successions_form_simple_chains(facts: list[Fact]) -> None:
    history = KeyHistory(facts)
    for did in DIDS[:6]:
        chain = history.chain(did)
        assert len(chain) == len(set(chain))  # no key twice: no cycles survive
        assert did in chain
        starts = [history.start(k) for k in chain]
        assert starts == sorted(starts)  # each link after the one before
