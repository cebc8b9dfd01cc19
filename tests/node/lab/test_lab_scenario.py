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
    Start,
    Stop,
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


# HEAD takes lines 1-6; a step after it starts on line 7 ([[step]]), its options below.
@pytest.mark.parametrize(
    ("text", "place", "problem"),
    [
        ("name = ", "s.toml", "not valid TOML"),
        ('[lab]\nname = "t"\n', "s.toml: step", "no [[step]] tables"),
        ('step = []\n[lab]\nname = "t"\n', "s.toml:1: step", "no [[step]] tables"),
        ('[[step]]\ndo = "found"\nhub = "a"\n', "s.toml: the file", "option 'lab' is required"),
        ("[lab]\n", "s.toml:1: lab", "option 'name' is required"),
        ('[lab]\nname = "t"\n[oops]\n', "s.toml:3: oops", "unknown option 'oops'"),
        ('[lab]\nname = 3\n[[step]]\ndo = "found"\nhub = "a"\n', "s.toml:2: lab.name", "string"),
        ('[lab]\nname = "t"\nseed = "one"\n', "s.toml:3: lab.seed", "must be an integer"),
        ('[lab]\nname = "t"\nspeed = 1\n', "s.toml:3: lab.speed", "unknown option 'speed'"),
        ('[lab]\nname = "t"\nseed = -1\n', "s.toml:3: lab.seed", "below the minimum 0"),
        ('lab = "short"\n', "s.toml:1: lab", "must be a table, got a string"),
        ('[lab]\nname = "t"\n[step]\ndo = "found"\n', "s.toml:3: step", "an array of tables"),
        (HEAD + '[[step]]\ndo = "dance"\n', "s.toml:8: step[1].do", "'do' must be one of found"),
        (HEAD + "[[step]]\ndo = 7\n", "s.toml:8: step[1].do", "(got 7)"),
        (HEAD + '[[step]]\nhub = "lisbon"\n', "s.toml:7: step[1]", "'do' must be one of"),
        (HEAD + '[[step]]\ndo = "restart"\nfast = true\n', "s.toml:9: step[1].fast", "unknown"),
        (HEAD + '[[step]]\ndo = "restart"\nhub = "quito"\n', "s.toml:9: step[1].hub", "no hub"),
        (HEAD + '[[step]]\ndo = "restart"\nhub = 7\n', "s.toml:9: step[1].hub", "a string"),
        (HEAD + '[[step]]\ndo = "restart"\ndown = -1\n', "s.toml:9: step[1].down", "minimum 0"),
        (HEAD + '[[step]]\ndo = "restart"\ndown = 1e9\n', "s.toml:9: step[1].down", "maximum"),
        (HEAD + '[[step]]\ndo = "restart"\ndown = nan\n', "s.toml:9: step[1].down", "nan"),
        (HEAD + '[[step]]\ndo = "publish"\ncount = 0\n', "s.toml:9: step[1].count", "minimum 1"),
        (HEAD + '[[step]]\ndo = "publish"\ncount = 2.5\n', "s.toml:9: step[1].count", "integer"),
        (HEAD + '[[step]]\ndo = "publish"\ncount = true\n', "s.toml:9: step[1].count", "a boolean"),
        (HEAD + '[[step]]\ndo = "publish"\nvia = "pigeon"\n', "s.toml:9: step[1].via", "cli, http"),
        (
            HEAD + '[[step]]\ndo = "kill"\nduring_sync = "yes"\n',
            "s.toml:9: step[1].during_sync",
            "or false",
        ),
        (
            HEAD + '[[step]]\ndo = "flood"\nhub = "x"\nrate = 0\n',
            "s.toml:10: step[1].rate",
            "greater than 0",
        ),
        (HEAD + '[[step]]\ndo = "join"\nhub = "Oaxaca!"\n', "s.toml:9: step[1].hub", "lower-case"),
        (HEAD + '[[step]]\ndo = "join"\nhub = "any"\n', "s.toml:9: step[1].hub", "not 'any'"),
        (HEAD + '[[step]]\ndo = "join"\nhub = "lisbon"\n', "s.toml:9: step[1].hub", "exists"),
        (
            HEAD + '[[step]]\ndo = "join"\nhub = "b"\nbootstrap = "dht"\n',
            "s.toml:10: step[1].bootstrap",
            "all, via",
        ),
        (HEAD + '[[step]]\ndo = "join"\n', "s.toml:7: step[1]", "option 'hub' is required"),
        (HEAD + '[[step]]\ndo = "found"\nhub = "b"\n', "s.toml:8: step[1].do", "comes once"),
        ('[lab]\nname = "t"\n[[step]]\ndo = "publish"\n', "s.toml:4: step[0].do", "'found'"),
        (HEAD + '[[step]]\ndo = "stop"\nhubs = []\n', "s.toml:9: step[1].hubs", "name a hub"),
        (HEAD + '[[step]]\ndo = "stop"\nhubs = [1]\n', "s.toml:9: step[1].hubs[0]", "string"),
        (HEAD + '[[step]]\ndo = "idle"\n', "s.toml:7: step[1]", "option 'seconds' is required"),
        (HEAD + '[[step]]\ndo = "repeat"\ntimes = 2\n', "s.toml:7: step[1]", "'steps' is required"),
        (
            HEAD + '[[step]]\ndo = "repeat"\ntimes = 2\nsteps = "restart"\n',
            "s.toml:10: step[1].steps",
            "must be an array of tables, got a string",
        ),
        (
            HEAD + '[[step]]\ndo = "repeat"\ntimes = 2\nsteps = [3]\n',
            "s.toml:10: step[1].steps[0]",
            "must be a table with 'do'",
        ),
        (
            HEAD + '[[step]]\ndo = "repeat"\ntimes = 2\nsteps = [{do = "jump"}]\n',
            "s.toml:10: step[1].steps[0].do",
            "'do' must be one of",
        ),
        (
            HEAD + '[[step]]\ndo = "repeat"\ntimes = 2\nsteps = [{do = "idle", secs = 1}]\n',
            "s.toml:10: step[1].steps[0].secs",
            "unknown option 'secs'",
        ),
        (
            HEAD + '[[step]]\ndo = "repeat"\ntimes = 2\nsteps = [{do = "join", hub = "b"}]\n',
            "s.toml:10: step[1].steps",
            "a repeat cannot create hubs",
        ),
        (
            HEAD + '[[step]]\ndo = "repeat"\ntimes = 2\nsteps = [{do = "found", hub = "b"}]\n',
            "s.toml:10: step[1].steps",
            "a repeat cannot create hubs",
        ),
        (
            HEAD + '[[step]]\ndo = "pause"\nsteps = [{do = "restart", hub = "nobody"}]\n',
            "s.toml:9: step[1].steps[0].hub",
            "no hub 'nobody' yet",
        ),
        (
            # Nested two deep over several lines: the line of the step itself.
            HEAD
            + '[[step]]\ndo = "repeat"\ntimes = 2\nsteps = [\n  {do = "pause", steps = [\n'
            + '    {do = "publish", count = -3},\n  ]},\n]\n',
            "s.toml:12: step[1].steps[0].steps[0].count",
            "below the minimum 1",
        ),
    ],
)
def test_mistakes_are_refused_with_their_line_and_option(
    text: str, place: str, problem: str
) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse(text, "s.toml")
    message = str(caught.value)
    assert message.startswith(place + ":"), message
    assert problem in message, message


def test_a_hub_may_be_named_alone_or_in_a_list() -> None:
    text = (
        HEAD + '[[step]]\ndo = "stop"\nhubs = "lisbon"\n[[step]]\ndo = "start"\nhubs = ["lisbon"]\n'
    )
    _, stop, start = parse(text).steps
    assert stop == Stop(("lisbon",)) and start == Start(("lisbon",))


def test_an_unreadable_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load(tmp_path / "missing.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ScenarioError):
        load(binary)
