"""Small scenarios for the simnet tests, written as TOML the way a researcher would."""

from __future__ import annotations

from craftnet.simnet.scenario import Scenario, parse
from craftnet.simnet.sim import RunResult, Simulation


def scenario(text: str) -> Scenario:
    """Parse a scenario given inline."""
    return parse(text, "<test>")


def run(text: str, seed: int = 1) -> RunResult:
    """Run an inline scenario."""
    return Simulation(scenario(text), seed).run()
