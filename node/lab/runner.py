"""Play a scenario on a :class:`~craftnet.node.lab.lab.Lab` and report on it."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, assert_never

from craftnet.node.lab.errors import LabError
from craftnet.node.lab.lab import Lab
from craftnet.node.lab.report import build_report
from craftnet.node.lab.scenario import (
    Connect,
    Converge,
    Flood,
    Found,
    Idle,
    Join,
    Kill,
    Partition,
    Pause,
    Publish,
    Repeat,
    Restart,
    Rotate,
    Scenario,
    Start,
    Step,
    Stop,
)

Say = Callable[[str], None]


def run(
    scenario: Scenario, craftnet: Path, root: Path, say: Say = lambda _: None
) -> dict[str, Any]:
    """Run ``scenario`` with hubs of ``craftnet`` in ``root``; the report (JSON-able)."""
    settings = scenario.settings
    began = time.monotonic()
    with Lab(
        root,
        craftnet,
        seed=settings.seed,
        connect_within=settings.connect_within,
        converge_within=settings.converge_within,
        flood_cut_within=settings.flood_cut_within,
        sync_timeout=settings.sync_timeout,
    ) as lab:
        say(f"lab {settings.name!r}: {lab.version} from {craftnet}, in {root}")
        publisher = (
            lab.background(settings.background_publish)
            if settings.background_publish > 0
            else contextlib.nullcontext()
        )
        with publisher:
            play(lab, scenario.steps, say)
        if not isinstance(scenario.steps[-1], Converge):
            say("final convergence")
            lab.converge()
        return build_report(lab, scenario, time.monotonic() - began)


def play(lab: Lab, steps: tuple[Step, ...], say: Say, depth: int = 0) -> None:
    """Carry out steps in order; a step the lab cannot do is noted and the run goes on."""
    for step in steps:
        say("  " * depth + describe(step))
        try:
            _do(lab, step, say, depth)
        except LabError as exc:
            lab.failure(type(step).__name__.lower(), getattr(step, "hub", None), str(exc))
            say("  " * depth + f"  (could not: {exc})")


def _do(lab: Lab, step: Step, say: Say, depth: int) -> None:
    def nested(inner: tuple[Step, ...]) -> Callable[[], None]:
        return lambda: play(lab, inner, say, depth + 1)

    match step:
        case Found(hub):
            lab.found(hub)
        case Join(hub, via, bootstrap):
            lab.join(hub, via, bootstrap)
        case Start(hubs):
            for hub in hubs:
                lab.start(hub)
        case Stop(hubs):
            for hub in hubs:
                lab.stop(hub)
        case Restart(hub, down, backlog, backlog_via):
            lab.restart(hub, down, backlog, backlog_via)
        case Kill(hub, during_sync, backlog):
            lab.kill(hub, during_sync, backlog)
        case Pause(hub, seconds, inner):
            lab.pause(hub, seconds, nested(inner))
        case Rotate(hub):
            lab.rotate(hub)
        case Partition(hubs, seconds, inner):
            lab.partition(hubs, seconds, nested(inner))
        case Publish(hub, count, via):
            lab.publish(hub, count, via)
        case Flood(hub, via, rate, seconds, inner):
            lab.flood(hub, via, rate, seconds, nested(inner))
        case Converge(within, patience):
            entry = lab.converge(within, patience)
            took = entry["converged_s"]
            say(
                "  " * depth
                + (
                    f"  converged in {took} s"
                    if took is not None
                    else f"  NOT converged within {entry['within']} s"
                )
            )
        case Connect(within):
            lab.connect(within)
        case Idle(seconds):
            lab.idle(seconds)
        case Repeat(times, inner):
            for _ in range(times):
                play(lab, inner, say, depth + 1)
        case _:
            assert_never(step)


def describe(step: Step) -> str:
    """One line saying what a step does (options that differ from their defaults)."""
    options = {
        spec.name: getattr(step, spec.name)
        for spec in dataclasses.fields(step)
        if spec.name != "steps" and getattr(step, spec.name) != spec.default
    }
    text = " ".join(f"{k}={v}" for k, v in options.items())
    return f"{type(step).__name__.lower()} {text}".strip()
