"""What the lab reads in a hub's log: the node's own lines, reworded ones, and noise."""

from __future__ import annotations

from pathlib import Path

import pytest

from craftnet.node.lab.logs import Kind, parse_line, read_events, stamp

PEER = "12D3KooWSA2Gzi39rijmheGUXpAmo6N8Fhn4q88GwTCJ9Ru6yr7R"
DID = "did:key:z6MkvVNJ4rw4hKMBekctobtv8giAvDFrp43HNQhzEQiFQzpC"
INFO = "2031-05-04 12:00:00,123 INFO craftnet.p2p: "
WARN = "2031-05-04 12:00:00,123 WARNING craftnet.p2p: "
ERROR = "2031-05-04 12:00:00,123 ERROR craftnet.p2p: storing 3 received blocks failed"


@pytest.mark.parametrize(
    ("text", "kind", "detail"),
    [
        (
            WARN + f"banning {PEER} until +3600s: misbehaved (flood)",
            Kind.BAN,
            "3600s: misbehaved (flood)",
        ),
        # Python's default handler prints a warning without time, level or logger.
        (
            f"banning {PEER} until +3600s: misbehaved (not_member)",
            Kind.BAN,
            "3600s: misbehaved (not_member)",
        ),
        (
            WARN + f"disconnecting {PEER}: score -27.5 is below the graylist",
            Kind.GRAYLIST,
            "score -27.5 is below the graylist",
        ),
        (
            INFO + f"disconnecting {PEER}: {DID} is not a member of 'bafyr4i'",
            Kind.REFUSED,
            f"{DID} is not a member of 'bafyr4i'",
        ),
        (INFO + f"disconnecting {PEER}: end of stream", Kind.DISCONNECT, "end of stream"),
        (
            WARN + f"cut off {PEER}: no longer a member of the alliance",
            Kind.CUT_OFF,
            "no longer a member of the alliance",
        ),
        (
            INFO.replace("p2p", "hub") + f"hub {PEER} listening on /ip4/127.0.0.1/tcp/1",
            Kind.LISTENING,
            "/ip4/127.0.0.1/tcp/1",
        ),
        # After issue 10's engine rewrite: who closed, and why.
        (
            INFO + f"banning {PEER} for 3600 s: misbehaved (flood)",
            Kind.BAN,
            "3600 s: misbehaved (flood)",
        ),
        (
            INFO + f"we closed the connection to {PEER} ({DID}): graylisted: score -27.5 below -20",
            Kind.GRAYLIST,
            "graylisted: score -27.5 below -20",
        ),
        (
            INFO
            + f"we closed the connection to {PEER}: {DID} is not a member of alliance 'b' as far",
            Kind.REFUSED,
            f"{DID} is not a member of alliance 'b' as far",
        ),
        (
            INFO + f"we closed the connection to {PEER} ({DID}): banned for 3600 s: score below",
            Kind.BAN,
            "banned for 3600 s: score below",
        ),
        (
            INFO + f"we closed the connection to {PEER} ({DID}): {DID} is no longer a member",
            Kind.CUT_OFF,
            f"{DID} is no longer a member",
        ),
        (
            INFO + f"we closed the connection to {PEER}: too many peers",
            Kind.DISCONNECT,
            "too many peers",
        ),
        # The other side's reason is theirs: our log line says it ended, no more.
        (
            INFO + f"the connection to {PEER} ({DID}) ended: {PEER} refused us: graylisted",
            Kind.ENDED,
            f"{PEER} refused us: graylisted",
        ),
        # Reworded lines are still counted.
        (INFO + f"banned {PEER} for 3600 s (flood)", Kind.BAN, "for 3600 s (flood)"),
        (INFO + f"peer {PEER} graylisted: score -30", Kind.GRAYLIST, "graylisted: score -30"),
        (INFO + f"refusing {PEER}: not a member", Kind.REFUSED, ": not a member"),
        (ERROR, Kind.ERROR, ERROR),
        ("error: unexpected ExceptionGroup", Kind.ERROR, "error: unexpected ExceptionGroup"),
        ("Traceback (most recent call last):", Kind.TRACEBACK, ""),
    ],
)
def test_lines_that_matter(text: str, kind: Kind, detail: str) -> None:
    event = parse_line("lisbon", stamp(1234.5, text))
    assert event is not None
    assert (event.kind, event.detail, event.at, event.hub) == (kind, detail, 1234.5, "lisbon")
    if kind not in (Kind.ERROR, Kind.TRACEBACK):
        assert event.peer == PEER


@pytest.mark.parametrize(
    "text",
    [
        # libp2p's own errors (a redial that failed) are its noise, not a finding.
        "2031-05-04 12:00:00,123 ERROR libp2p.transport.tcp.tcp: Failed to open TCP stream",
        INFO + "reconcile index rebuilt",
        "craftnet hub serving at http://127.0.0.1:8470/",
        "",
        "banning nobody until later",  # no peer id
    ],
)
def test_lines_that_do_not(text: str) -> None:
    assert parse_line("lisbon", stamp(1.0, text)) is None


@pytest.mark.parametrize(
    "stored", ["", "no-stamp banning", "\x00\xff", "nan", f"x banning {PEER} until +1s: x"]
)
def test_damaged_stored_lines_are_skipped(stored: str) -> None:
    assert parse_line("lisbon", stored) is None


def test_a_log_file_reads_as_events_in_order(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    assert list(read_events("lisbon", log)) == []
    log.write_bytes(
        (
            stamp(1.0, INFO + "reconcile index rebuilt")
            + "\n"
            + stamp(2.0, WARN + f"banning {PEER} until +3600s: misbehaved (flood)")
            + "\n"
        ).encode()
        + b"\xff\xfe broken bytes\n"
    )
    events = list(read_events("lisbon", log))
    assert [(e.at, e.kind) for e in events] == [(2.0, Kind.BAN)]


def test_a_traceback_belongs_to_the_record_before_it(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    lines = [
        "2031-05-04 12:00:00,123 WARNING libp2p.network.swarm: add_conn failed",
        "Traceback (most recent call last):",
        "LifecycleError: Cannot schedule task after service has stopped",
        "2031-05-04 12:00:01,123 ERROR craftnet.p2p: the engine refused DataReceived",
        "Traceback (most recent call last):",
        "Traceback (most recent call last):",  # uncaught, after craftnet's record
    ]
    log.write_text("".join(stamp(float(i), line) + "\n" for i, line in enumerate(lines)))
    kinds = [(e.at, e.kind) for e in read_events("lisbon", log)]
    assert kinds == [(3.0, Kind.ERROR), (4.0, Kind.TRACEBACK), (5.0, Kind.TRACEBACK)]
