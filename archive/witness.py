"""Witnessed timestamps: hubs sign, in batches, that they held records by given times.

A record's own ``ts`` is only its author's word. A *witness batch* is a hub's signed
statement "I held each of these records by this time": a Merkle tree (BLAKE3) over
*leaves* ``at (8 bytes, big-endian HLC) + witnessed CID (36 bytes)``, sorted by CID, and
one ``witness`` record (see :mod:`craftnet.archive.schemas`) signed by the hub that
names the tree's root, its leaf count, the raw blocks holding the leaves (4,096 per
block) and the hub's membership certificates when it signed. One signature covers up
to 65,536 records. The leaves travel as the record's links, so batches go wherever
records go (gossip, bundles); an *inclusion proof* (the leaf, its index and the
sibling hashes up to the root, :class:`Proof`) shows one record's witness without the
other leaves, and travels as a ``witness-proof`` block in bundles of chosen records.

The tree is RFC 9162's (Certificate Transparency v2) with BLAKE3: a leaf hashes as
``H(0x00 || leaf)``, an inner node as ``H(0x01 || left || right)``, and a tree of ``n``
leaves splits at the largest power of two below ``n``. Proofs verify with RFC 9162's
algorithm (section 2.1.3.2).

What a valid proof binds, and what it does not, is in docs/witness.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

import blake3

from craftnet.archive import codec, index, schemas
from craftnet.archive.cid import CID_BYTES_LEN, DAG_CBOR, RAW, Cid
from craftnet.archive.errors import ArchiveError, CodecError, NotFound, SchemaError
from craftnet.archive.hlc import MAX_TS
from craftnet.archive.key_facts import key_history
from craftnet.archive.records import Record
from craftnet.archive.store import ReadTxn, Store, WriteTxn, prefix_end
from craftnet.identity.keys import PrivateKey
from craftnet.identity.membership import Membership

WITNESS_TYPE: Final = "witness"
PROOF_TYPE: Final = "witness-proof"
PROOF_VERSION: Final = 1
LEAF_SIZE: Final = 8 + CID_BYTES_LEN
LEAVES_PER_BLOCK: Final = 4096
MAX_LEAVES: Final = 65_536
MAX_PATH: Final = 17  # log2(MAX_LEAVES) + 1
DIGEST: Final = 32
INDEX_DB: Final = "witness"
BATCHES_DB: Final = "wit_batches"
MINE_DB: Final = "wit_mine"
_PROOF_KEYS: Final = frozenset({"type", "v", "batch", "witnessed", "at", "index", "path"})

# A Membership for an alliance (its genesis CID as text), or None if this hub lacks it.
MembershipOf = Callable[[str], Membership | None]


class WitnessError(ArchiveError):
    """A witness batch, leaf block or proof is malformed or does not verify."""


# ---------------------------------------------------------------------- the tree


def leaf_bytes(at: int, cid: Cid) -> bytes:
    """One leaf: ``at`` as 8 bytes big-endian, then the witnessed CID."""
    return at.to_bytes(8, "big") + cid.bytes


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 9162's leaf hash, with BLAKE3."""
    return blake3.blake3(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162's interior node hash, with BLAKE3."""
    return blake3.blake3(b"\x01" + left + right).digest()


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaves first; an unpaired last node moves up unchanged,
    which gives exactly RFC 9162's tree (split at the largest power of two)."""
    level = [leaf_hash(leaf) for leaf in leaves]
    levels = [level]
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        levels.append(nxt)
        level = nxt
    return levels


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The root of the tree over ``leaves`` (at least one)."""
    if not leaves:
        raise WitnessError("a witness tree has at least one leaf")
    return _levels(leaves)[-1][0]


def inclusion_path(levels: list[list[bytes]], index_: int) -> list[bytes]:
    """The sibling hashes from leaf ``index_`` up to the root."""
    path = []
    for level in levels[:-1]:
        sibling = index_ ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        index_ >>= 1
    return path


def verify_path(leaf: bytes, index_: int, count: int, path: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: does ``path`` lead from ``leaf`` at ``index_`` to ``root``?"""
    if not 0 <= index_ < count or len(path) > MAX_PATH:
        return False
    fn, sn = index_, count - 1
    result = leaf_hash(leaf)
    for sibling in path:
        if len(sibling) != DIGEST or sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and result == root


# ---------------------------------------------------------------------- batches


def check_batch_body(body: Mapping[str, Any]) -> None:
    """The rules of a ``witness`` body beyond its fields' kinds (schema rule)."""
    count, leaves = body["count"], body["leaves"]
    if not 1 <= count <= MAX_LEAVES:
        raise SchemaError(f"witness: 'count' must be 1..{MAX_LEAVES}")
    if len(leaves) != math.ceil(count / LEAVES_PER_BLOCK):
        raise SchemaError(f"witness: {count} leaves are held in "
                          f"{math.ceil(count / LEAVES_PER_BLOCK)} leaf block(s), not {len(leaves)}")
    if any(leaf.codec != RAW for leaf in leaves):
        raise SchemaError("witness: leaf blocks are raw blocks")
    if body["first"] > body["last"]:
        raise SchemaError("witness: 'first' is after 'last'")


def parse_leaves(data: bytes, expected: int) -> list[bytes]:
    """Cut a leaf block into its leaves; ``expected`` is how many it must hold."""
    if len(data) != expected * LEAF_SIZE:
        raise WitnessError(f"a leaf block holds {len(data)} bytes, not {expected} leaves")
    leaves = [data[i : i + LEAF_SIZE] for i in range(0, len(data), LEAF_SIZE)]
    for leaf in leaves:
        if leaf[8:12] != bytes([0x01, DAG_CBOR, 0x1E, 0x20]):
            raise WitnessError("a witness leaf names something that is not a record CID")
    return leaves


@dataclass(frozen=True, slots=True)
class Batch:
    """A witness batch made by :func:`make_batch`: its record and its leaf blocks."""

    record: Record
    leaf_blocks: tuple[tuple[Cid, bytes], ...]
    leaves: tuple[bytes, ...]


def make_batch(
    key: PrivateKey,
    witnessed: Iterable[tuple[Cid, int]],
    ts: int,
    membership: Sequence[Cid] = (),
) -> Batch:
    """Sign one batch over ``(record CID, at)`` pairs (at most :data:`MAX_LEAVES`)."""
    leaves = sorted({cid.bytes: leaf_bytes(at, cid) for cid, at in witnessed}.values(),
                    key=lambda leaf: leaf[8:])
    if not 1 <= len(leaves) <= MAX_LEAVES:
        raise WitnessError(f"a witness batch covers 1..{MAX_LEAVES} records")
    ats = [int.from_bytes(leaf[:8], "big") for leaf in leaves]
    if max(ats) > ts:
        raise WitnessError("a witness batch cannot be signed before the times it states")
    blocks = []
    for start in range(0, len(leaves), LEAVES_PER_BLOCK):
        data = b"".join(leaves[start : start + LEAVES_PER_BLOCK])
        blocks.append((Cid.of(data, RAW), data))
    body = {
        "root": merkle_root(leaves),
        "count": len(leaves),
        "leaves": [cid for cid, _ in blocks],
        "first": min(ats),
        "last": max(ats),
    }
    if membership:
        body["membership"] = list(membership)
    links = [cid for cid, _ in blocks] + list(membership)
    schemas.validate_body(WITNESS_TYPE, 1, body, links, key.did)
    record = Record.create(key, WITNESS_TYPE, body, links, ts=ts)
    return Batch(record, tuple(blocks), tuple(leaves))


def store_batch(txn: WriteTxn, batch: Batch, *, mine: bool) -> None:
    """Write a batch, its leaves and its index entries in one transaction."""
    for cid, data in batch.leaf_blocks:
        txn.put("blocks", cid.bytes, data)
    index.put_record(txn, batch.record)
    _index_leaves(txn, batch.record, batch.leaves)
    if mine:
        for leaf in batch.leaves:
            txn.put(MINE_DB, leaf[8:], batch.record.cid.bytes)


def _index_leaves(txn: WriteTxn, record: Record, leaves: Sequence[bytes]) -> None:
    for i, leaf in enumerate(leaves):
        value = codec.encode({"at": int.from_bytes(leaf[:8], "big"), "i": i})
        txn.put(INDEX_DB, leaf[8:] + record.cid.bytes, value)
    txn.put(BATCHES_DB, record.cid.bytes, codec.encode({"hub": record.author,
                                                         "count": len(leaves)}))


def read_batch_leaves(txn: ReadTxn, record: Record) -> list[bytes] | None:
    """All leaves of a batch, or None if a leaf block is not here."""
    count = record.body["count"]
    out: list[bytes] = []
    for n, cid in enumerate(record.body["leaves"]):
        data = txn.get("blocks", cid.bytes)
        if data is None:
            return None
        expected = min(LEAVES_PER_BLOCK, count - n * LEAVES_PER_BLOCK)
        out.extend(parse_leaves(data, expected))
    return out


# ---------------------------------------------------------------------- signing here


def unwitnessed(txn: ReadTxn, did: str, limit: int = MAX_LEAVES) -> list[Cid]:
    """Records this hub (``did``) holds and has not witnessed yet, at most ``limit``.

    Its own witness batches are left out: a hub vouching for itself adds nothing.
    """
    out: list[Cid] = []
    for key, value in txn.iterate("records"):
        if txn.has(MINE_DB, key):
            continue
        if b"witness" in value:  # cheap pre-check before decoding the summary
            summary = codec.decode(value)
            if summary.get("type") == WITNESS_TYPE and summary.get("author") == did:
                continue
        out.append(Cid.from_bytes(key))
        if len(out) >= limit:
            break
    return out


def witness_pending(
    store: Store, key: PrivateKey, now: int, membership: Sequence[Cid] = ()
) -> list[Record]:
    """Sign batches for every record this hub has not witnessed yet; return the batches.

    Every leaf says ``at = now``: the hub held the record when it looked. (Witnessing
    more often makes ``at`` closer to when a record arrived.)
    """
    made: list[Record] = []
    while True:
        with store.read() as txn:
            todo = unwitnessed(txn, key.did)
        if not todo:
            return made
        batch = make_batch(key, ((cid, now) for cid in todo), now, membership)
        store.transact(partial(store_batch, batch=batch, mine=True))
        made.append(batch.record)
        if len(todo) < MAX_LEAVES:
            return made


def own_certificates(txn: ReadTxn, did: str) -> list[Cid]:
    """What makes ``did`` a member, to link from its batches: the alliance genesis records
    that name it a founder, and the ``membership`` records naming it, newest first (at
    most 8 of each)."""
    out: list[Cid] = []
    for rtype, field_, wanted in (("alliance", "founders", did), ("membership", "member", did)):
        prefix = rtype.encode() + b"\x00"
        found = 0
        for key, _ in txn.iterate("rec_type", prefix, prefix_end(prefix), reverse=True):
            cid = Cid.from_bytes(key[len(prefix) + 8 :])
            value = index.get_record(txn, cid).body.get(field_)
            if value == wanted or (isinstance(value, list) and wanted in value):
                out.append(cid)
                found += 1
                if found == 8:
                    break
    return out


# ---------------------------------------------------------------------- indexing


def index_batches(store: Store) -> int:
    """Index the leaves of every batch this hub holds and has not indexed; returns how many.

    Batches arrive by gossip and bundles like any record; their leaves may come later
    (a batch without its leaves is indexed once they are here).
    """
    prefix = WITNESS_TYPE.encode() + b"\x00"
    done = 0
    with store.read() as txn:
        todo = [
            Cid.from_bytes(key[len(prefix) + 8 :])
            for key, _ in txn.iterate("rec_type", prefix, prefix_end(prefix))
            if not txn.has(BATCHES_DB, key[len(prefix) + 8 :])
        ]
    for cid in todo:

        def write(txn: WriteTxn, cid: Cid = cid) -> bool:
            record = index.get_record(txn, cid)
            try:
                leaves = read_batch_leaves(txn, record)
            except (WitnessError, KeyError, TypeError):
                return False  # a damaged batch proves nothing; verify reports it
            if leaves is None:
                return False
            _index_leaves(txn, record, leaves)
            return True

        done += store.transact(write)
    return done


# ---------------------------------------------------------------------- proofs


@dataclass(frozen=True, slots=True)
class Proof:
    """That batch ``batch`` holds the leaf ``(at, witnessed)`` at ``index``."""

    batch: Cid
    witnessed: Cid
    at: int
    index: int
    path: tuple[bytes, ...]

    def block(self) -> tuple[Cid, bytes]:
        """The proof as a ``witness-proof`` DAG-CBOR block, for bundles."""
        data = codec.encode({
            "type": PROOF_TYPE,
            "v": PROOF_VERSION,
            "batch": self.batch,
            "witnessed": self.witnessed,
            "at": self.at,
            "index": self.index,
            "path": list(self.path),
        })
        return Cid.of(data, DAG_CBOR), data


def is_proof_block(value: Any) -> bool:
    """Whether a decoded block claims to be a witness proof."""
    return isinstance(value, dict) and value.get("type") == PROOF_TYPE


def read_proof(data: bytes) -> Proof:
    """Parse a ``witness-proof`` block strictly; :class:`WitnessError` on anything wrong."""
    try:
        value = codec.decode(data, max_size=max(len(data), 1))
    except CodecError as exc:
        raise WitnessError(f"a witness proof is not canonical DAG-CBOR: {exc}") from None
    if not is_proof_block(value):
        raise WitnessError("not a witness proof")
    if type(value.get("v")) is not int or value["v"] != PROOF_VERSION:
        raise WitnessError(f"witness proof version {value.get('v')!r} is not supported; "
                           f"this hub reads version {PROOF_VERSION}")
    if set(value) != _PROOF_KEYS:
        raise WitnessError(f"a witness proof has fields {sorted(value)}")
    batch, witnessed, at, idx, path = (value[k] for k in ("batch", "witnessed", "at", "index",
                                                          "path"))
    if not isinstance(batch, Cid) or not isinstance(witnessed, Cid):
        raise WitnessError("a witness proof's batch and witnessed record are links")
    if type(at) is not int or not 0 <= at <= MAX_TS or type(idx) is not int or not (
        0 <= idx < MAX_LEAVES
    ):
        raise WitnessError("a witness proof's time and index are integers in range")
    if not isinstance(path, list) or len(path) > MAX_PATH or not all(
        type(step) is bytes and len(step) == DIGEST for step in path
    ):
        raise WitnessError(f"a witness proof's path is at most {MAX_PATH} 32-byte hashes")
    return Proof(batch, witnessed, at, idx, tuple(path))


def proofs_for(txn: ReadTxn, cid: Cid) -> list[Proof]:
    """Every witness proof this hub holds or can compute for record ``cid``."""
    out: list[Proof] = []
    for key, value in txn.iterate(INDEX_DB, cid.bytes, prefix_end(cid.bytes)):
        batch = Cid.from_bytes(key[CID_BYTES_LEN:])
        entry = codec.decode(value)
        path = entry.get("path")
        if path is None:
            try:
                record = index.get_record(txn, batch)
                leaves = read_batch_leaves(txn, record)
            except (NotFound, WitnessError, KeyError, TypeError):
                leaves = None
            if leaves is None:
                continue
            path = inclusion_path(_levels(leaves), entry["i"])
        out.append(Proof(batch, cid, entry["at"], entry["i"], tuple(path)))
    return out


def store_proof(txn: WriteTxn, proof: Proof) -> bool:
    """Keep an imported proof (when its batch is here and it verifies); returns whether kept."""
    try:
        record = index.get_record(txn, proof.batch)
    except NotFound:
        return False
    if record.type != WITNESS_TYPE or not _proof_matches(record, proof):
        return False
    key = proof.witnessed.bytes + proof.batch.bytes
    if not txn.has(INDEX_DB, key):
        value = {"at": proof.at, "i": proof.index, "path": list(proof.path)}
        txn.put(INDEX_DB, key, codec.encode(value))
    return True


def _proof_matches(record: Record, proof: Proof) -> bool:
    body = record.body
    return verify_path(
        leaf_bytes(proof.at, proof.witnessed), proof.index, body["count"], proof.path,
        body["root"],
    )


# ---------------------------------------------------------------------- verifying


@dataclass(frozen=True, slots=True)
class Witness:
    """One witness of a record, checked: who, when, and whether everything holds."""

    hub: str
    batch: Cid
    at: int
    organisation: str  # from the membership certificate, else the hub's did
    problems: tuple[str, ...] = ()
    member_of: str | None = None  # the alliance the witness belonged to at ``at``

    @property
    def ok(self) -> bool:
        """Whether signature, proof, times, key and membership all check out."""
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view."""
        return {
            "hub": self.hub,
            "batch": str(self.batch),
            "at": self.at,
            "organisation": self.organisation,
            "alliance": self.member_of,
            "ok": self.ok,
            "problems": list(self.problems),
        }


@dataclass(frozen=True, slots=True)
class Witnessed:
    """What the witnesses of one record say together."""

    cid: Cid
    witnesses: tuple[Witness, ...] = field(default=())

    @property
    def valid(self) -> list[Witness]:
        """The witnesses that check out."""
        return [w for w in self.witnesses if w.ok]

    @property
    def hubs(self) -> int:
        """Distinct hubs among the valid witnesses."""
        return len({w.hub for w in self.valid})

    @property
    def organisations(self) -> int:
        """Distinct organisations among the valid witnesses."""
        return len({w.organisation for w in self.valid})

    @property
    def earliest(self) -> int | None:
        """The earliest time a valid witness states."""
        return min((w.at for w in self.valid), default=None)

    def agreed_by(self, organisations: int) -> int | None:
        """The earliest time by which that many distinct organisations held the record."""
        firsts: dict[str, int] = {}
        for w in self.valid:
            firsts[w.organisation] = min(w.at, firsts.get(w.organisation, w.at))
        ordered = sorted(firsts.values())
        return ordered[organisations - 1] if len(ordered) >= organisations else None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view."""
        return {
            "cid": str(self.cid),
            "hubs": self.hubs,
            "organisations": self.organisations,
            "earliest": self.earliest,
            "agreed_by_two_organisations": self.agreed_by(2),
            "witnesses": [w.as_dict() for w in self.witnesses],
        }


def verify_witnesses(
    store: Store, cid: Cid, membership_of: MembershipOf | None = None
) -> Witnessed:
    """Check every witness of ``cid`` this hub knows of, offline (see docs/witness.md)."""
    index_batches(store)
    found: list[Witness] = []
    with store.read() as txn:
        history = key_history(txn)
        for proof in proofs_for(txn, cid):
            found.append(_check(txn, proof, history, membership_of))
    return Witnessed(cid, tuple(sorted(found, key=lambda w: (w.at, w.hub))))


def _check(txn: ReadTxn, proof: Proof, history: Any, membership_of: MembershipOf | None
           ) -> Witness:
    problems: list[str] = []
    try:
        record = index.get_record(txn, proof.batch)
        record.verify()
        schemas.validate_record(record)
    except ArchiveError as exc:
        return Witness("?", proof.batch, proof.at, "?", (f"the batch does not verify: {exc}",))
    hub = record.author
    body = record.body
    if record.type != WITNESS_TYPE:
        problems.append("the batch is not a witness record")
    elif not _proof_matches(record, proof):
        problems.append("the inclusion proof does not lead to the batch's signed root")
    if not body["first"] <= proof.at <= body["last"] or proof.at > record.ts:
        problems.append("the leaf's time is outside the batch's signed span")
    if not history.valid_at(hub, record.ts):
        problems.append("the witness's key was not valid when it signed the batch")
    organisation, alliance = hub, None
    for cert_cid in body.get("membership", []):
        try:
            cert = index.get_record(txn, cert_cid)
        except NotFound:
            continue
        if cert.type == "alliance" and hub in cert.body.get("founders", []):
            alliance_id = str(cert.cid)  # a founder: the genesis is its certificate
        elif cert.type == "membership" and cert.body.get("member") == hub:
            named = cert.body.get("organisation")
            if isinstance(named, str) and named.strip():
                organisation = named
            alliance_id = str(cert.body.get("alliance"))
        else:
            continue
        members = membership_of(alliance_id) if membership_of is not None else None
        if members is not None and members.is_member(hub, proof.at):
            alliance = alliance_id
    if body.get("membership") and membership_of is not None and alliance is None:
        problems.append("the witness was not a member of its alliance at that time "
                        "(as far as this hub's certificates show)")
    return Witness(hub, proof.batch, proof.at, organisation, tuple(problems), alliance)


def index_proof_blocks(store: Store, blocks: Iterable[bytes]) -> int:
    """Keep the witness proofs found in a bundle (after its records are in)."""
    proofs = []
    for data in blocks:
        try:
            proofs.append(read_proof(data))
        except WitnessError:
            continue  # a bad proof is simply not evidence

    def write(txn: WriteTxn) -> int:
        return sum(store_proof(txn, proof) for proof in proofs)

    return store.transact(write) if proofs else 0
