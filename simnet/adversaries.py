"""Adversaries: real engines, members of the alliance, whose behaviour simnet bends.

* ``invalid`` publishes records whose signature is forged and serves them;
* ``spam`` floods signed announcements of blocks nobody has, and a garbage frame on
  every sync stream;
* ``fake`` announces records it does not hold (and says so when asked); ``fake_silent``
  the same, never answering;
* ``drop`` completes the handshake and then sends nothing (``eclipse``: the same, with
  every adversary linked to the same honest hubs).

The honest engines judge them with the policy real hubs run; nothing here decides for
an honest hub.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from craftnet.archive.cid import DAG_CBOR, RAW, Cid
from craftnet.archive.records import Record
from craftnet.protocol.events import (
    CancelTimer,
    Command,
    Dial,
    Disconnect,
    GossipReceived,
    PeerId,
    RecordsAdded,
    Send,
    SetTimer,
)
from craftnet.protocol.framing import encode_frame
from craftnet.protocol.messages import Announce
from craftnet.simnet.hub import Conn, SimHub
from craftnet.simnet.workload import make_record

if TYPE_CHECKING:
    from craftnet.simnet.scenario import AdversarySpec
    from craftnet.simnet.sim import Simulation

BLACK_HOLES: Final = ("drop", "eclipse", "fake_silent")  # send nothing after the hello
ACTIVE: Final = ("spam", "invalid", "fake", "fake_silent")  # act on a clock of their own


def black_hole(
    hub: SimHub, commands: list[Command], by_peer: dict[PeerId, SimHub]
) -> list[Command]:
    """Drop-everything adversaries: the hello goes out, nothing else ever does."""
    kept: list[Command] = []
    for cmd in commands:
        if isinstance(cmd, Send):
            other = by_peer.get(cmd.peer)
            if other is None or other.index in hub.hellos:
                continue
            hub.hellos.add(other.index)
            kept.append(cmd)
        elif isinstance(cmd, SetTimer | CancelTimer | Disconnect | Dial):
            kept.append(cmd)
    return kept


def forge(record: Record) -> bytes:
    """The record's block with one bit of its signature flipped."""
    at = record.block.index(record.sig)
    return record.block[:at] + bytes([record.sig[0] ^ 1]) + record.block[at + 1 :]


class Adversaries:
    """Schedules and carries out the misbehaviour of a run's adversaries."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.kernel = sim.kernel

    def schedule(self) -> None:
        """Start every active adversary's clock at its ``start_s``."""
        sim = self.sim
        for spec in sim.s.adversaries:
            if spec.kind in ACTIVE:
                for hub in sim.hubs[sim.s.hubs :]:
                    if hub.kind == spec.kind:
                        self.kernel.at(spec.start_s, self._tick, (hub, spec))

    def _tick(self, arg: tuple[SimHub, AdversarySpec]) -> None:
        hub, spec = arg
        sim = self.sim
        now = self.kernel.now
        if now > sim.s.max_time_s:
            return
        if spec.kind in ("spam", "fake", "fake_silent"):
            # Validly signed announcements of blocks nobody has, straight to the
            # neighbours (GossipSub's own scoring, not simulated, would stop them on the
            # mesh); spam adds a garbage frame on every sync stream. A fake hub answers
            # the wants they bring as its engine does (it has nothing); a silent one
            # never answers.
            fake = tuple(Cid.of(sim.net_rng.randbytes(16), RAW) for _ in range(4))
            data = encode_frame(Announce.create(hub.key, 0, fake))
            network = sim.network
            for i, conn in list(hub.conns.items()):
                other = sim.hubs[i]
                at = network.transmit(hub, conn, len(data))
                self.kernel.at(at, self._spam_arrive, (conn, other, hub.peer, data))
                if spec.kind == "spam":
                    network.send(hub, Send(other.peer, b"\x04\xff\xff\xff\xff"))
        elif spec.kind == "invalid":
            record = make_record(hub.key, 10**6 + int(now * 1000), now, "forged", (), "technique")
            block = forge(record)
            cid = Cid.of(block, DAG_CBOR)
            hub.store.put([(cid, block, record.ts)])
            sim.executor.deliver(hub, RecordsAdded(((record.ts, cid),)))
        self.kernel.after(1.0 / spec.rate_per_s, self._tick, arg)

    def _spam_arrive(self, arg: tuple[Conn, SimHub, PeerId, bytes]) -> None:
        conn, dst, src, data = arg
        if dst.conns.get(conn.a if conn.b == dst.index else conn.b) is not conn:
            return
        dst.bytes_in += len(data)
        self.sim.executor.deliver(dst, GossipReceived(src, data))
