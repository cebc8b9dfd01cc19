"""The command interpreter: hand events to a hub's engine and carry out its commands.

This is simnet's counterpart of node/p2p's driver. Every command the engine can give
has one case in :meth:`Executor.execute` (an exhaustive ``match``: a new command type
fails the type check until simnet knows what to do with it). Timers become kernel
events; a timer set again replaces the older one; timers due more than
:data:`TIMER_BUCKET_S` ahead are parked by the second, because request and reconcile
deadlines are nearly always cancelled first and need never reach the heap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, assert_never

from craftnet.archive.cid import Cid
from craftnet.protocol.events import (
    Ban,
    BlocksStored,
    CancelTimer,
    Command,
    ConnectionClosed,
    Dial,
    DialFailed,
    Disconnect,
    Event,
    GossipVerdict,
    PeerId,
    PeerSynced,
    Publish,
    ReconcileFinished,
    Send,
    SetTimer,
    StoreBlocks,
    TimerFired,
    TimerId,
    Validation,
)
from craftnet.simnet.adversaries import BLACK_HOLES, black_hole
from craftnet.simnet.hub import HONEST, SimHub

if TYPE_CHECKING:
    from craftnet.simnet.sim import Simulation

TIMER_BUCKET_S: Final = 2.0  # timers due later than this are parked by the second first


class Executor:
    """Runs the engines: events in, commands carried out."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.kernel = sim.kernel
        self.stats = sim.stats
        # The verdict of the gossip message being delivered (the mesh relays on ACCEPT).
        self.verdict: Validation | None = None
        self.disconnect_reasons: dict[str, int] = {}
        self._tokens = 0
        self._parked: dict[int, list[tuple[float, SimHub, TimerId, int]]] = {}

    def deliver(self, hub: SimHub, event: Event) -> None:
        """Hand one event to a hub's engine and execute what it asks."""
        if hub.paused:
            hub.backlog.append((self._deliver_late, (hub, event)))
            return
        self.stats.engine_events += 1
        commands = hub.engine.handle(event, self.kernel.now)
        if hub.kind != HONEST and hub.kind in BLACK_HOLES:
            commands = black_hole(hub, commands, self.sim.by_peer)
        self.execute(hub, commands)

    def _deliver_late(self, arg: tuple[SimHub, Event]) -> None:
        self.deliver(*arg)

    def execute(self, hub: SimHub, commands: list[Command]) -> None:
        """Do what an engine asked, as node/ does with libp2p and the store."""
        sim = self.sim
        for cmd in commands:
            # Most frequent first; no positional captures (see SyncEngine.handle).
            match cmd:
                case GossipVerdict():
                    self.verdict = cmd.validation
                case StoreBlocks():
                    self.store(hub, cmd)
                case SetTimer():
                    self._set_timer(hub, cmd)
                case CancelTimer():
                    hub.timers.pop(cmd.timer, None)
                case Send():
                    sim.network.send(hub, cmd)
                case Publish():
                    self.stats.publishes += 1
                    sim.mesh.publish(hub, cmd.data)
                case Disconnect():
                    other = sim.by_peer.get(cmd.peer)
                    kind = cmd.reason.split(" (")[0].split(":")[0]
                    self.disconnect_reasons[kind] = self.disconnect_reasons.get(kind, 0) + 1
                    if other is not None:
                        sim.network.close(hub, other, tell_a=False)
                case ConnectionClosed():
                    if cmd.punished:
                        sim.metrics.punished(hub, cmd.peer, self.kernel.now)
                case Ban():
                    hub.bans[cmd.peer] = cmd.until
                    self.stats.bans += 1
                    sim.metrics.banned(hub, cmd.peer, self.kernel.now)
                case Dial():
                    other = sim.by_peer.get(cmd.peer)
                    if other is None or not sim.network.connect(hub, other):
                        self.stats.dials_failed += 1
                        self.kernel.after(0.0, self._dial_failed, (hub, cmd.peer))
                case ReconcileFinished():
                    self.stats.reconciles += 1
                    self.stats.reconcile_bytes += cmd.bytes_sent
                case PeerSynced():
                    pass  # a simulated hub keeps no delta-bundle knowledge of its peers
                case _:
                    assert_never(cmd)

    def _dial_failed(self, arg: tuple[SimHub, PeerId]) -> None:
        hub, peer = arg
        self.deliver(hub, DialFailed(peer, "unreachable"))

    # ---------------------------------------------------------------- timers

    def _set_timer(self, hub: SimHub, cmd: SetTimer) -> None:
        # A timer set again replaces the earlier one: only the newest token fires.
        self._tokens += 1
        token = self._tokens
        hub.timers[cmd.timer] = token
        at = cmd.at
        if at - self.kernel.now < TIMER_BUCKET_S:
            self.kernel.at(at, self._fire, (hub, cmd.timer, token))
            return
        # Far timers (request and reconcile deadlines) are nearly always cancelled or
        # replaced first: park them by the second and put only the live ones on the heap.
        second = int(at)
        parked = self._parked.get(second)
        if parked is None:
            parked = self._parked[second] = []
            self.kernel.at(float(second), self._unpark, second)
        parked.append((at, hub, cmd.timer, token))

    def _unpark(self, second: int) -> None:
        for at, hub, timer, token in self._parked.pop(second):
            if hub.timers.get(timer) == token:
                self.kernel.at(at, self._fire, (hub, timer, token))

    def _fire(self, arg: tuple[SimHub, TimerId, int]) -> None:
        hub, timer, token = arg
        if hub.timers.get(timer) != token:
            return
        del hub.timers[timer]
        self.deliver(hub, TimerFired(timer))

    # ----------------------------------------------------------------- store

    def store(self, hub: SimHub, cmd: StoreBlocks) -> None:
        """Carry out a ``StoreBlocks``: write, count, and tell the engine it is done."""
        store = hub.store
        blocks = cmd.blocks
        has = store.has
        new: tuple[tuple[int, Cid], ...]
        if len(blocks) == 1:
            # A block pushed inside an announcement: one per delivered record per hub.
            block = blocks[0]
            cid, ts = block.cid, block.ts
            new = ((ts, cid),) if ts is not None and not has(cid) else ()
            store.put_one(cid, block.data, ts)
            cids: tuple[Cid, ...] = (cid,)
        else:
            new = tuple((b.ts, b.cid) for b in blocks if b.ts is not None and not has(b.cid))
            store.put([(b.cid, b.data, b.ts) for b in blocks])
            cids = tuple(b.cid for b in blocks)
        now = self.kernel.now
        if new:
            if hub.members is not None:
                self.sim.membership.learn(hub, [b for b in blocks if b.ts is not None])
            self.stats.records_stored += len(new)
            stored = self.sim.metrics.stored
            for _, cid in new:
                stored(hub, cid, now)
        # The write is done (as the node's writer reports it): the engine hears of it,
        # and announcements waiting for these records are relayed. This runs once per
        # delivered record per hub: deliver() inlined for an honest hub (never paused
        # here: a paused hub handles nothing).
        if hub.kind != HONEST:
            self.deliver(hub, BlocksStored(cids, new))
        else:
            self.stats.engine_events += 1
            commands = hub.engine.handle(BlocksStored(cids, new), now)
            if commands:  # mostly none
                self.execute(hub, commands)
        if hub.pending:
            mesh = self.sim.mesh
            for _, cid in new:
                waiting = hub.pending.pop(cid, None)
                if waiting is not None:
                    mid, hops = waiting
                    mesh.forward(hub, mid, mesh.data[mid], hops)
