"""The lab's report: per hub what its log and API said, and the alliance's invariants.

:func:`build_report` reads every hub's stored log (:mod:`craftnet.node.lab.logs`), names
the peers in it (a peer id is a lab hub, one of its ``craftnet sync`` runs, or the
hostile member) and judges the invariants an alliance of hubs must hold (issue 10's
"Done means"). An invariant the scenario never exercised is ``null`` ("n/a"), neither
passed nor failed. :func:`render` prints the human summary; the JSON is the report.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Final

from craftnet.node.lab.logs import Kind, LogEvent, read_events

if TYPE_CHECKING:  # the report reads a finished lab; it never drives one
    from craftnet.node.lab.lab import Lab
    from craftnet.node.lab.scenario import Scenario

HANG_UPS: Final = (Kind.BAN, Kind.GRAYLIST, Kind.DISCONNECT, Kind.REFUSED, Kind.CUT_OFF)
# Disconnect reasons that say the peer's side went away, not that we sent it away.
_STREAM_GONE: Final = re.compile(r"end of stream|broke|reset|closed", re.IGNORECASE)
RELINK_WHYS: Final = ("restart", "after kill -9", "partition healed", "resume", "start")
INVARIANTS: Final = (
    "no_honest_bans",
    "no_honest_graylists",
    "converged",
    "same_records",
    "joins_link",
    "restarts_relink",
    "rotation_syncs",
    "flooder_cut",
    "no_crashes",
    "steps_done",
)


def _peer_names(lab: Lab) -> dict[str, tuple[str, bool]]:
    """Peer id -> (who, honest) for every peer id the lab's processes used."""
    names: dict[str, tuple[str, bool]] = {}
    for hub in lab.hubs.values():
        for event in read_events(hub.name, hub.home / "cli.log"):
            if event.kind is Kind.LISTENING and event.peer:
                names[event.peer] = (f"{hub.name} (craftnet sync)", not hub.hostile)
        if hub.peer_id:
            names[hub.peer_id] = (hub.name, not hub.hostile)
    return names


def _events(lab: Lab) -> list[LogEvent]:
    events: list[LogEvent] = []
    for hub in lab.hubs.values():
        events.extend(read_events(hub.name, hub.home / "serve.log"))
        events.extend(read_events(f"{hub.name} (craftnet sync)", hub.home / "cli.log"))
    return sorted(events, key=lambda e: e.at)


def _hangs_up(event: LogEvent) -> bool:
    """Did the hub decide to drop the peer (not merely see its stream end)?"""
    if event.kind is Kind.DISCONNECT:
        return not _STREAM_GONE.search(event.detail)
    return event.kind in HANG_UPS


def _verdict(ok: bool | None, detail: str) -> dict[str, Any]:
    return {"ok": ok, "detail": detail}


def build_report(lab: Lab, scenario: Scenario, wall: float) -> dict[str, Any]:
    """The report of a finished lab run, as JSON-able data."""
    names = _peer_names(lab)
    events = _events(lab)
    started = lab.started

    def rel(at: float) -> float:
        return round(at - started, 2)

    honest_acts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    per_hub_counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    unknown: list[dict[str, Any]] = []
    for event in events:
        observer = event.hub.removesuffix(" (craftnet sync)")
        if lab.hubs[observer].hostile:
            continue  # what the flooder thinks of the others is not a finding
        if event.kind in (Kind.ERROR, Kind.TRACEBACK):
            per_hub_counts[observer][event.kind.value + "s"] += 1
            continue
        if event.kind is Kind.LISTENING or event.peer is None:
            continue
        who, honest = names.get(event.peer, (event.peer, False))
        if event.peer not in names and event.kind in (Kind.BAN, Kind.GRAYLIST):
            unknown.append(
                {
                    "by": event.hub,
                    "kind": event.kind.value,
                    "peer": event.peer,
                    "at": rel(event.at),
                    "detail": event.detail,
                }
            )
        if honest and event.kind in (Kind.BAN, Kind.GRAYLIST, Kind.REFUSED, Kind.CUT_OFF):
            per_hub_counts[observer][event.kind.value + "_honest"] += 1
            honest_acts[event.kind.value].append(
                {"by": event.hub, "peer": who, "at": rel(event.at), "detail": event.detail}
            )

    final = lab.measures.converges[-1] if lab.measures.converges else None
    hubs_out: dict[str, Any] = {}
    for hub in lab.hubs.values():
        held = final["hubs"].get(hub.name) if final else None
        hubs_out[hub.name] = {
            "hostile": hub.hostile,
            "state": hub.state.value,
            "peer_id": hub.peer_id,
            "dids": hub.dids,
            "counts": dict(hub.counts),
            "unclean_exits": [e for e in hub.exits if not e["clean"]],
            "records": held,
            "log": dict(per_hub_counts.get(hub.name, {})),
            "links": [m for m in lab.measures.links if m["hub"] == hub.name],
        }

    floods = []
    for flood in lab.measures.floods:
        cut: dict[str, Any] = {}
        end = flood["ended"] or float("inf")
        for name in flood["honest_up"]:
            hit = next(
                (
                    e
                    for e in events
                    if e.hub == name
                    and e.peer == flood["peer"]
                    and flood["began"] <= e.at <= end
                    and _hangs_up(e)
                ),
                None,
            )
            cut[name] = (
                None
                if hit is None
                else {
                    "after_s": round(hit.at - flood["began"], 2),
                    "how": hit.kind.value,
                    "detail": hit.detail,
                }
            )
        floods.append(
            {
                **flood,
                "began": rel(flood["began"]) if flood["began"] else None,
                "ended": rel(flood["ended"]) if flood["ended"] else None,
                "cut": cut,
            }
        )

    invariants = _judge(lab, honest_acts, final, floods)
    counts = {
        "hubs": len(lab.honest()),
        "joins": sum(1 for e in lab.timeline if e["kind"] == "join"),
        "starts": sum(h.counts.get("starts", 0) for h in lab.hubs.values()),
        "restarts": sum(h.counts.get("restarts", 0) for h in lab.hubs.values()),
        "kills": sum(h.counts.get("kills", 0) for h in lab.hubs.values()),
        "kills_mid_sync": sum(1 for k in lab.measures.kills if k.get("mid_sync")),
        "pauses": sum(h.counts.get("pauses", 0) for h in lab.hubs.values()),
        "rotations": sum(h.counts.get("rotations", 0) for h in lab.hubs.values()),
        "floods": len(lab.measures.floods),
        "publishes": dict(lab.publishes),
        "records_published": len(lab.published),
    }
    return {
        "scenario": scenario.settings.name,
        "source": scenario.source,
        "craftnet": str(lab.craftnet),
        "version": lab.version,
        "wall_s": round(wall, 1),
        "ok": all(v["ok"] is not False for v in invariants.values()),
        "invariants": invariants,
        "counts": counts,
        "hubs": hubs_out,
        "honest": {kind: acts for kind, acts in honest_acts.items()},
        "unknown_peers_banned": unknown,
        "converges": lab.measures.converges,
        "rotations": lab.measures.rotations,
        "kills": lab.measures.kills,
        "floods": floods,
        "failures": lab.measures.failures,
        "timeline": lab.timeline,
    }


