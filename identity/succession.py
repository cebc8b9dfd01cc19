"""Key succession (rotation) and revocation: which key speaks for whom, and when.

An artisan rotates her key by signing, with the OLD key, a ``key-succession`` record
naming the NEW key; she retires or disowns a key with a ``revocation`` record. The
archive layer builds and verifies those records; this module holds the rules, pure and
free of I/O. :class:`KeyHistory` takes the verified facts (:class:`Succession`,
:class:`Revocation`) and answers:

- ``valid_at(did, ts)``: may a record signed by ``did`` at time ``ts`` be trusted?
- ``current(did)``: the newest key of the chain ``did`` belongs to;
- ``identity_of(did)``: the chain's first key, the identity an artisan's works are
  filed under whichever key signed them.

The rules (docs/identity.md tells the story with an example):

1. A key is valid from its start until its end. A key nobody succeeded into starts at
   the beginning of time; a successor starts at the time of the succession naming it.
   A key ends at the earliest succession it signed or the earliest revocation of it.
   Records made before a succession or a plain revocation stay valid.
2. A revocation may say ``compromised_since``: records the key signed from that time on
   are invalid too (someone else may have held the key). A succession signed once the
   revocation holds (at or after its ts, or its compromised_since) takes no effect.
3. A key with two different successors is *forked*; a key named as successor by two
   different keys is *contested*; successions that form a loop are a *cycle*. None of
   those successions takes effect: the identity stops before them and needs a human
   decision (for instance a revocation with ``compromised_since`` that disowns the
   impostor's succession, which resolves the fork). A succession signed before the
   signing key's own start takes no effect either.
4. The answers depend only on the *set* of facts, never on the order they arrived in,
   so two hubs that hold the same records agree, whatever order gossip brought them in.
   Facts that take no effect are kept: a later fact may resolve the conflict.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

from craftnet.identity.errors import MalformedDid, SuccessionError
from craftnet.identity.keys import did_to_raw

BEGINNING: Final = -(2**63)
"""The start of a key that no succession names: before any timestamp."""


def _check_did(did: str, role: str) -> None:
    try:
        did_to_raw(did)
    except MalformedDid as exc:
        raise SuccessionError(f"{role} is not a valid did:key: {exc}") from exc


def _check_ts(ts: int, role: str) -> None:
    if not isinstance(ts, int) or isinstance(ts, bool):
        raise SuccessionError(f"{role} must be an integer timestamp, got {ts!r}")


@dataclass(frozen=True, slots=True, order=True)
class Succession:
    """``old_did`` handed over to ``new_did`` at ``ts`` (signed by the old key)."""

    old_did: str
    new_did: str
    ts: int

    def __post_init__(self) -> None:
        _check_did(self.old_did, "the old key of a succession")
        _check_did(self.new_did, "the new key of a succession")
        _check_ts(self.ts, "a succession's ts")
        if self.old_did == self.new_did:
            raise SuccessionError(f"a key cannot succeed itself: {self.old_did}")


@dataclass(frozen=True, slots=True)
class Revocation:
    """``did`` is retired from ``ts`` on; if ``compromised_since`` is set, from then on."""

    did: str
    ts: int
    reason: str = ""
    compromised_since: int | None = None

    @classmethod
    def void_from(cls, did: str, issued: int, since: int, reason: str = "") -> Revocation:
        """The fact a revocation record states: issued at ``issued``, ``did`` void from ``since``.

        ``since`` before ``issued`` means a compromise discovered late; ``since`` at or
        after ``issued`` is a plain retirement from ``since`` on.
        """
        _check_ts(issued, "a revocation's issue time")
        _check_ts(since, "a revocation's since")
        if since >= issued:
            return cls(did, since, reason)
        return cls(did, issued, reason, compromised_since=since)

    def __post_init__(self) -> None:
        _check_did(self.did, "the revoked key")
        _check_ts(self.ts, "a revocation's ts")
        if self.compromised_since is not None:
            _check_ts(self.compromised_since, "compromised_since")
            if self.compromised_since > self.ts:
                raise SuccessionError(
                    f"a revocation at {self.ts} cannot know of a compromise at "
                    f"{self.compromised_since}, which is later; use ts >= compromised_since"
                )


Fact = Succession | Revocation


@dataclass(frozen=True, slots=True)
class Conflict:
    """Successions that cannot all be true; none of them takes effect."""

    kind: Literal["fork", "contested", "cycle", "out-of-order"]
    did: str
    """The forked key, the contested successor, or a key on the cycle."""
    successions: tuple[Succession, ...]

    def describe(self) -> str:
        """One sentence a person can act on."""
        if self.kind == "fork":
            names = " and ".join(s.new_did for s in self.successions)
            return (
                f"key {self.did} names two successors, {names}: the key may be in two "
                "hands; revoke it with compromised_since to disown the impostor"
            )
        if self.kind == "contested":
            names = " and ".join(s.old_did for s in self.successions)
            return f"key {self.did} is named as successor by two keys, {names}"
        if self.kind == "cycle":
            return f"the successions through {self.did} form a cycle"
        (s,) = self.successions
        return (
            f"key {s.old_did} signed a succession at {s.ts}, before it became valid; "
            "the succession is ignored"
        )


@dataclass
class _State:
    successor: dict[str, Succession] = field(default_factory=dict)
    predecessor: dict[str, Succession] = field(default_factory=dict)
    end: dict[str, int] = field(default_factory=dict)
    compromised: dict[str, int] = field(default_factory=dict)
    # The earliest time a revocation takes hold: its ts, or compromised_since if earlier.
    revoked: dict[str, int] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)


class KeyHistory:
    """What verified succession and revocation facts say about keys."""

    def __init__(self, facts: Iterable[Fact] = ()) -> None:
        self._facts: set[Fact] = set()
        # Each fact under every key it names: the facts that bear on a key are found by
        # walking from it, so one new fact re-derives only the keys it is connected to.
        self._by_did: dict[str, set[Fact]] = {}
        self._state = _State()
        self.extend(facts)

    # -- ingesting -----------------------------------------------------------------

    def extend(self, facts: Iterable[Fact]) -> None:
        """Add many facts at once; never raises for conflicts (see :attr:`conflicts`)."""
        for fact in facts:
            self._remember(fact)
        self._state = _derive(self._facts)

    def add(self, fact: Fact) -> None:
        """Add one fact; raise :class:`SuccessionError` if it takes no effect, and why.

        The fact is kept even then, so that the history stays a function of the set of
        facts (and a later fact may still resolve the conflict). Only the keys connected
        to the fact by successions are re-derived.
        """
        self._remember(fact)
        component = self._component(_dids_of(fact))
        partial = _derive({f for did in component for f in self._by_did[did]})
        self._replace(component, partial)
        if not isinstance(fact, Succession):
            return
        pair = (fact.old_did, fact.new_did)
        effective = self._state.successor.get(fact.old_did)
        if effective is not None and (effective.old_did, effective.new_did) == pair:
            return
        for conflict in partial.conflicts:
            if any((s.old_did, s.new_did) == pair for s in conflict.successions):
                raise SuccessionError(conflict.describe())
        raise SuccessionError(
            f"key {fact.old_did} signed this succession at {fact.ts}, after it was "
            f"revoked (from {self._state.revoked.get(fact.old_did)}); the succession "
            "is ignored"
        )

    def _remember(self, fact: Fact) -> None:
        if not isinstance(fact, Succession | Revocation):
            raise SuccessionError(f"not a succession or revocation: {fact!r}")
        self._facts.add(fact)
        for did in _dids_of(fact):
            self._by_did.setdefault(did, set()).add(fact)

    def _component(self, start: Iterable[str]) -> set[str]:
        """The keys linked to ``start`` through successions (in either direction)."""
        seen = set(start)
        todo = list(seen)
        while todo:
            for fact in self._by_did.get(todo.pop(), ()):
                for did in _dids_of(fact):
                    if did not in seen:
                        seen.add(did)
                        todo.append(did)
        return seen

    def _replace(self, component: set[str], partial: _State) -> None:
        state = self._state
        for table in (state.successor, state.predecessor, state.end, state.compromised):
            for did in component:
                table.pop(did, None)
        for did in component:
            state.revoked.pop(did, None)
        state.successor.update(partial.successor)
        state.predecessor.update(partial.predecessor)
        state.end.update(partial.end)
        state.compromised.update(partial.compromised)
        state.revoked.update(partial.revoked)
        kept = [c for c in state.conflicts if c.did not in component]
        state.conflicts = sorted([*kept, *partial.conflicts], key=_conflict_order)

    @property
    def facts(self) -> frozenset[Fact]:
        """Every fact ingested so far, including those that take no effect."""
        return frozenset(self._facts)

    @property
    def conflicts(self) -> list[Conflict]:
        """The successions that take no effect because they contradict each other."""
        return list(self._state.conflicts)

    # -- questions -----------------------------------------------------------------

    def start(self, did: str) -> int:
        """When ``did`` became valid (:data:`BEGINNING` unless a succession named it)."""
        incoming = self._state.predecessor.get(did)
        return BEGINNING if incoming is None else incoming.ts

    def end(self, did: str) -> int | None:
        """When ``did`` stopped being valid, or None if it still is."""
        return self._state.end.get(did)

    def predecessor(self, did: str) -> Succession | None:
        """The effective succession that named ``did``, if one did."""
        return self._state.predecessor.get(did)

    def valid_at(self, did: str, ts: int) -> bool:
        """Whether a record signed by ``did`` at ``ts`` is backed by the key history."""
        if ts < self.start(did):
            return False
        end = self._state.end.get(did)
        if end is not None and ts >= end:
            return False
        compromised = self._state.compromised.get(did)
        return compromised is None or ts < compromised

    def current(self, did: str) -> str:
        """The newest key of the chain ``did`` is on (``did`` itself if never succeeded)."""
        while (step := self._state.successor.get(did)) is not None:
            did = step.new_did
        return did

    def identity_of(self, did: str) -> str:
        """The first key of the chain ``did`` is on: the identity its records belong to."""
        while (step := self._state.predecessor.get(did)) is not None:
            did = step.old_did
        return did

    def chain(self, did: str) -> list[str]:
        """Every key of the identity ``did`` belongs to, oldest first."""
        keys = [self.identity_of(did)]
        while (step := self._state.successor.get(keys[-1])) is not None:
            keys.append(step.new_did)
        return keys

    def may_revoke(self, signer: str, did: str) -> bool:
        """Whether a revocation of ``did`` signed by ``signer`` should be accepted.

        A key may revoke itself, and a later key of the same identity may revoke an
        earlier one (an artisan who lost her old laptop revokes its key from the new).
        """
        chain = self.chain(did)
        return signer in chain and chain.index(signer) >= chain.index(did)


def _dids_of(fact: Fact) -> tuple[str, ...]:
    return (fact.old_did, fact.new_did) if isinstance(fact, Succession) else (fact.did,)


def _conflict_order(conflict: Conflict) -> tuple[str, str, tuple[Succession, ...]]:
    return (conflict.did, conflict.kind, conflict.successions)


def _after_revocation(state: _State, succession: Succession) -> bool:
    revoked = state.revoked.get(succession.old_did)
    return revoked is not None and succession.ts >= revoked


def _derive(facts: set[Fact]) -> _State:
    """Compute the effective history from a set of facts (order-free by construction)."""
    state = _State()
    successions = sorted(f for f in facts if isinstance(f, Succession))
    revocations = [f for f in facts if isinstance(f, Revocation)]  # only min() of them

    for revocation in revocations:
        key = revocation.did
        state.end[key] = min(state.end.get(key, revocation.ts), revocation.ts)
        since = revocation.ts
        if revocation.compromised_since is not None:
            since = revocation.compromised_since
            state.compromised[key] = min(state.compromised.get(key, since), since)
        state.revoked[key] = min(state.revoked.get(key, since), since)
    for succession in successions:
        key = succession.old_did
        state.end[key] = min(state.end.get(key, succession.ts), succession.ts)

    # The same hand-over stated twice counts once, at its earliest time.
    earliest: dict[tuple[str, str], Succession] = {}
    for succession in successions:
        pair = (succession.old_did, succession.new_did)
        if pair not in earliest:  # sorted, so the first is the earliest
            earliest[pair] = succession
    # A revoked key hands nothing over; once compromised, it may be the thief's.
    candidates = [s for s in earliest.values() if not _after_revocation(state, s)]

    by_old: dict[str, list[Succession]] = {}
    by_new: dict[str, list[Succession]] = {}
    for succession in candidates:
        by_old.setdefault(succession.old_did, []).append(succession)
        by_new.setdefault(succession.new_did, []).append(succession)
    excluded: set[Succession] = set()
    for did, group in sorted(by_old.items()):
        if len(group) > 1:
            state.conflicts.append(Conflict("fork", did, tuple(group)))
            excluded.update(group)
    for did, group in sorted(by_new.items()):
        if len(group) > 1:
            state.conflicts.append(Conflict("contested", did, tuple(group)))
            excluded.update(group)

    # Every key now has at most one way out and one way in: paths and cycles remain.
    edges = {s.old_did: s for s in candidates if s not in excluded}
    targets = {s.new_did for s in edges.values()}
    visited: set[str] = set()
    roots = sorted(set(edges) - targets)
    while roots:
        did, start = roots.pop(), BEGINNING
        while (step := edges.get(did)) is not None:
            visited.add(did)
            if step.ts < start:
                # Signed before the signing key was valid: the chain stops here, and
                # the named key stands alone (it may still hand over further).
                state.conflicts.append(Conflict("out-of-order", did, (step,)))
                roots.append(step.new_did)
                break
            state.successor[did] = step
            state.predecessor[step.new_did] = step
            did, start = step.new_did, step.ts
    for did in sorted(set(edges) - visited):
        if did in visited:
            continue
        cycle: list[Succession] = []
        walker = did
        while walker not in visited:
            visited.add(walker)
            cycle.append(edges[walker])
            walker = edges[walker].new_did
        state.conflicts.append(Conflict("cycle", did, tuple(sorted(cycle))))
    state.conflicts.sort(key=_conflict_order)
    return state
