"""The alliance's life during a run: founders and certificates at the start, hubs that
join later, keys rotated, and what each hub learns from the records it stores.

The model of membership (the records, each hub's :class:`SimMembers`) is
:mod:`craftnet.simnet.alliance`; this module schedules its events and tells the
engines when what their hub knows has changed, as the node's hub does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from craftnet.archive.alliance import certificate_of
from craftnet.archive.errors import ArchiveError
from craftnet.archive.records import Record
from craftnet.protocol.events import MembershipChanged, RecordsAdded, StoredBlock
from craftnet.simnet.alliance import SimAlliance, SimMembers
from craftnet.simnet.hub import SimHub, hlc, key_for

if TYPE_CHECKING:
    from craftnet.simnet.sim import Simulation


class Membership:
    """Builds a run's alliance and carries out its joins and rotations."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.kernel = sim.kernel
        self.alliance: SimAlliance | None = None

    def build(self) -> None:
        """Founders, a certificate for every hub that is a member from the start, and the
        joins and rotations the scenario schedules."""
        sim = self.sim
        spec = sim.s.alliance
        founders = [sim.hubs[i].key for i in range(spec.founders)]
        alliance = SimAlliance(founders, hlc(0.0) - 1)
        self.alliance = alliance
        joining = {j.hub for j in spec.joins}
        initial: list[Record] = []
        for hub in sim.hubs:
            if hub.index >= spec.founders and hub.index not in joining:
                initial.append(alliance.certify(founders[0], hub.key.did, hlc(0.0)))
        alliance.initial = [certificate_of(r) for r in initial]
        for hub in sim.hubs:
            if hub.index not in joining:
                # Members from the start hold the alliance's records, and sync them as
                # any records (a joiner fetches the certificates it lacks by reconcile).
                hub.store.put([(r.cid, r.block, r.ts) for r in [alliance.genesis_record, *initial]])
            hub.members = SimMembers(
                alliance,
                hub.key.did,
                self._hlc_now,
                proofs=spec.proofs,
                knows_members=hub.index not in joining,
            )
            hub.engine = sim.new_engine(hub)
        faults = sim.faults
        for join in spec.joins:
            hub = sim.hubs[join.hub]
            hub.off += 1  # not in the alliance yet: nowhere to connect
            self.kernel.at(join.at_s, self._join, (hub, sim.hubs[join.issuer]))
        for rotation in spec.rotations:
            hub = sim.hubs[rotation.hub]
            self.kernel.at(rotation.at_s, faults.go_offline, hub)
            self.kernel.at(rotation.at_s + rotation.down_s, self._rotate, hub)

    def _hlc_now(self) -> int:
        return hlc(self.kernel.now)

    def _join(self, arg: tuple[SimHub, SimHub]) -> None:
        """``issuer`` admits ``hub`` (publishes its certificate); ``hub`` joins with the
        token (genesis, certificate, the issuer's proof) and comes online."""
        hub, issuer = arg
        sim = self.sim
        assert self.alliance is not None
        cert = self.alliance.certify(issuer.key, hub.key.did, self._hlc_now())
        self._keep_records(issuer, [cert])
        sim.executor.deliver(issuer, RecordsAdded(((cert.ts, cert.cid),)))
        # The token: the genesis, its certificate and the issuer's proof.
        self._keep_records(hub, [self.alliance.genesis_record, *self.alliance.proofs[hub.key.did]])
        sim.metrics.event("join", self.kernel.now)
        sim.faults.go_online(hub)

    def _rotate(self, hub: SimHub) -> None:
        """``craftnet id rotate`` while the hub was stopped: a new key, a succession
        record signed by the old one, and the hub back with a fresh engine."""
        sim = self.sim
        assert self.alliance is not None and hub.members is not None
        sim.generation += 1
        new = key_for(hub.index, sim.generation)
        succession = self.alliance.rotate(hub.key, new, self._hlc_now())
        hub.key = new
        hub.members.did = new.did
        self._keep_records(hub, [succession])
        sim.fresh_engine(hub)
        sim.executor.deliver(hub, RecordsAdded(((succession.ts, succession.cid),)))
        sim.metrics.event("rotation", self.kernel.now)
        sim.faults.go_online(hub)

    def _keep_records(self, hub: SimHub, records: list[Record]) -> None:
        """Records a hub writes itself (not fetched): stored, and learned if membership."""
        hub.store.put([(r.cid, r.block, r.ts) for r in records])
        if hub.members is not None:
            for record in records:
                hub.members.learn(record)

    def learn(self, hub: SimHub, blocks: list[StoredBlock]) -> None:
        """A hub stored records: membership records change what it knows (the node's hub
        re-reads membership when they arrive and tells its engine)."""
        assert hub.members is not None
        changed = False
        for block in blocks:
            try:
                record = Record.from_block(block.data, block.cid)
            except ArchiveError:
                continue
            changed = hub.members.learn(record) or changed
        if changed:
            self.kernel.after(0.0, self._membership_changed, hub)

    def _membership_changed(self, hub: SimHub) -> None:
        self.sim.executor.deliver(hub, MembershipChanged())
