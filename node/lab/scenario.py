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
refused with :class:`ScenarioError` naming the step (``step 4 > 2 (publish)``).
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Union

from craftnet.node.lab.errors import ScenarioError

ANY: Final = "any"  # a hub picked at random among the running honest hubs
NAME: Final = re.compile(r"[a-z][a-z0-9-]{0,30}")
PUBLISH_VIA: Final = ("cli", "http", "bundle")
BOOTSTRAP: Final = ("all", "via")
MAX_COUNT: Final = 100_000
MAX_SECONDS: Final = 24 * 3600.0


@dataclass(frozen=True)
class Settings:
    """The ``[lab]`` table: what the run is called and what it holds the hubs to."""

    name: str
    description: str = ""
    seed: int = 1
    connect_within: float = 5.0
    converge_within: float = 30.0
    flood_cut_within: float = 60.0
    background_publish: float = 0.0
    sync_timeout: float = 60.0


SETTINGS_HELP: Final = {
    "name": "what the run is called (in the report)",
    "description": "a sentence for people",
    "seed": "seeds every random choice of the run (which hub `any` is, record contents); "
    "a background publisher makes the order of choices depend on timing",
    "connect_within": "seconds within which a (re)started hub must have a ready link to "
    "every running member",
    "converge_within": "seconds after the last event within which every running hub must "
    "hold the same records",
    "flood_cut_within": "seconds within which every honest hub must hang up on a flooder",
    "background_publish": "seconds between background CLI publishes at a random hub, "
    "through the whole run except while a convergence is timed; 0: none",
    "sync_timeout": "`--timeout` of each `craftnet sync` after a rotation",
}


@dataclass(frozen=True)
class Found:
    """Create the first hub (``craftnet init``, ``alliance create``) and start it."""

    hub: str


@dataclass(frozen=True)
class Join:
    """A new hub: ``init``, ``alliance invite`` run at member ``via``, ``alliance join``,
    then ``serve`` with every member's address (``bootstrap = "all"``) or only ``via``'s;
    measures how long until it has a ready link to every running member."""

    hub: str
    via: str = ANY
    bootstrap: str = "all"


@dataclass(frozen=True)
class Start:
    """Start stopped hubs."""

    hubs: tuple[str, ...]


@dataclass(frozen=True)
class Stop:
    """Stop hubs cleanly (SIGTERM)."""

    hubs: tuple[str, ...]


@dataclass(frozen=True)
class Restart:
    """Stop a hub (SIGTERM), keep it down ``down`` seconds while ``backlog`` records are
    published elsewhere (``backlog_via``: one bundle, or one by one over HTTP or the CLI,
    each announced live), start it again."""

    hub: str = ANY
    down: float = 0.0
    backlog: int = 0
    backlog_via: str = "bundle"


@dataclass(frozen=True)
class Kill:
    """``kill -9`` a hub and start it again. With ``during_sync``: stop it, publish
    ``backlog`` records elsewhere, start it, and kill it once it has stored some of them
    but not all (the report says whether the kill came mid-sync)."""

    hub: str = ANY
    during_sync: bool = False
    backlog: int = 300


@dataclass(frozen=True)
class Pause:
    """SIGSTOP a hub for ``seconds`` (a starved CPU), running ``steps`` meanwhile; SIGCONT."""

    hub: str = ANY
    seconds: float = 20.0
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True)
class Rotate:
    """Stop a hub, ``craftnet id rotate``, start it; then check it has a ready link to
    every member and that ``craftnet sync`` with each member succeeds."""

    hub: str = ANY


@dataclass(frozen=True)
class Partition:
    """Stop ``hubs``, run ``steps`` (publishes on both sides: a stopped hub publishes
    offline through the CLI), wait until ``seconds`` have passed, start them again."""

    hubs: tuple[str, ...]
    seconds: float = 0.0
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True)
class Publish:
    """Publish ``count`` technique records at a hub: ``cli`` (``craftnet publish``, one
    process each), ``http`` (``POST /api/v1/records`` as an artisan) or ``bundle``
    (signed by a lab artisan, ``craftnet import``ed at once)."""

    hub: str = ANY
    count: int = 1
    via: str = "cli"


@dataclass(frozen=True)
class Flood:
    """A hostile member ``hub`` (invited by ``via``) joins and floods fake announcements
    (records it never serves) at ``rate`` per second for ``seconds``, while ``steps`` run;
    the report says when each honest hub hung up on it."""

    hub: str
    via: str = ANY
    rate: float = 10.0
    seconds: float = 60.0
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True)
class Converge:
    """Wait until every running honest hub holds the same records, all that were
    published (count and digest); times it from the last event. ``within`` overrides the
    lab's ``converge_within``; ``patience`` keeps watching that much longer to measure a
    late convergence."""

    within: float | None = None
    patience: float = 0.0


@dataclass(frozen=True)
class Connect:
    """Check that every running honest hub has a ready link to every other one."""

    within: float | None = None


@dataclass(frozen=True)
class Idle:
    """Let the alliance run for ``seconds`` with nothing done to it."""

    seconds: float


@dataclass(frozen=True)
class Repeat:
    """Run ``steps`` ``times`` times."""

    times: int
    steps: tuple[Step, ...]


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
# Options that name hubs, and the values some options must take.
_HUB_FIELDS: Final = ("hub", "via", "hubs")  # via: the inviter (join, flood)
_CHOICES: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    ("publish", "via"): PUBLISH_VIA,
    ("join", "bootstrap"): BOOTSTRAP,
    ("restart", "backlog_via"): PUBLISH_VIA,
}
_POSITIVE: Final = {"count", "times", "rate"}
_NEW_HUB: Final = {"found", "join", "flood"}


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
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path} is not UTF-8 text: {exc}") from exc
    return parse(text, str(path))


