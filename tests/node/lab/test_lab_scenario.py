"""Lab scenarios are checked before any hub starts: every mistake names its step."""

from __future__ import annotations

from pathlib import Path

import pytest

from craftnet.node.lab.errors import ScenarioError
from craftnet.node.lab.scenario import (
    Converge,
    Found,
    Join,
    Kill,
    Pause,
    Publish,
    Repeat,
    Restart,
    bundled,
    load,
    parse,
)

HEAD = '[lab]\nname = "t"\n\n[[step]]\ndo = "found"\nhub = "lisbon"\n'


def test_a_scenario_reads_as_steps() -> None:
    scenario = parse(
        HEAD
        + """
[[step]]
do = "join"
hub = "oaxaca"
via = "lisbon"

[[step]]
do = "repeat"
times = 3
steps = [{do = "restart", hub = "any", backlog = 10}, {do = "publish", via = "http"}]

[[step]]
do = "pause"
hub = "oaxaca"
seconds = 20
steps = [{do = "publish", hub = "lisbon", count = 5, via = "bundle"}]
"""
    )
    assert scenario.settings.name == "t" and scenario.settings.connect_within == 5.0
    assert scenario.hubs == ("lisbon", "oaxaca")
    found, join, repeat, pause = scenario.steps
    assert found == Found("lisbon")
    assert join == Join("oaxaca", "lisbon", "all")
    assert isinstance(repeat, Repeat) and repeat.steps == (
        Restart("any", 0.0, 10, "bundle"),
        Publish("any", 1, "http"),
    )
    assert isinstance(pause, Pause) and pause.seconds == 20.0
    assert scenario.count(Restart) == 3 and scenario.count(Publish) == 4


def test_every_bundled_scenario_is_valid() -> None:
    scenarios = bundled()
    assert {"short", "long", "flood"} <= set(scenarios)
    for path in scenarios.values():
        load(path)


def test_the_long_scenario_does_what_make_lab_promises() -> None:
    long = load(bundled()["long"])
    assert len(long.hubs) >= 10
    restarts = long.count(Restart) + long.count(Kill)
    assert restarts >= 100
    assert long.count(Kill) >= 1 and long.count(Pause) >= 1 and long.count(Converge) >= 1


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name = ", "not valid TOML"),
        ('[lab]\nname = "t"\n', "no [[step]] tables"),
        ('[[step]]\ndo = "found"\nhub = "a"\n', "[lab] table"),
        ('[lab]\nname = "t"\n[oops]\n', "unknown table 'oops'"),
        ('[lab]\nname = 3\n[[step]]\ndo = "found"\nhub = "a"\n', "[lab]: 'name' must be a string"),
        ('[lab]\nname = "t"\nseed = "one"\n[[step]]\ndo = "found"\nhub = "a"\n', "'seed'"),
        ('[lab]\nname = "t"\nspeed = 1\n[[step]]\ndo = "found"\nhub = "a"\n', "'speed'"),
        (HEAD + '[[step]]\ndo = "dance"\n', "step 2: 'do' must be one of"),
        (HEAD + '[[step]]\nhub = "lisbon"\n', "step 2: 'do' must be one of"),
        (HEAD + '[[step]]\ndo = "restart"\nhub = "lisbon"\nfast = true\n', "unknown option 'fast'"),
        (HEAD + '[[step]]\ndo = "restart"\nhub = "quito"\n', "no hub 'quito' yet"),
        (HEAD + '[[step]]\ndo = "restart"\nhub = 7\n', "'hub' must be a string"),
        (HEAD + '[[step]]\ndo = "restart"\ndown = -1\n', "'down' must be 0.."),
        (HEAD + '[[step]]\ndo = "restart"\ndown = 1e9\n', "'down' must be 0.."),
        (HEAD + '[[step]]\ndo = "publish"\ncount = 0\n', "'count' must be above 0"),
        (HEAD + '[[step]]\ndo = "publish"\ncount = 2.5\n', "'count' must be a whole number"),
        (HEAD + '[[step]]\ndo = "publish"\ncount = true\n', "'count' must be a whole number"),
        (HEAD + '[[step]]\ndo = "publish"\nvia = "pigeon"\n', "'via' must be one of cli, http"),
        (HEAD + '[[step]]\ndo = "kill"\nduring_sync = "yes"\n', "true or false"),
        (HEAD + '[[step]]\ndo = "join"\nhub = "Oaxaca!"\n', "lower-case"),
        (HEAD + '[[step]]\ndo = "join"\nhub = "any"\n', "not 'any'"),
        (HEAD + '[[step]]\ndo = "join"\nhub = "lisbon"\n', "exists already"),
        (HEAD + '[[step]]\ndo = "join"\nhub = "b"\nbootstrap = "dht"\n', "'bootstrap' must be"),
        (HEAD + '[[step]]\ndo = "join"\n', "option 'hub' is required"),
        (HEAD + '[[step]]\ndo = "found"\nhub = "b"\n', "'found' comes once"),
        ('[lab]\nname = "t"\n[[step]]\ndo = "publish"\n', "first step must be 'found'"),
        (HEAD + '[[step]]\ndo = "stop"\nhubs = []\n', "hub name or a list"),
        (HEAD + '[[step]]\ndo = "repeat"\ntimes = 2\nsteps = "restart"\n', "list of steps"),
        (HEAD + '[[step]]\ndo = "repeat"\ntimes = 2\nsteps = [3]\n', "step 2 (repeat) > 1"),
        (
            HEAD + '[[step]]\ndo = "repeat"\ntimes = 2\nsteps = [{do = "join", hub = "b"}]\n',
            "a repeat cannot create hubs",
        ),
        (
            HEAD + '[[step]]\ndo = "pause"\nsteps = [{do = "restart", hub = "nobody"}]\n',
            "step 2 (pause) > 1 (restart): no hub 'nobody'",
        ),
    ],
)
def test_mistakes_are_refused_with_their_place(text: str, needle: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse(text, "s.toml")
    assert needle in str(caught.value)
    assert str(caught.value).startswith("s.toml")


def test_an_unreadable_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load(tmp_path / "missing.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ScenarioError):
        load(binary)
