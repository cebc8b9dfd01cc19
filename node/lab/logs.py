"""What a hub's log lines mean to the lab: bans, graylists, refusals, errors.

The lab reads every hub's stderr as it is written and stamps each line with the time it
arrived (``<epoch seconds> <line>`` in the hub's ``serve.log``), so the log needs no
timestamps of its own and a build without ``CRAFTNET_LOG`` support (message-only
warnings) is still read. The patterns below are the node's log lines as of this
writing; each has a looser fallback (a ban- or graylist-word next to a peer id), so a
reworded line is still counted, with its whole text as the reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Final

PEER: Final = r"(?P<peer>(?:12D3Koo|Qm)[1-9A-HJ-NP-Za-km-z]{20,})"


class Kind(Enum):
    """What a log line reports."""

    BAN = "ban"
    GRAYLIST = "graylist"
    REFUSED = "refused"  # a hello refused: the peer's did is not (yet) a member to us
    DISCONNECT = "disconnect"  # any other hang-up the hub chose, with its reason
    CUT_OFF = "cut_off"  # a member no longer in the alliance (revoked, expired)
    ERROR = "error"  # an ERROR/CRITICAL record or a one-line CLI error
    TRACEBACK = "traceback"
    LISTENING = "listening"  # a hub (or a `craftnet sync`) told its peer id
    ENDED = "ended"  # the peer's side closed (its reason, if it sent one, is not ours)


# (kind, pattern); a kind of None is told from the reason (``_BY_REASON``).
_PATTERNS: Final[list[tuple[Kind | None, re.Pattern[str]]]] = [
    # The node's lines before issue 10's engine rewrite ...
    (Kind.BAN, re.compile(rf"banning {PEER} until \+?(?P<detail>[\d.]+s: .*)")),
    (Kind.GRAYLIST, re.compile(rf"disconnecting {PEER}: (?P<detail>score .* below the graylist)")),
    (Kind.REFUSED, re.compile(rf"disconnecting {PEER}: (?P<detail>did:key:\w+ is not a member.*)")),
    (Kind.CUT_OFF, re.compile(rf"cut off {PEER}: (?P<detail>.*)")),
    (Kind.DISCONNECT, re.compile(rf"disconnecting {PEER}: (?P<detail>.*)")),
    (Kind.LISTENING, re.compile(rf"hub {PEER} listening on (?P<detail>.*)")),
    # ... and after it: who closed, and why.
    (Kind.BAN, re.compile(rf"banning {PEER} for (?P<detail>.*)")),
    (None, re.compile(rf"we closed the connection to {PEER}(?: \([^)]*\))?: (?P<detail>.*)")),
    (Kind.ENDED, re.compile(rf"the connection to {PEER}(?: \([^)]*\))? ended: (?P<detail>.*)")),
    # Fallbacks for reworded lines: the word and a peer id on one line.
    (Kind.BAN, re.compile(rf"\bban(?:ning|ned|s)?\b.*?{PEER}(?P<detail>.*)", re.IGNORECASE)),
    (Kind.GRAYLIST, re.compile(rf"graylist.*?{PEER}(?P<detail>.*)", re.IGNORECASE)),
    (Kind.GRAYLIST, re.compile(rf"{PEER}(?P<detail>.*graylist.*)", re.IGNORECASE)),
    (Kind.REFUSED, re.compile(rf"{PEER}(?P<detail>.*not a member.*)")),
]
_BY_REASON: Final = [
    (Kind.GRAYLIST, re.compile(r"graylist", re.IGNORECASE)),
    (Kind.BAN, re.compile(r"\bbann?(?:ed|ing)?\b", re.IGNORECASE)),
    (Kind.CUT_OFF, re.compile(r"no longer a member")),
    (Kind.REFUSED, re.compile(r"not a member|membership proof")),
]
_LEVEL: Final = re.compile(
    r"^\S+ \S+ (?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) (?P<logger>[\w.]+): "
)


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One meaningful line of one hub's log."""

    at: float
    hub: str
    kind: Kind
    peer: str | None
    detail: str
    line: str


def stamp(at: float, line: str) -> str:
    """A log line as the lab stores it: arrival time first."""
    return f"{at:.3f} {line.rstrip()}"


def parse_line(hub: str, stored: str) -> LogEvent | None:
    """The event a stored line (``<epoch> <text>``) reports, or None."""
    head, _, text = stored.rstrip("\n").partition(" ")
    try:
        at = float(head)
    except ValueError:
        return None
    if not math.isfinite(at):
        return None
    if text.startswith("Traceback (most recent call last)"):
        return LogEvent(at, hub, Kind.TRACEBACK, None, "", text)
    for kind, pattern in _PATTERNS:
        found = pattern.search(text)
        if found is not None:
            detail = found["detail"].strip()
            if kind is None:
                kind = next((k for k, why in _BY_REASON if why.search(detail)), Kind.DISCONNECT)
            return LogEvent(at, hub, kind, found["peer"], detail, text)
    # craftnet's own errors; libp2p's (a failed redial, ...) are its noise, not a finding.
    level = _LEVEL.match(text)
    if (
        level is not None
        and level["level"] in ("ERROR", "CRITICAL")
        and level["logger"].startswith("craftnet")
    ) or text.startswith("error: "):
        return LogEvent(at, hub, Kind.ERROR, None, text, text)
    return None


def read_events(hub: str, path: Path) -> Iterator[LogEvent]:
    """Every event in a stored log file (none if it does not exist yet).

    A traceback belongs to the log record just before it: one that libp2p logged with
    its exception (a connection added while its service stops) is libp2p's noise.
    """
    if not path.exists():
        return
    logger = ""
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            _, _, text = line.partition(" ")
            record = _LEVEL.match(text)
            if record is not None:
                logger = record["logger"]
            event = parse_line(hub, line)
            if event is None:
                continue
            if event.kind is Kind.TRACEBACK and logger and not logger.startswith("craftnet"):
                continue
            yield event