def parse(text: str, source: str = "<scenario>") -> Scenario:
    """Check a scenario's TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {exc}") from exc
    unknown = set(data) - {"lab", "step"}
    if unknown:
        raise ScenarioError(f"{source}: unknown table {sorted(unknown)[0]!r} (use [lab], [[step]])")
    lab = data.get("lab")
    if not isinstance(lab, dict):
        raise ScenarioError(f"{source}: a [lab] table with at least a name is needed")
    settings = _build(Settings, lab, f"{source}: [lab]")
    raw_steps = data.get("step")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ScenarioError(f"{source}: no [[step]] tables")
    steps = _steps(raw_steps, f"{source}: step")
    hubs: list[str] = []
    _check_hubs(steps, hubs, f"{source}: step", top=True)
    return Scenario(settings, steps, source, tuple(hubs))


def _steps(raw: Any, where: str) -> tuple[Step, ...]:
    if not isinstance(raw, list):
        raise ScenarioError(f"{where}: 'steps' must be a list of steps")
    built = []
    for number, item in enumerate(raw, 1):
        here = f"{where} {number}"
        if not isinstance(item, dict):
            raise ScenarioError(f"{here}: a step is a table with 'do' and its options")
        kind = item.get("do")
        if not isinstance(kind, str) or kind not in STEPS:
            raise ScenarioError(f"{here}: 'do' must be one of {', '.join(STEPS)} (got {kind!r})")
        options = {k: v for k, v in item.items() if k != "do"}
        built.append(_build(STEPS[kind], options, f"{here} ({kind})"))
    return tuple(built)


def _build(cls: type[Any], options: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls, globals())
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(options) - set(fields)
    if unknown:
        raise ScenarioError(
            f"{where}: unknown option {sorted(unknown)[0]!r} (known: {', '.join(fields)})"
        )
    values: dict[str, Any] = {}
    kind = cls.__name__.lower()
    for name, spec in fields.items():
        if name not in options:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise ScenarioError(f"{where}: option {name!r} is required")
            continue
        value = _value(hints[name], options[name], f"{where}: {name!r}")
        if name in _POSITIVE and value <= 0:
            raise ScenarioError(f"{where}: {name!r} must be above 0")
        choices = _CHOICES.get((kind, name))
        if choices is not None and value not in choices:
            raise ScenarioError(f"{where}: {name!r} must be one of {', '.join(choices)}")
        values[name] = value
    return cls(**values)


def _value(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType) and type(None) in args:
        return None if value is None else _value(args[0], value, where)
    if hint is bool:
        if not isinstance(value, bool):
            raise ScenarioError(f"{where} must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
            raise ScenarioError(f"{where} must be a whole number 0..{MAX_COUNT}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScenarioError(f"{where} must be a number of seconds")
        if not 0 <= value <= MAX_SECONDS:
            raise ScenarioError(f"{where} must be 0..{MAX_SECONDS:.0f}")
        return float(value)
    if hint is str:
        if not isinstance(value, str) or len(value) > 2000:
            raise ScenarioError(f"{where} must be a string")
        return value
    if origin is tuple and args and args[0] is str:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
            raise ScenarioError(f"{where} must be a hub name or a list of hub names")
        return tuple(items)
    if origin is tuple:
        return _steps(value, where.rsplit(":", 1)[0] + " >")
    raise ScenarioError(f"{where}: unsupported option type {hint}")  # pragma: no cover


def _check_hubs(steps: tuple[Step, ...], hubs: list[str], where: str, *, top: bool) -> None:
    """Hub names are well formed and created (found/join/flood) before they are used."""
    for number, step in enumerate(steps, 1):
        kind = type(step).__name__.lower()
        here = f"{where} {number} ({kind})"
        if top and number == 1 and not isinstance(step, Found):
            raise ScenarioError(f"{here}: the first step must be 'found'")
        if isinstance(step, Found) and (not top or number != 1):
            raise ScenarioError(f"{here}: 'found' comes once, as the first step")
        for name in _HUB_FIELDS:
            value = getattr(step, name, None)
            if value is None or (name == "via" and kind not in _NEW_HUB):
                continue
            names = value if isinstance(value, tuple) else (value,)
            for hub in names:
                new = name == "hub" and kind in _NEW_HUB
                if new:
                    if not NAME.fullmatch(hub) or hub == ANY:
                        raise ScenarioError(
                            f"{here}: hub name {hub!r} must be lower-case letters, digits "
                            "and dashes, starting with a letter (and not 'any')"
                        )
                    if hub in hubs:
                        raise ScenarioError(f"{here}: hub {hub!r} exists already")
                elif hub != ANY and hub not in hubs:
                    raise ScenarioError(f"{here}: no hub {hub!r} yet (found or join it first)")
        if isinstance(step, Found | Join | Flood):
            hubs.append(step.hub)
        nested = getattr(step, "steps", ())
        if nested:
            if isinstance(step, Repeat) and any(
                isinstance(s, Found | Join | Flood) for s in _walk(nested)
            ):
                raise ScenarioError(f"{here}: a repeat cannot create hubs (names are unique)")
            _check_hubs(nested, hubs, f"{here} >", top=False)


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
        lines.append(f"| `{spec.name}` | {default} | {SETTINGS_HELP[spec.name]} |")
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
