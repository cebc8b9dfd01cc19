"""The network model: connections between hubs and the bytes that travel on them.

A connection takes a round trip to open; its base one-way delay is drawn once from the
scenario's latency distribution around the mean of the two hubs' regions. Every
transmission queues behind the sender's earlier writes on its uplink
(``bandwidth_kbps``), takes the link's delay plus exponential jitter, and is resent
after ``retransmit_s`` for each loss (a stream is reliable); nothing overtakes what was
sent before it on the same connection, and what is in flight when the connection drops
is lost with it. Open partitions refuse connections across their cut.
"""

from __future__ import annotations

from math import log as _log
from typing import TYPE_CHECKING

from craftnet.protocol.events import (
    DataReceived,
    PeerConnected,
    PeerDisconnected,
    PeerId,
    Send,
)
from craftnet.simnet.hub import Conn, SimHub, sample_mean
from craftnet.simnet.part import Part

if TYPE_CHECKING:
    from craftnet.simnet.sim import Simulation


class Network(Part):
    """Connections, links and partitions of one run."""

    def __init__(self, sim: Simulation) -> None:
        super().__init__(sim)
        self.conns: dict[int, Conn] = {}
        self.epoch = 0
        self.partitions: list[bytearray] = []  # per open cut: the side of every hub
        jitter = sim.s.latency.jitter_ms
        self._jitter_rate = 1000.0 / jitter if jitter else 0.0
        self._random = sim.net_rng.random
        self._dialled_cache: dict[int, list[int]] | None = None

    def set_link_caps(self, hub: SimHub) -> None:
        """The hub's uplink and loss, from its region or the network's defaults."""
        net = self.s.network
        spec = self.s.regions.get(self.sim.region_names[hub.region])
        kbps = spec.bandwidth_kbps if spec and spec.bandwidth_kbps > 0 else net.bandwidth_kbps
        hub.bw = kbps * 1000 / 8 if kbps > 0 else 0.0
        hub.loss = spec.loss if spec and spec.loss >= 0 else net.loss

    # ------------------------------------------------------------ connections

    def _pair(self, a: int, b: int) -> int:
        return a * 1_000_003 + b if a < b else b * 1_000_003 + a

    def reachable(self, a: int, b: int) -> bool:
        """No open partition separates hubs ``a`` and ``b``."""
        return all(side[a] == side[b] for side in self.partitions)

    def _latency(self, a: SimHub, b: SimHub) -> float:
        lat = self.s.latency
        names = self.sim.region_names
        ra, rb = names[a.region], names[b.region]
        row = lat.matrix_ms.get(ra, {})
        mean = row.get(rb, lat.matrix_ms.get(rb, {}).get(ra, lat.mean_ms))
        return sample_mean(self.net_rng, lat.dist, mean, lat.sigma) / 1000.0

    def _can_connect(self, a: SimHub, b: SimHub) -> bool:
        # Bans are the engines' to enforce: a banned peer's connection is refused by
        # its engine (with a bye), as a real hub refuses it.
        return (
            a.online
            and b.online
            and self._pair(a.index, b.index) not in self.conns
            and self.reachable(a.index, b.index)
        )

    def connect(self, dialer: SimHub, listener: SimHub) -> bool:
        """Open a connection now; both engines hear of it one round trip later."""
        if not self._can_connect(dialer, listener):
            return False
        self.epoch += 1
        conn = Conn(dialer.index, listener.index, self.epoch, self._latency(dialer, listener))
        self.conns[self._pair(dialer.index, listener.index)] = conn
        dialer.conns[listener.index] = conn
        listener.conns[dialer.index] = conn
        self.stats.connects += 1
        self.kernel.after(2 * conn.latency, self._opened, (conn, dialer, listener))
        return True

    def _opened(self, arg: tuple[Conn, SimHub, SimHub]) -> None:
        conn, dialer, listener = arg
        if dialer.conns.get(listener.index) is not conn:
            return
        deliver = self.sim.executor.deliver
        deliver(listener, PeerConnected(dialer.peer, outbound=False))
        if dialer.conns.get(listener.index) is conn:
            deliver(dialer, PeerConnected(listener.peer, outbound=True))
        mesh = self.sim.mesh
        if mesh.admission and dialer.conns.get(listener.index) is conn:
            # Once the hellos are through, each side is admitted to the other's gossip.
            self.kernel.after(2 * conn.latency, mesh.admitted, arg)

    def close(self, a: SimHub, b: SimHub, tell_a: bool = True) -> None:
        """Drop the connection between ``a`` and ``b``; their engines hear of it."""
        conn = self.conns.pop(self._pair(a.index, b.index), None)
        if conn is None:
            return
        del a.conns[b.index]
        del b.conns[a.index]
        a.hellos.discard(b.index)
        b.hellos.discard(a.index)
        self.stats.disconnects += 1
        deliver = self.sim.executor.deliver
        if tell_a:
            deliver(a, PeerDisconnected(b.peer))
        deliver(b, PeerDisconnected(a.peer))

    def connect_all(self, _: object) -> None:
        """Every hub dials its topology links."""
        for hub in self.hubs:
            for other in hub.out:
                self.connect(hub, self.hubs[other])

    def reconnect(self, hub: SimHub) -> None:
        """A hub came back (or a cut healed): restore its topology links that can be."""
        for other in hub.out:
            self.connect(hub, self.hubs[other])
        for other in self.dialled_by.get(hub.index, ()):
            self.connect(self.hubs[other], hub)

    @property
    def dialled_by(self) -> dict[int, list[int]]:
        """The hubs that dial each hub (its topology links in)."""
        cached = self._dialled_cache
        if cached is None:
            cached = {}
            for hub in self.hubs:
                for other in hub.out:
                    cached.setdefault(other, []).append(hub.index)
            self._dialled_cache = cached
        return cached

    def topology_changed(self) -> None:
        """Who dials whom changed (peer sampling): forget the reverse index."""
        self._dialled_cache = None

    # ------------------------------------------------------------------ links

    def transmit(self, src: SimHub, conn: Conn, size: int) -> float:
        """When ``size`` bytes sent now by ``src`` on ``conn`` arrive at the other end."""
        # Runs for every copy of every message: locals, and the jitter drawn as
        # random.expovariate draws it (the same float from the same state), without the call.
        now = self.kernel.now
        done = src.uplink_free
        if done < now:
            done = now
        if src.bw:
            done += size / src.bw
        src.uplink_free = done
        arrive = done + conn.latency
        rate = self._jitter_rate
        if rate:
            arrive += -_log(1.0 - self._random()) / rate
        if src.loss:
            while self._random() < src.loss:
                self.stats.retransmits += 1
                arrive += self.s.network.retransmit_s
        # A stream delivers in order: nothing overtakes what was sent before it.
        if conn.a == src.index:
            if arrive < conn.last_ab:
                arrive = conn.last_ab
            conn.last_ab = arrive
        else:
            if arrive < conn.last_ba:
                arrive = conn.last_ba
            conn.last_ba = arrive
        src.bytes_out += size
        src.msgs_out += 1
        return arrive

    def send(self, hub: SimHub, cmd: Send) -> None:
        """Carry out a ``Send``: the bytes travel the connection's stream."""
        other = self.sim.by_peer.get(cmd.peer)
        if other is None:
            return
        conn = hub.conns.get(other.index)
        if conn is None:
            return
        self.stats.sends += 1
        self.stats.send_bytes += len(cmd.data)
        at = self.transmit(hub, conn, len(cmd.data))
        self.kernel.at(at, self._arrive, (conn, other, hub.peer, cmd.data))

    def _arrive(self, arg: tuple[Conn, SimHub, PeerId, bytes]) -> None:
        conn, dst, src, data = arg
        if dst.conns.get(conn.a if conn.b == dst.index else conn.b) is not conn:
            return  # the connection went down while the bytes travelled
        dst.bytes_in += len(data)
        self.sim.executor.deliver(dst, DataReceived(src, data))
