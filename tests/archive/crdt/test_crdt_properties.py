"""Property tests: replicas that saw the same operations hold byte-identical states.

Runs under the suite's Hypothesis profiles (``HYPOTHESIS_PROFILE``: ci, deterministic,
thorough). Signatures are checked in the other tests; here they are skipped for speed.
"""

from __future__ import annotations

import random

from crdt_helpers import HUBS, Alliance, random_changes
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from craftnet.archive.crdt.causal import Replica
from craftnet.archive.crdt.state import DocState
from craftnet.archive.records import Record

seeds = st.integers(0, 2**32 - 1)


def merged(doc_records: list[list[Record]], order_seed: int | None = None) -> Replica:
    """A fresh replica fed the given record lists one after another (optionally shuffled)."""
    records = [r for group in doc_records for r in group]
    if order_seed is not None:
        random.Random(order_seed).shuffle(records)
    replica = Replica(records[0].cid if records[0].type == "doc" else records[0].body["doc"])
    for record in records:
        replica.receive(record, verify=False)
    return replica


@given(seed=seeds, hubs=st.integers(2, 8), edits=st.integers(1, 60))
def test_replicas_converge_whatever_the_delivery(seed: int, hubs: int, edits: int) -> None:
    """Random concurrent edits, delivered late, out of order and twice: same bytes everywhere."""
    alliance = Alliance(hubs, seed)
    rng = alliance.rng
    inbox: list[list[Record]] = [[] for _ in range(hubs)]
    for _ in range(edits):
        record = alliance.edit(rng.randrange(hubs))
        for i in range(hubs):
            if rng.random() < 0.7:
                inbox[i].append(record)  # some messages are lost, to be synced at the end
            if rng.random() < 0.2:
                inbox[i].append(record)  # duplicates
        for i in range(hubs):
            rng.shuffle(inbox[i])  # delays and reordering
            for _ in range(rng.randint(0, len(inbox[i]))):
                alliance.replicas[i].receive(inbox[i].pop(), verify=False)
    alliance.sync_all()
    states = {replica.encode_state() for replica in alliance.replicas}
    assert len(states) == 1
    assert all(not replica.pending() for replica in alliance.replicas)
    assert all(sorted(r.log) == sorted(r.cid for r in alliance.sent) for r in alliance.replicas)
    # a save/load round trip changes nothing
    (saved,) = states
    assert DocState.decode(saved).encode() == saved


@given(seed=seeds, edits=st.integers(3, 30))
def test_merge_is_commutative_associative_idempotent(seed: int, edits: int) -> None:
    alliance = Alliance(3, seed)
    for _ in range(edits):
        alliance.edit(alliance.rng.randrange(3))
    x, y, z = (replica.records() for replica in alliance.replicas)

    def state(*groups: list[Record]) -> bytes:
        return merged(list(groups)).encode_state()

    assert state(x, y) == state(y, x)
    xy = merged([x, y]).records()
    yz = merged([y, z]).records()
    assert state(xy, z) == state(x, yz)
    assert state(x, x) == state(x)
    assert state(x, y, z) == merged([x, y, z], order_seed=seed).encode_state()


@given(seed=seeds, edits=st.integers(1, 40))
def test_reloaded_state_keeps_merging_like_the_original(seed: int, edits: int) -> None:
    """Save a replica's state half-way, load it, apply the rest: same bytes as never saving."""
    alliance = Alliance(2, seed)
    for _ in range(edits):
        alliance.edit(alliance.rng.randrange(2))
    alliance.sync_all()
    by_cid = {record.cid: record for record in alliance.sent}
    records = [by_cid[cid] for cid in alliance.replicas[0].log]  # a causal order
    original = merged([records])
    half = len(records) // 2
    first = merged([records[:half]]).state()
    assert first is not None
    reloaded = DocState.decode(first.encode())
    assert reloaded.view() == first.view()
    # continue from the reloaded state through a replica that trusts it
    replica = merged([records[:half]])
    replica._state = reloaded  # the causal bookkeeping stays; only the state is swapped
    for record in records[half:]:
        replica.receive(record, verify=False)
    assert replica.encode_state() == original.encode_state()


class ApplyRandomTests(RuleBasedStateMachine):
    """In the style of Yjs's applyRandomTests: hubs edit, exchange, and must always agree
    once they have exchanged everything."""

    def __init__(self) -> None:
        super().__init__()
        self.alliance = Alliance(4, 0)
        self.inflight: list[tuple[int, Record]] = []

    messages = Bundle("messages")

    @rule(hub=st.integers(0, 3), seed=seeds)
    def edit(self, hub: int, seed: int) -> None:
        self.alliance.rng.seed(seed)
        record = self.alliance.edit(hub)
        for other in range(4):
            if other != hub:
                self.inflight.append((other, record))

    @precondition(lambda self: self.inflight)
    @rule(pick=st.integers(0, 10_000), duplicate=st.booleans())
    def deliver(self, pick: int, duplicate: bool) -> None:
        hub, record = self.inflight[pick % len(self.inflight)]
        if not duplicate:
            self.inflight.remove((hub, record))
        self.alliance.replicas[hub].receive(record, verify=False)

    @rule(a=st.integers(0, 3), b=st.integers(0, 3))
    def sync_pair(self, a: int, b: int) -> None:
        """Two hubs meet (over the network or a USB stick) and swap everything."""
        ra, rb = self.alliance.replicas[a], self.alliance.replicas[b]
        for record in rb.records():
            ra.receive(record, verify=False)
        for record in ra.records():
            rb.receive(record, verify=False)
        assert ra.encode_state() == rb.encode_state()
        assert ra.heads == rb.heads

    @invariant()
    def states_round_trip(self) -> None:
        for replica in self.alliance.replicas:
            saved = replica.encode_state()
            assert DocState.decode(saved).encode() == saved

    @invariant()
    def edits_stay_possible(self) -> None:
        state = self.alliance.replicas[0].state()
        assert state is not None
        random_changes(random.Random(1), state)  # the builder understands every state

    def teardown(self) -> None:
        self.alliance.sync_all()
        assert len({r.encode_state() for r in self.alliance.replicas}) == 1


ApplyRandomTests.TestCase.settings = settings(
    ApplyRandomTests.TestCase.settings, stateful_step_count=30
)
test_apply_random_tests = ApplyRandomTests.TestCase
assert len(HUBS) >= 8
