"""Lab scenarios: a TOML file of steps, checked strictly before any hub starts.

::

    [lab]
    name = "short"
    connect_within = 5

    [[step]]
    do = "found"
    hub = "lisbon"

    [[step]]
    do = "join"
    hub = "oaxaca"
    via = "lisbon"

    [[step]]
    do = "repeat"
    times = 3
    steps = [{do = "restart", hub = "any"}, {do = "publish", via = "http"}]

Every step is a frozen dataclass below; its fields are the step's options and its
docstring says what it does (``docs/lab.md`` prints the same). Unknown steps or
options, wrong types, values out of range and hubs named before they exist are
refused with :class:`ScenarioError` naming the file, the line and the option
(``long.toml:79: step[12].steps[0].hub: no hub 'lima' yet``). The checker is
:mod:`craftnet.tomlcheck`, shared with the hub's settings and simnet's scenarios.
"""

# opt() returns dataclasses.field(...); ruff cannot see that through the helper.
# ruff: noqa: RUF009
from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Union

from craftnet import tomlcheck
from craftnet.node.lab.errors import ScenarioError
from craftnet.tomlcheck import Checker, KeyPath, opt

ANY: Final = "any"  # a hub picked at random among the running honest hubs
NAME: Final = re.compile(r"[a-z][a-z0-9-]{0,30}")
PUBLISH_VIA: Final = ("cli", "http", "bundle")
BOOTSTRAP: Final = ("all", "via")
MAX_COUNT: Final = 100_000
MAX_SECONDS: Final = 24 * 3600.0
MAX_TEXT: Final = 2000
REQUIRED: Final[Any] = dataclasses.MISSING


def _short(text: str) -> str | None:
    return f"is longer than {MAX_TEXT} characters" if len(text) > MAX_TEXT else None


def _some(hubs: tuple[str, ...]) -> str | None:
    return "must name a hub or a list of hubs" if not hubs else None


# The kinds of option a step has; step options are documented by the step's docstring.
def _text(default: Any, doc: str = "") -> Any:
    return opt(default, doc, check=_short)


def _hub(default: Any = ANY) -> Any:
    return _text(default)


def _hubs() -> Any:
    return opt(REQUIRED, "", one_or_many=True, check=_some)


def _seconds(default: Any, doc: str = "", *, above: float | None = None) -> Any:
    lo = None if above is not None else 0
    return opt(default, doc, lo=lo, above=above, hi=MAX_SECONDS)


def _number(default: Any, doc: str = "", *, lo: int = 0) -> Any:
    return opt(default, doc, lo=lo, hi=MAX_COUNT)


def _steps() -> Any:
    return opt((), "", tag="do")


@dataclass(frozen=True)
class Settings:
    """The ``[lab]`` table: what the run is called and what it holds the hubs to."""

    name: str = _text(REQUIRED, "what the run is called (in the report)")
    description: str = _text("", "a sentence for people")
    seed: int = _number(
        1,
        "seeds every random choice of the run (which hub `any` is, record contents); "
        "a background publisher makes the order of choices depend on timing",
    )
    connect_within: float = _seconds(
        5.0,
        "seconds within which a (re)started hub must have a ready link to every running member",
    )
    converge_within: float = _seconds(
        30.0,
        "seconds after the last event within which every running hub must hold the same records",
    )
    flood_cut_within: float = _seconds(
        60.0, "seconds within which every honest hub must hang up on a flooder"
    )
    background_publish: float = _seconds(
        0.0,
        "seconds between background CLI publishes at a random hub, "
        "through the whole run except while a convergence is timed; 0: none",
    )
    sync_timeout: float = _seconds(60.0, "`--timeout` of each `craftnet sync` after a rotation")


@dataclass(frozen=True)
class Found:
    """Create the first hub (``craftnet init``, ``alliance create``) and start it."""

    hub: str = _hub(REQUIRED)


@dataclass(frozen=True)
class Join:
    """A new hub: ``init``, ``alliance invite`` run at member ``via``, ``alliance join``,
    then ``serve`` with every member's address (``bootstrap = "all"``) or only ``via``'s;
    measures how long until it has a ready link to every running member."""

    hub: str = _hub(REQUIRED)
    via: str = _hub()
    bootstrap: str = opt("all", "", choices=BOOTSTRAP)


@dataclass(frozen=True)
class Start:
    """Start stopped hubs."""

    hubs: tuple[str, ...] = _hubs()


@dataclass(frozen=True)
class Stop:
    """Stop hubs cleanly (SIGTERM)."""

    hubs: tuple[str, ...] = _hubs()


