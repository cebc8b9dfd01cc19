"""Hybrid logical clocks: one integer that sorts like the clock it stands for."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from craftnet.archive import hlc
from craftnet.archive.errors import ArchiveError
from craftnet.archive.hlc import COUNTER_MASK, MAX_TS, HybridClock

walls = st.integers(min_value=0, max_value=2**47)
counters = st.integers(min_value=0, max_value=COUNTER_MASK)


@given(walls, counters)
def test_pack_round_trip(wall: int, count: int) -> None:
    ts = hlc.pack(wall, count)
    assert hlc.wall_ms(ts) == wall
    assert hlc.counter(ts) == count
    assert 0 <= ts <= MAX_TS


@given(walls, counters, walls, counters)
def test_integers_sort_like_clocks(w1: int, c1: int, w2: int, c2: int) -> None:
    assert (hlc.pack(w1, c1) < hlc.pack(w2, c2)) == ((w1, c1) < (w2, c2))


@pytest.mark.parametrize(("wall", "count"), [(-1, 0), (0, -1), (0, COUNTER_MASK + 1)])
def test_pack_refuses_bad_parts(wall: int, count: int) -> None:
    with pytest.raises(ArchiveError):
        hlc.pack(wall, count)


class FakeWall:
    """A wall clock the test moves by hand (forwards, backwards or not at all)."""

    def __init__(self, ms: int = 1_700_000_000_000) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_tick_follows_the_wall_clock() -> None:
    wall = FakeWall()
    clock = HybridClock(wall)
    first = clock.tick()
    assert first == hlc.pack(wall.ms)
    assert clock.tick() == first + 1  # same millisecond: the counter moves
    wall.ms += 5
    assert clock.tick() == hlc.pack(wall.ms)
    assert clock.last == hlc.pack(wall.ms)


def test_tick_never_goes_back_when_the_wall_clock_does() -> None:
    wall = FakeWall()
    clock = HybridClock(wall)
    before = clock.tick()
    wall.ms -= 60_000  # NTP stepped the hub's clock back a minute
    assert clock.tick() > before


def test_observe_moves_past_a_remote_clock_ahead_of_ours() -> None:
    wall = FakeWall()
    clock = HybridClock(wall)
    remote = hlc.pack(wall.ms + 3_600_000, 7)  # a hub whose clock runs an hour fast
    assert clock.observe(remote) == remote + 1
    assert clock.tick() > remote


@pytest.mark.parametrize("remote", [-1, MAX_TS + 1])
def test_observe_refuses_out_of_range(remote: int) -> None:
    with pytest.raises(ArchiveError, match="out of range"):
        HybridClock(FakeWall()).observe(remote)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["tick", "observe"]),
            st.integers(min_value=-10_000, max_value=10_000),
            st.integers(min_value=0, max_value=2**50),
        ),
        max_size=50,
    )
)
def test_every_timestamp_is_greater_than_all_before(
    steps: list[tuple[str, int, int]],
) -> None:
    wall = FakeWall()
    clock = HybridClock(wall)
    issued = [clock.last]
    for action, drift, remote in steps:
        wall.ms = max(0, wall.ms + drift)
        ts = clock.tick() if action == "tick" else clock.observe(remote)
        assert ts > issued[-1]
        if action == "observe":
            assert ts > remote
        issued.append(ts)


def test_default_clock_uses_system_time() -> None:
    ts = HybridClock().tick()
    assert hlc.wall_ms(ts) > 1_600_000_000_000