def _judge(
    lab: Lab,
    honest_acts: dict[str, list[dict[str, Any]]],
    final: dict[str, Any] | None,
    floods: list[dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    measures = lab.measures
    bans = honest_acts.get("ban", [])
    grays = honest_acts.get("graylist", [])
    out = {
        "no_honest_bans": _verdict(not bans, f"{len(bans)} ban(s) of honest hubs" + _first(bans)),
        "no_honest_graylists": _verdict(
            not grays, f"{len(grays)} graylisting(s) of honest hubs" + _first(grays)
        ),
    }
    converges = measures.converges
    late = [c for c in converges if not c["ok"]]
    times = sorted(c["converged_s"] for c in converges if c["converged_s"] is not None)
    out["converged"] = _verdict(
        None if not converges else not late,
        f"{len(converges) - len(late)} of {len(converges)} convergence checks within their "
        "limit" + (f"; times {', '.join(f'{t:g}' for t in times)} s" if times else ""),
    )
    if final is None:
        out["same_records"] = _verdict(None, "no convergence check ran")
    else:
        digests = {h["digest"] for h in final["hubs"].values()}
        same = len(digests) == 1 and None not in digests and not final["lost_publishes"]
        out["same_records"] = _verdict(
            same,
            f"{len(final['hubs'])} hubs, {len(digests)} distinct digest(s) of "
            f"{final['expected']} expected records; {len(final['lost_publishes'])} lost",
        )
    joins = [m for m in measures.links if m["why"] == "join" and m["members"] > 0]
    out["joins_link"] = _links_verdict(joins, lab.connect_within, "join(s)")
    relinks = [m for m in measures.links if m["why"] in RELINK_WHYS and m["members"] > 0]
    out["restarts_relink"] = _links_verdict(relinks, lab.connect_within, "(re)start(s)")
    rotations = measures.rotations
    failed_rot = [
        r
        for r in rotations
        if (r["links"] is None or r["links"]["linked_s"] is None)
        or any(s["exit"] != 0 for s in r["sync"].values())
    ]
    out["rotation_syncs"] = _verdict(
        None if not rotations else not failed_rot,
        f"{len(rotations) - len(failed_rot)} of {len(rotations)} rotated hubs linked to and "
        "synced with every member"
        + "".join(
            f"; {r['hub']}: sync failed with "
            + ", ".join(n for n, s in r["sync"].items() if s["exit"] != 0)
            for r in failed_rot
            if any(s["exit"] != 0 for s in r["sync"].values())
        ),
    )
    uncut = [
        (f["hub"], name)
        for f in floods
        for name, c in f["cut"].items()
        if c is None or c["after_s"] > lab.flood_cut_within
    ]
    out["flooder_cut"] = _verdict(
        None if not floods else not uncut,
        f"{sum(len(f['cut']) for f in floods) - len(uncut)} of "
        f"{sum(len(f['cut']) for f in floods)} honest hubs hung up on the flooder within "
        f"{lab.flood_cut_within:g} s"
        + (f"; not: {', '.join(n for _, n in uncut)}" if uncut else ""),
    )
    crashes = [f for f in measures.failures if f["what"] in ("crash", "stop")]
    out["no_crashes"] = _verdict(
        not crashes, f"{len(crashes)} crash(es) or unclean stop(s)" + _first(crashes)
    )
    others = [f for f in measures.failures if f not in crashes]
    out["steps_done"] = _verdict(
        not others, f"{len(others)} step(s) the lab could not carry out" + _first(others)
    )
    return out


def _links_verdict(entries: list[dict[str, Any]], within: float, what: str) -> dict[str, Any]:
    if not entries:
        return _verdict(None, f"no {what} with other members up")
    late = [m for m in entries if m["linked_s"] is None]
    times = sorted(m["linked_s"] for m in entries if m["linked_s"] is not None)
    median = times[len(times) // 2] if times else None
    detail = (
        f"{len(entries) - len(late)} of {len(entries)} {what} linked to every member "
        f"within {within:g} s (median {median} s)"
    )
    if late:
        first = late[0]
        detail += f"; e.g. {first['hub']} ({first['why']}) lacked {', '.join(first['missing'])}"
    return _verdict(not late, detail)


def _first(items: list[dict[str, Any]]) -> str:
    if not items:
        return ""
    first = items[0]
    return "; first: " + ", ".join(f"{k}={v}" for k, v in first.items())


def render(report: dict[str, Any]) -> str:
    """The human summary of a report."""
    c = report["counts"]
    pub = c["publishes"]
    lines = [
        f"lab {report['scenario']!r}: {report['version']} ({report['craftnet']}), "
        f"{report['wall_s']} s",
        f"  {c['hubs']} hubs, {c['joins']} joins, {c['restarts']} restarts, {c['kills']} kill -9 "
        f"({c['kills_mid_sync']} mid-sync), {c['pauses']} pauses, {c['rotations']} rotations, "
        f"{c['floods']} floods; {c['records_published']} records published "
        f"(cli {pub['cli']}, http {pub['http']}, bundle {pub['bundle']})",
        "",
        f"  {'hub':<12} {'state':<8} {'records':>8} {'missing':>8} {'digest':<12} "
        f"{'reached':>8} {'bans':>5} {'gray':>5} {'refused':>8} {'errors':>6}",
    ]
    for name, hub in report["hubs"].items():
        if hub["hostile"]:
            continue
        held = hub["records"] or {}
        log = hub["log"]
        reached = held.get("reached_s")
        errors = log.get("errors", 0) + log.get("tracebacks", 0)
        lines.append(
            f"  {name:<12} {hub['state']:<8} {_s(held.get('held')):>8} "
            f"{_s(held.get('missing')):>8} {(held.get('digest') or '-')[:12]:<12} "
            f"{_s(reached):>8} {log.get('ban_honest', 0):>5} {log.get('graylist_honest', 0):>5} "
            f"{log.get('refused_honest', 0):>8} {errors:>6}"
        )
    lines.append("  (bans/gray/refused: honest peers this hub banned, graylisted, refused)")
    for kind in ("ban", "graylist", "refused"):
        acts = report["honest"].get(kind, [])
        if not acts:
            continue
        pairs: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for act in acts:
            pairs[(act["by"], act["peer"])].append(act)
        lines.append(f"  honest peers {_PAST[kind]}: {len(acts)} time(s), {len(pairs)} pair(s)")
        for (by, peer), group in list(pairs.items())[:10]:
            first = group[0]
            lines.append(
                f"    {by} -> {peer}: {len(group)}x from +{first['at']} s: {first['detail'][:110]}"
            )
    for rot in report["rotations"]:
        syncs = ", ".join(
            f"{n} {'ok' if s['exit'] == 0 else 'FAILED'}" for n, s in rot["sync"].items()
        )
        linked = rot["links"]["linked_s"] if rot["links"] else None
        lines.append(f"  rotation of {rot['hub']}: linked {_s(linked)} s; sync: {syncs or '-'}")
    for flood in report["floods"]:
        cuts = ", ".join(
            f"{n} {_s(c['after_s']) + ' s' if c else 'never'}" for n, c in flood["cut"].items()
        )
        lines.append(
            f"  flood by {flood['hub']} ({flood['sent']} fakes at {flood['rate']:g}/s): "
            f"hung up by {cuts}"
        )
    for failure in report["failures"][:8]:
        lines.append(
            f"  could not: +{failure['at']} s {failure['what']} {failure['hub'] or ''}: "
            f"{failure['detail'][:160]}"
        )
    lines.append("")
    for name, verdict in report["invariants"].items():
        mark = {True: "PASS", False: "FAIL", None: "n/a "}[verdict["ok"]]
        lines.append(f"  {mark} {name}: {verdict['detail']}")
    lines.append(f"  => {'all invariants hold' if report['ok'] else 'INVARIANTS BROKEN'}")
    return "\n".join(lines)


_PAST: Final = {"ban": "banned", "graylist": "graylisted", "refused": "refused"}


def _s(value: Any) -> str:
    return "-" if value is None else str(value)