@dataclass(frozen=True)
class Restart:
    """Stop a hub (SIGTERM), keep it down ``down`` seconds while ``backlog`` records are
    published elsewhere (``backlog_via``: one bundle, or one by one over HTTP or the CLI,
    each announced live), start it again."""

    hub: str = _hub()
    down: float = _seconds(0.0)
    backlog: int = _number(0)
    backlog_via: str = opt("bundle", "", choices=PUBLISH_VIA)


@dataclass(frozen=True)
class Kill:
    """``kill -9`` a hub and start it again. With ``during_sync``: stop it, publish
    ``backlog`` records elsewhere, start it, and kill it once it has stored some of them
    but not all (the report says whether the kill came mid-sync)."""

    hub: str = _hub()
    during_sync: bool = opt(False, "")
    backlog: int = _number(300)


@dataclass(frozen=True)
class Pause:
    """SIGSTOP a hub for ``seconds`` (a starved CPU), running ``steps`` meanwhile; SIGCONT."""

    hub: str = _hub()
    seconds: float = _seconds(20.0)
    steps: tuple[Step, ...] = _steps()


@dataclass(frozen=True)
class Rotate:
    """Stop a hub, ``craftnet id rotate``, start it; then check it has a ready link to
    every member and that ``craftnet sync`` with each member succeeds."""

    hub: str = _hub()


@dataclass(frozen=True)
class Partition:
    """Stop ``hubs``, run ``steps`` (publishes on both sides: a stopped hub publishes
    offline through the CLI), wait until ``seconds`` have passed, start them again."""

    hubs: tuple[str, ...] = _hubs()
    seconds: float = _seconds(0.0)
    steps: tuple[Step, ...] = _steps()


@dataclass(frozen=True)
class Publish:
    """Publish ``count`` technique records at a hub: ``cli`` (``craftnet publish``, one
    process each), ``http`` (``POST /api/v1/records`` as an artisan) or ``bundle``
    (signed by a lab artisan, ``craftnet import``ed at once)."""

    hub: str = _hub()
    count: int = _number(1, lo=1)
    via: str = opt("cli", "", choices=PUBLISH_VIA)


@dataclass(frozen=True)
class Flood:
    """A hostile member ``hub`` (invited by ``via``) joins and floods fake announcements
    (records it never serves) at ``rate`` per second for ``seconds``, while ``steps`` run;
    the report says when each honest hub hung up on it."""

    hub: str = _hub(REQUIRED)
    via: str = _hub()
    rate: float = _seconds(10.0, above=0)
    seconds: float = _seconds(60.0)
    steps: tuple[Step, ...] = _steps()


@dataclass(frozen=True)
class Converge:
    """Wait until every running honest hub holds the same records, all that were
    published (count and digest); times it from the last event. ``within`` overrides the
    lab's ``converge_within``; ``patience`` keeps watching that much longer to measure a
    late convergence."""

    within: float | None = _seconds(None)
    patience: float = _seconds(0.0)


@dataclass(frozen=True)
class Connect:
    """Check that every running honest hub has a ready link to every other one."""

    within: float | None = _seconds(None)


@dataclass(frozen=True)
class Idle:
    """Let the alliance run for ``seconds`` with nothing done to it."""

    seconds: float = _seconds(REQUIRED)


@dataclass(frozen=True)
class Repeat:
    """Run ``steps`` ``times`` times."""

    times: int = _number(REQUIRED, lo=1)
    steps: tuple[Step, ...] = opt(REQUIRED, "", tag="do")


Step = Union[  # noqa: UP007 -- a runtime value: the parser walks its members
    Found,
    Join,
    Start,
    Stop,
    Restart,
    Kill,
    Pause,
    Rotate,
    Partition,
    Publish,
    Flood,
    Converge,
    Connect,
    Idle,
    Repeat,
]
STEPS: Final[dict[str, type[Any]]] = {cls.__name__.lower(): cls for cls in typing.get_args(Step)}
# Options that name hubs.
_HUB_FIELDS: Final = ("hub", "via", "hubs")  # via: the inviter (join, flood)
_NEW_HUB: Final = {"found", "join", "flood"}


@dataclass(frozen=True)
class _File:
    """A scenario file as written: ``[lab]`` and its ``[[step]]`` tables."""

    lab: Settings = opt(REQUIRED, "a [lab] table with at least a name")
    step: tuple[Step, ...] = opt((), "the steps, in order", tag="do")


@dataclass(frozen=True)
class Scenario:
    """A checked scenario: settings and steps."""

    settings: Settings
    steps: tuple[Step, ...]
    source: str = ""
    hubs: tuple[str, ...] = field(default=())  # every hub the steps create, in order

    def count(self, kind: type[Any]) -> int:
        """How many steps of ``kind`` run, repeats unrolled."""
        return _count(self.steps, kind)


