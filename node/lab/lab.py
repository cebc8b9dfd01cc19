"""The lab's Python API: one method per thing that happens to an alliance of real hubs.

::

    with Lab(Path("/tmp/lab"), craftnet=Path(".venv/bin/craftnet")) as lab:
        lab.found("lisbon")
        lab.join("oaxaca", via="lisbon")
        lab.publish("oaxaca", count=20, via="bundle")
        lab.restart("lisbon")
        lab.converge()
        report = lab.report()

Every hub is a ``craftnet serve`` process of the given executable; everything is done
through that executable's CLI, its HTTP API and signals, and everything measured is
read back from the hubs (their logs, ``/api/v1/status``, ``/api/v1/peers``,
``/api/v1/records``). Waiting is waiting for a condition with a deadline; the only
fixed durations are the events themselves (a pause of 20 s lasts 20 s).

The lab records a timeline of events and, per event that a hub should survive, what
came of it: how long until a (re)started hub was linked to every member, whether a
rotated hub could sync with each member, when hubs hung up on a flooder, and when the
alliance converged after the last event. :meth:`Lab.report` turns it into a report.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import blake3

from craftnet.identity.keys import PrivateKey
from craftnet.node.lab.errors import LabError
from craftnet.node.lab.ports import PortPool
from craftnet.node.lab.proc import STOP_TIMEOUT, Child, LabHub, State, launcher, python_of
from craftnet.node.lab.records import cli_publish_args, technique_body, write_bundle

ALLIANCE: Final = "Global Micro-manufacturing Alliance"
POLL: Final = 0.1
FAST_POLL: Final = 0.02
PAGE: Final = 200
ARTISAN: Final = "lab-artisan"
ARTISAN_PASSPHRASE: Final = "warp and weft of the living heritage"
FLOODER: Final = Path(__file__).with_name("flooder.py")
CLI_WAIT: Final = 180.0  # the background publisher's last command, at the end
Quiet = Callable[[], None]


def digest(cids: set[str]) -> str:
    """The BLAKE3 digest of a record-CID set (sorted, one per line)."""
    return blake3.blake3("\n".join(sorted(cids)).encode()).hexdigest()


@dataclass
class Flooder:
    """The hostile member's running program."""

    hub: LabHub
    child: Child
    rate: float
    seconds: float
    began: float = 0.0
    ended: float = 0.0
    sent: int = 0


@dataclass
class Measures:
    """What the lab measured, event by event (the report's raw material)."""

    links: list[dict[str, Any]] = field(default_factory=list)
    converges: list[dict[str, Any]] = field(default_factory=list)
    rotations: list[dict[str, Any]] = field(default_factory=list)
    kills: list[dict[str, Any]] = field(default_factory=list)
    floods: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)


