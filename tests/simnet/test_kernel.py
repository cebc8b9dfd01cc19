"""The kernel runs events in time order, ties in scheduling order, and never early."""

from craftnet.simnet.kernel import Kernel


def test_events_run_in_time_order_and_ties_in_scheduling_order() -> None:
    k = Kernel()
    seen: list[tuple[float, str]] = []
    for name, at in (("b", 2.0), ("a", 1.0), ("c", 2.0), ("d", 0.5)):
        k.at(at, lambda n: seen.append((k.now, n)), name)
    assert k.run(10.0) == 4
    assert seen == [(0.5, "d"), (1.0, "a"), (2.0, "b"), (2.0, "c")]
    assert k.now == 10.0


def test_run_stops_at_until_and_keeps_later_events() -> None:
    k = Kernel()
    fired: list[float] = []
    k.at(5.0, fired.append, 5.0)
    k.at(15.0, fired.append, 15.0)
    k.run(10.0)
    assert fired == [5.0] and k.pending() == 1 and k.next_time() == 15.0
    k.run(20.0)
    assert fired == [5.0, 15.0]


def test_events_scheduled_in_the_past_run_now_and_after_is_relative() -> None:
    k = Kernel()
    times: list[float] = []
    k.run(3.0)
    k.at(1.0, lambda _: times.append(k.now))
    k.after(2.0, lambda _: times.append(k.now))
    k.run(100.0)
    assert times == [3.0, 5.0]


def test_an_event_may_schedule_more_events() -> None:
    k = Kernel()
    count = [0]

    def tick(_: object) -> None:
        count[0] += 1
        if count[0] < 100:
            k.after(0.1, tick)

    k.at(0.0, tick)
    k.run(1000.0)
    assert count[0] == 100 and k.events == 100