def _count(steps: tuple[Step, ...], kind: type[Any]) -> int:
    total = 0
    for step in steps:
        if isinstance(step, kind):
            total += 1
        if isinstance(step, Repeat):
            total += step.times * _count(step.steps, kind)
        elif isinstance(step, Pause | Partition | Flood):
            total += _count(step.steps, kind)
    return total


def load(path: Path) -> Scenario:
    """Read and check a scenario file."""
    try:
        text = tomlcheck.read_text(path, ScenarioError)
    except FileNotFoundError as exc:
        raise ScenarioError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return parse(text, str(path))


def parse(text: str, source: str = "<scenario>") -> Scenario:
    """Check a scenario's TOML text; a mistake names the file, the line and the option."""
    file, checker = tomlcheck.parse(text, source, _File, ScenarioError)
    if not file.step:
        raise checker.fail(("step",), "no [[step]] tables")
    hubs: list[str] = []
    _check_hubs(checker, file.step, ("step",), hubs, top=True)
    return Scenario(file.lab, file.step, source, tuple(hubs))


def _check_hubs(
    checker: Checker, steps: tuple[Step, ...], where: KeyPath, hubs: list[str], *, top: bool
) -> None:
    """Hub names are well formed and created (found/join/flood) before they are used."""
    for index, step in enumerate(steps):
        kind = type(step).__name__.lower()
        here = (*where, index)
        if top and index == 0 and not isinstance(step, Found):
            raise checker.fail((*here, "do"), "the first step must be 'found'")
        if isinstance(step, Found) and (not top or index != 0):
            raise checker.fail((*here, "do"), "'found' comes once, as the first step")
        for name in _HUB_FIELDS:
            value = getattr(step, name, None)
            if value is None or (name == "via" and kind not in _NEW_HUB):
                continue
            names = value if isinstance(value, tuple) else (value,)
            for hub in names:
                if name == "hub" and kind in _NEW_HUB:
                    if not NAME.fullmatch(hub) or hub == ANY:
                        raise checker.fail(
                            (*here, name),
                            f"hub name {hub!r} must be lower-case letters, digits "
                            "and dashes, starting with a letter (and not 'any')",
                        )
                    if hub in hubs:
                        raise checker.fail((*here, name), f"hub {hub!r} exists already")
                elif hub != ANY and hub not in hubs:
                    raise checker.fail(
                        (*here, name), f"no hub {hub!r} yet (found or join it first)"
                    )
        if isinstance(step, Found | Join | Flood):
            hubs.append(step.hub)
        nested = getattr(step, "steps", ())
        if nested:
            if isinstance(step, Repeat) and any(
                isinstance(s, Found | Join | Flood) for s in _walk(nested)
            ):
                raise checker.fail(
                    (*here, "steps"), "a repeat cannot create hubs (names are unique)"
                )
            _check_hubs(checker, nested, (*here, "steps"), hubs, top=False)


def _walk(steps: tuple[Step, ...]) -> list[Step]:
    out: list[Step] = []
    for step in steps:
        out.append(step)
        out.extend(_walk(getattr(step, "steps", ())))
    return out


SCENARIOS: Final = Path(__file__).with_name("scenarios")


def bundled() -> dict[str, Path]:
    """The scenarios that come with craftnet, by name (``short``, ``long``, ...)."""
    return {path.stem: path for path in sorted(SCENARIOS.glob("*.toml"))}


def steps_markdown() -> str:
    """The reference tables of docs/lab.md: ``[lab]`` options, then every step."""
    lines = ["| `[lab]` option | default | meaning |", "|---|---|---|"]
    for spec in dataclasses.fields(Settings):
        default = "required" if spec.default is dataclasses.MISSING else _toml(spec.default)
        lines.append(f"| `{spec.name}` | {default} | {spec.metadata['doc']} |")
    lines += ["", "| `do =` | options (default) | what it does |", "|---|---|---|"]
    for name, cls in STEPS.items():
        options = []
        for spec in dataclasses.fields(cls):
            if spec.default is not dataclasses.MISSING:
                options.append(f"`{spec.name}` = {_toml(spec.default)}")
            else:
                options.append(f"`{spec.name}`")
        doc = " ".join((cls.__doc__ or "").split()).replace("``", "`")
        lines.append(f"| `{name}` | {', '.join(options)} | {doc} |")
    return "\n".join(lines)


def _toml(value: Any) -> str:
    """A default as a scenario would write it."""
    if value is None:
        return "the lab's"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return "`[]`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value:g}`" if isinstance(value, float) else f"`{value}`"