class Lab:
    """An alliance of real hubs on 127.0.0.1, and what happens to it."""

    def __init__(
        self,
        root: Path,
        craftnet: Path,
        *,
        seed: int = 1,
        connect_within: float = 5.0,
        converge_within: float = 30.0,
        flood_cut_within: float = 60.0,
        sync_timeout: float = 60.0,
    ) -> None:
        if not craftnet.exists():
            raise LabError(f"no craftnet executable at {craftnet}")
        self.root = root
        self.craftnet = craftnet
        self.rng = random.Random(seed)
        self.connect_within = connect_within
        self.converge_within = converge_within
        self.flood_cut_within = flood_cut_within
        self.sync_timeout = sync_timeout
        # Ports differ run to run (two labs at once); every other choice follows the seed.
        self.ports = PortPool(random.Random())
        self.hubs: dict[str, LabHub] = {}
        self.alliance = ""
        self.published: dict[str, str] = {}  # record CID -> hub it was published at
        self.publishes: dict[str, int] = {"cli": 0, "http": 0, "bundle": 0}
        self.timeline: list[dict[str, Any]] = []
        self.measures = Measures()
        self.flooders: list[Flooder] = []
        self.started = time.time()
        self.last_event = self.started
        self.artisan = PrivateKey.generate()
        self._serial = 0
        self._lock = threading.RLock()  # steps and the background publisher
        self._http_artisans: set[str] = set()
        self._quiet: threading.Event | None = None  # set: the background publisher holds off
        root.mkdir(parents=True, exist_ok=True)
        self.command = launcher(craftnet)
        self.python = python_of(craftnet)
        self.version = LabHub("version", root / "version", 0, self.command).cli("--version")

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every process of the lab and release its ports."""
        for flooder in self.flooders:
            flooder.child.signal(signal.SIGTERM)
        for hub in self.hubs.values():
            hub.close()
        for flooder in self.flooders:
            if flooder.child.wait(STOP_TIMEOUT) is None:
                flooder.child.signal(signal.SIGKILL)
        self.ports.close()

    # ------------------------------------------------------------------ bookkeeping

    def event(self, kind: str, hub: str | None = None, **detail: Any) -> None:
        """Note an event on the timeline; the convergence clock restarts from it."""
        now = time.time()
        with self._lock:
            self.timeline.append(
                {"at": round(now - self.started, 3), "kind": kind, "hub": hub, **detail}
            )
            self.last_event = now

    def honest(self) -> list[LabHub]:
        """Every honest hub created so far."""
        return [h for h in self.hubs.values() if not h.hostile and h.state is not State.NEW]

    def running(self) -> list[LabHub]:
        """Honest hubs whose serve runs (not paused, not down)."""
        self.check_crashes()
        return [h for h in self.honest() if h.state is State.RUNNING]

    def check_crashes(self) -> None:
        """Notice hubs whose serve exited on their own."""
        for hub in self.honest():
            if hub.note_crash():
                self.failure("crash", hub.name, f"exit {hub.exits[-1]['code']}")

    def failure(self, what: str, hub: str | None, detail: str) -> None:
        """A step that could not be carried out as asked (it goes into the report)."""
        self.measures.failures.append(
            {"at": round(time.time() - self.started, 3), "what": what, "hub": hub, "detail": detail}
        )

    def pick(self, ref: str, *, exclude: tuple[str, ...] = (), up: bool = True) -> LabHub:
        """The hub ``ref`` names; ``any``: a random running (or, ``up=False``, any) hub."""
        if ref != "any":
            if ref not in self.hubs:
                raise LabError(f"no hub {ref!r}")
            return self.hubs[ref]
        pool = self.running() if up else self.honest()
        choices = [h for h in pool if h.name not in exclude]
        if not choices:
            raise LabError("no hub to pick: every hub is down, paused or excluded")
        return self.rng.choice(choices)

    def _new_hub(self, name: str, *, hostile: bool = False) -> LabHub:
        if name in self.hubs:
            raise LabError(f"hub {name!r} exists already")
        hub = LabHub(name, self.root / name, self.ports.claim(), self.command, hostile=hostile)
        hub.cli("init", "--no-passphrase")
        hub.did = hub.cli("id")["did"]
        hub.dids.append(hub.did)
        self.hubs[name] = hub
        return hub  # State.NEW until it is in the alliance

    def _bootstrap(self, hub: LabHub, only: LabHub | None = None) -> list[str]:
        if only is not None:
            return [only.address]
        return [h.address for h in self.honest() if h is not hub and h.address]

    def _serial_no(self) -> str:
        with self._lock:
            self._serial += 1
            return f"{self._serial:06d}"

    # ------------------------------------------------------------------ membership

    def found(self, name: str) -> LabHub:
        """The founding hub: init, ``alliance create``, serve."""
        hub = self._new_hub(name)
        created = hub.cli("alliance", "create", ALLIANCE, "--max-cert-days", "400")
        self.alliance = created["alliance"]
        hub.state = State.DOWN
        self.event("found", name, alliance=self.alliance)
        self._start(hub, "found")
        return hub

    def _admit(self, name: str, via: str, *, hostile: bool) -> tuple[LabHub, LabHub]:
        inviter = self.pick(via, up=False)
        if inviter.hostile:
            raise LabError(f"{inviter.name} is the hostile member; honest hubs invite")
        hub = self._new_hub(name, hostile=hostile)
        try:
            token = inviter.cli("alliance", "invite", hub.did, "--days", "30", "--name", name)
            hub.cli("alliance", "join", token["token"])
        except LabError as exc:
            # The hub stays NEW (no step can use it); an honest join that fails is a
            # join that never linked to anyone.
            if hostile:
                raise
            self.measures.links.append(
                {
                    "hub": name,
                    "why": "join",
                    "within": self.connect_within,
                    "linked_s": None,
                    "missing": [f"(joining failed: {exc})"],
                    "members": len(self.running()),
                    "via": inviter.name,
                }
            )
            raise
        hub.state = State.DOWN
        return hub, inviter

    def join(self, name: str, via: str = "any", bootstrap: str = "all") -> LabHub:
        """A new member invited by ``via`` (any member); measures its links to the others."""
        hub, inviter = self._admit(name, via, hostile=False)
        self.event("join", name, via=inviter.name, bootstrap=bootstrap)
        hub.bootstrap_only = inviter.name if bootstrap == "via" else ""
        self._start(hub, "join", via=inviter.name)
        return hub

    # ------------------------------------------------------------------ processes

    def _start(self, hub: LabHub, why: str, *, measure: bool = True, **detail: Any) -> None:
        only = self.hubs[hub.bootstrap_only] if hub.bootstrap_only else None
        try:
            took = hub.start(self._bootstrap(hub, only))
        except LabError as exc:
            self.failure(f"start ({why})", hub.name, str(exc))
            return
        hub.count("starts")
        self.event("start", hub.name, why=why, ready_s=round(took, 2))
        if measure:
            self._measure_links(hub, why, **detail)

    def start(self, name: str) -> None:
        """Start a stopped hub."""
        hub = self.pick(name, up=False)
        if hub.state is State.DOWN:
            self._start(hub, "start")

    def stop(self, name: str) -> None:
        """Stop a hub cleanly (SIGTERM)."""
        hub = self.pick(name)
        if hub.state in (State.RUNNING, State.PAUSED):
            code = hub.stop()
            hub.count("stops")
            clean = hub.exits[-1]["clean"]
            self.event("stop", hub.name, exit=code, clean=clean)
            if not clean:
                self.failure("stop", hub.name, "did not stop within 30 s of SIGTERM")

    def restart(
        self, name: str = "any", down: float = 0.0, backlog: int = 0, backlog_via: str = "bundle"
    ) -> None:
        """Stop a hub, keep it down a while (``backlog`` published elsewhere), start it."""
        hub = self.pick(name)
        self.stop(hub.name)
        began = time.monotonic()
        if backlog:
            self.publish(self.pick("any", exclude=(hub.name,)).name, backlog, backlog_via)
        _sleep_until(began + down)
        hub.count("restarts")
        self._start(hub, "restart")

    def kill(self, name: str = "any", during_sync: bool = False, backlog: int = 300) -> None:
        """``kill -9`` a hub (mid-sync if asked) and start it again."""
        hub = self.pick(name)
        entry: dict[str, Any] = {"hub": hub.name, "during_sync": during_sync}
        if during_sync:
            self.stop(hub.name)
            source = self.pick("any", exclude=(hub.name,))
            self.publish(source.name, backlog, "bundle")
            target = _count(source)
            self._start(hub, "catch-up", measure=False)
            entry.update(self._kill_mid_sync(hub, target))
        else:
            hub.kill()
        hub.count("kills")
        self.event("kill", hub.name, **{k: v for k, v in entry.items() if k != "hub"})
        self.measures.kills.append(entry)
        hub.count("restarts")
        self._start(hub, "after kill -9")

    def _kill_mid_sync(self, hub: LabHub, target: int | None) -> dict[str, Any]:
        """Kill ``hub`` the moment it has some but not all of ``target`` records."""
        start = _count(hub)
        deadline = time.monotonic() + self.converge_within
        held = start
        while time.monotonic() < deadline and hub.state is State.RUNNING:
            held = _count(hub)
            if held is not None and start is not None and held > start:
                break
            time.sleep(FAST_POLL)
        hub.kill()
        mid = (
            held is not None and target is not None and start is not None and start < held < target
        )
        return {
            "records_before": start,
            "records_at_kill": held,
            "records_target": target,
            "mid_sync": mid,
        }

    def pause(self, name: str = "any", seconds: float = 20.0, during: Quiet | None = None) -> None:
        """SIGSTOP a hub for ``seconds`` (running ``during`` meanwhile), then SIGCONT."""
        hub = self.pick(name)
        began = time.monotonic()
        hub.pause()
        hub.count("pauses")
        self.event("pause", hub.name, seconds=seconds)
        try:
            if during is not None:
                during()
            _sleep_until(began + seconds)
        finally:
            hub.resume()
        self.event("resume", hub.name, paused_s=round(time.monotonic() - began, 2))
        self._measure_links(hub, "resume")

    def partition(
        self, names: tuple[str, ...], seconds: float = 0.0, during: Quiet | None = None
    ) -> None:
        """Stop ``names`` (one side of the partition), run ``during``, start them again."""
        group = [self.pick(n) for n in names]
        began = time.monotonic()
        for hub in group:
            self.stop(hub.name)
        self.event("partition", None, hubs=[h.name for h in group])
        if during is not None:
            during()
        _sleep_until(began + seconds)
        for hub in group:
            hub.count("restarts")
            self._start(hub, "partition healed")
        self.event("heal", None, hubs=[h.name for h in group])

    def rotate(self, name: str = "any") -> None:
        """Stop a hub, ``craftnet id rotate``, start it; can it still reach every member?"""
        hub = self.pick(name)
        self.stop(hub.name)
        answer = hub.cli("id", "rotate")
        old, hub.did = hub.did, answer["new"]
        hub.dids.append(hub.did)
        hub.count("rotations")
        self.published[answer["record"]] = hub.name
        self.event("rotate", hub.name, old=old, new=hub.did)
        hub.count("restarts")
        self._start(hub, "rotation")
        entry: dict[str, Any] = {
            "hub": hub.name,
            "old": old,
            "new": hub.did,
            "links": self.measures.links[-1] if self.measures.links else None,
            "sync": {},
        }
        # One `craftnet sync` per member, side by side, as an operator checking would.
        syncs = {
            member.name: hub.spawn(
                "--json",
                "sync",
                member.address,
                "--timeout",
                str(self.sync_timeout),
                "--idle",
                "10",
            )
            for member in self.running()
            if member is not hub
        }
        for member, child in syncs.items():
            code = child.wait(self.sync_timeout + 60)
            if code is None:
                child.signal(signal.SIGKILL)
                code = child.wait(STOP_TIMEOUT)
            entry["sync"][member] = {"exit": code, "reason": "" if code == 0 else _why(child)}
        self.measures.rotations.append(entry)

    # ------------------------------------------------------------------ publishing

    def publish(self, name: str = "any", count: int = 1, via: str = "cli") -> list[str]:
        """Publish ``count`` techniques at a hub by CLI, HTTP API or one bundle."""
        hub = self.pick(name, up=via == "http")
        cids: list[str] = []
        if via == "bundle":
            cids = self._publish_bundle(hub, count)
        else:
            for _ in range(count):
                cid = self._publish_http(hub) if via == "http" else self._publish_cli(hub)
                if cid is not None:
                    cids.append(cid)
        with self._lock:
            for cid in cids:
                self.published[cid] = hub.name
            self.publishes[via] += len(cids)
        self.event("publish", hub.name, via=via, count=len(cids))
        return cids

    def _publish_cli(self, hub: LabHub) -> str | None:
        try:
            answer = hub.cli(*cli_publish_args(self._serial_no(), self.rng))
        except LabError as exc:
            self.failure("publish cli", hub.name, str(exc))
            return None
        return str(answer["cid"] if isinstance(answer, dict) else answer)

    def _publish_http(self, hub: LabHub) -> str | None:
        try:
            if hub.name not in self._http_artisans:
                hub.post("keys", {"handle": ARTISAN, "passphrase": ARTISAN_PASSPHRASE})
                self._http_artisans.add(hub.name)
            answer = hub.post(
                "records",
                {
                    "type": "technique",
                    "artisan": ARTISAN,
                    "passphrase": ARTISAN_PASSPHRASE,
                    "body": technique_body(self._serial_no(), self.rng),
                },
                timeout=60,
            )
        except LabError as exc:
            self.failure("publish http", hub.name, str(exc))
            return None
        return str(answer["cid"])

    def _publish_bundle(self, hub: LabHub, count: int) -> list[str]:
        path = self.root / f"bundle-{self._serial_no()}.car"
        cids = write_bundle(path, self.artisan, [self._serial_no() for _ in range(count)], self.rng)
        try:
            hub.cli("import", str(path))
        except LabError as exc:
            self.failure("publish bundle", hub.name, str(exc))
            return []
        finally:
            path.unlink(missing_ok=True)
        return cids

    @contextmanager
    def background(self, every: float) -> Iterator[threading.Event]:
        """Publish one record by CLI at a random hub every ``every`` seconds meanwhile.

        Yields an event: set, the publisher holds off (a convergence being measured).
        """
        quiet = threading.Event()
        done = threading.Event()

        def loop() -> None:
            while not done.wait(every):
                if quiet.is_set():
                    continue
                with self._lock:
                    if quiet.is_set() or not self.honest():
                        continue  # hushed, or no hub in the alliance yet
                    try:
                        self.publish(self.pick("any", up=False).name, 1, "cli")
                    except LabError as exc:
                        self.failure("background publish", None, str(exc))

        thread = threading.Thread(target=loop, name="lab-publisher", daemon=True)
        thread.start()
        self._quiet = quiet
        try:
            yield quiet
        finally:
            done.set()
            thread.join(CLI_WAIT)
            self._quiet = None

    @contextmanager
    def _hush(self) -> Iterator[None]:
        """Hold the background publisher off while a measurement runs."""
        quiet = self._quiet
        if quiet is None:
            yield
            return
        quiet.set()
        with self._lock:  # an in-flight publish finishes first
            pass
        try:
            yield
        finally:
            quiet.clear()

    # ------------------------------------------------------------------ the hostile member

    def flood(
        self,
        name: str,
        via: str = "any",
        rate: float = 10.0,
        seconds: float = 60.0,
        during: Quiet | None = None,
    ) -> None:
        """A member floods fake announcements while ``during`` runs; who hangs up on it?"""
        if self.python is None:
            raise LabError(f"{self.craftnet} is no Python console script: no flooder can run")
        hub, inviter = self._admit(name, via, hostile=True)
        argv = [
            str(self.python),
            "-I",
            "-u",
            str(FLOODER),
            "--home",
            str(hub.home),
            "--listen",
            hub.listen,
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
        ]
        for addr in self._bootstrap(hub):
            argv += ["--bootstrap", addr]
        child = Child(argv, hub.env(), hub.log, log_stdout=True)
        flooder = Flooder(hub, child, rate, seconds)
        self.flooders.append(flooder)
        if not child.wait_line(lambda: _line(child.stdout, "flooding ") is not None, 60):
            self.failure("flood", hub.name, f"the flooder did not start: {child.tail()}")
            child.signal(signal.SIGKILL)
            return
        peer = _line(child.stdout, "peer ")
        hub.peer_id = peer.split()[1] if peer else ""
        flooder.began = float(_line(child.stdout, "flooding ").rsplit(" ", 1)[1])  # type: ignore[union-attr]
        self.event(
            "flood", hub.name, via=inviter.name, rate=rate, seconds=seconds, peer=hub.peer_id
        )
        if during is not None:
            during()
        child.wait_line(lambda: _line(child.stdout, "flood over") is not None, seconds + 60)
        over = _line(child.stdout, "flood over")
        if over is not None:
            flooder.sent = int(over.split()[2])
            flooder.ended = float(over.rsplit(" ", 1)[1])
        child.signal(signal.SIGTERM)
        child.wait(STOP_TIMEOUT)
        self.event("flood over", hub.name, sent=flooder.sent)
        self.measures.floods.append(
            {
                "hub": hub.name,
                "peer": hub.peer_id,
                "rate": rate,
                "seconds": seconds,
                "sent": flooder.sent,
                "began": flooder.began,
                "ended": flooder.ended,
                "honest_up": [h.name for h in self.running()],
            }
        )

    # ------------------------------------------------------------------ measuring

    def _measure_links(self, hub: LabHub, why: str, **detail: Any) -> None:
        """How long until ``hub`` has a ready link to every running honest member."""
        with self._hush():
            took, missing = self._await_links(hub, self.connect_within)
        self.measures.links.append(
            {
                "hub": hub.name,
                "why": why,
                "within": self.connect_within,
                "linked_s": took,
                "missing": missing,
                "members": len(self.running()) - 1,
                **detail,
            }
        )

    def _await_links(self, hub: LabHub, within: float) -> tuple[float | None, list[str]]:
        began = time.monotonic()
        missing: list[str] = []
        while True:
            missing = self._missing_links(hub)
            if not missing:
                return round(time.monotonic() - began, 2), []
            if time.monotonic() - began > within:
                return None, missing
            time.sleep(POLL)

    def _missing_links(self, hub: LabHub) -> list[str]:
        try:
            peers = hub.get("peers").get("peers", [])
        except LabError:
            return ["(no answer)"]
        ready = {p.get("peer") for p in peers if isinstance(p, dict) and p.get("state") == "ready"}
        return sorted(m.name for m in self.running() if m is not hub and m.peer_id not in ready)

    def connect(self, within: float | None = None) -> None:
        """Check every running honest hub is linked to every other."""
        limit = self.connect_within if within is None else within
        for hub in self.running():
            with self._hush():
                took, missing = self._await_links(hub, limit)
            self.measures.links.append(
                {
                    "hub": hub.name,
                    "why": "check",
                    "within": limit,
                    "linked_s": took,
                    "missing": missing,
                    "members": len(self.running()) - 1,
                }
            )

    def holdings(self) -> dict[str, set[str] | None]:
        """The record-CID set of every running honest hub (None: it did not answer)."""
        return {hub.name: _cids(hub) for hub in self.running()}

    def converge(self, within: float | None = None, patience: float = 0.0) -> dict[str, Any]:
        """Wait until every running honest hub holds the same record set, and time it."""
        limit = self.converge_within if within is None else within
        with self._hush():
            since = self.last_event
            deadline = since + limit + patience
            per_hub: dict[str, float] = {}
            listed_at: dict[str, int | None] = {}
            while True:
                now = time.time()
                hubs = self.running()
                counts = {h.name: _count(h) for h in hubs}
                best = max((c for c in counts.values() if c is not None), default=0)
                for name, count in counts.items():
                    if count == best and name not in per_hub:
                        per_hub[name] = round(now - since, 2)
                    elif count != best:
                        per_hub.pop(name, None)
                if (
                    counts != listed_at
                    and len(set(counts.values())) == 1
                    and None not in counts.values()
                ):
                    listed_at = dict(counts)
                    sets = self.holdings()
                    union = set().union(*(s for s in sets.values() if s is not None))
                    expected = union | {
                        c
                        for c, h in self.published.items()
                        if h in sets and self.hubs[h].state is State.RUNNING
                    }
                    if all(s == expected for s in sets.values()):
                        entry = self._converged(
                            since, round(time.time() - since, 2), limit, sets, expected, per_hub
                        )
                        return entry
                if now > deadline:
                    sets = self.holdings()
                    union = set().union(*(s for s in sets.values() if s is not None))
                    return self._converged(since, None, limit, sets, union, per_hub)
                time.sleep(POLL * 2.5)

    def _converged(
        self,
        since: float,
        took: float | None,
        limit: float,
        sets: dict[str, set[str] | None],
        expected: set[str],
        per_hub: dict[str, float],
    ) -> dict[str, Any]:
        lost = sorted(
            c
            for c, h in self.published.items()
            if c not in expected and h in sets and self.hubs[h].state is State.RUNNING
        )
        entry = {
            "at": round(since - self.started, 2),
            "within": limit,
            "converged_s": took,
            "ok": took is not None and took <= limit,
            "expected": len(expected),
            "digest": digest(expected),
            "lost_publishes": lost[:20],
            "hubs": {
                name: {
                    "held": None if s is None else len(s),
                    "digest": None if s is None else digest(s),
                    "missing": None if s is None else len(expected - s),
                    "extra": None if s is None else len(s - expected),
                    "reached_s": per_hub.get(name) if took is not None else None,
                }
                for name, s in sets.items()
            },
        }
        self.measures.converges.append(entry)
        return entry

    def idle(self, seconds: float) -> None:
        """Let the alliance run on its own for a while."""
        _sleep_until(time.monotonic() + seconds)


def _sleep_until(deadline: float) -> None:
    """Sleep to a monotonic deadline: the length of an event, not a wait for a condition."""
    left = deadline - time.monotonic()
    if left > 0:
        time.sleep(left)


def _why(child: Child) -> str:
    """Why a ``craftnet --json sync`` failed: its error, or its JSON answer's reason."""
    error = child.error()
    if error is not None:
        return error
    try:
        answer = json.loads("\n".join(child.stdout))
    except ValueError:
        return child.tail(2)
    if not isinstance(answer, dict):
        return child.tail(2)
    return str(answer.get("reason") or f"stopped with {answer.get('still_wanted')} blocks wanted")


def _line(lines: list[str], prefix: str) -> str | None:
    for line in lines:
        if line.startswith(prefix):
            return line
    return None


def _count(hub: LabHub) -> int | None:
    """How many records the hub holds (None: it did not answer)."""
    try:
        return int(hub.get("status", timeout=5)["records"])
    except (LabError, KeyError, TypeError, ValueError):
        return None


def _cids(hub: LabHub) -> set[str] | None:
    """Every record CID the hub holds, read page by page from its API."""
    cids: set[str] = set()
    cursor: str | None = None
    try:
        while True:
            path = f"records?limit={PAGE}" + (f"&cursor={cursor}" if cursor else "")
            page = hub.get(path)
            cids.update(r["cid"] for r in page["records"])
            cursor = page.get("cursor")
            if not cursor:
                return cids
    except (LabError, KeyError, TypeError):
        return None
