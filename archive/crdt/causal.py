"""Causal delivery of operations, written once over a small :class:`Ledger` interface.

An operation is applied only when everything it depends on (its parents, its document's
genesis and every operation whose elements it refers to) is *done*: applied, or rejected
with a reason. Until then it is *pending*, and the ledger remembers who waits for what,
so the arrival of the last missing operation applies the waiting ones at once. An
operation whose clock is more than ``max_drift_ms`` ahead of the receiving hub's clock
is *deferred* until the hub's clock catches up (its descendants wait with it), so one
hub with a wrong clock cannot win every later edit or drag other clocks forward.

Whether an operation is applied or rejected depends only on the operation and on what
it depends on, never on the order of arrival, so every hub decides the same.

Two ledgers exist: :class:`Replica` here (everything in memory: for simulations and
tests), and the store-backed one in :mod:`craftnet.archive.crdt.documents`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from craftnet.archive.cid import Cid
from craftnet.archive.crdt.errors import BadOpSignature, InvalidOp
from craftnet.archive.crdt.ops import Op, parse_op
from craftnet.archive.crdt.state import DocState, Rejected
from craftnet.archive.errors import RecordError
from craftnet.archive.hlc import wall_ms
from craftnet.archive.records import Record

DEFAULT_MAX_DRIFT_MS: Final = 5 * 60 * 1000

State = Literal["applied", "rejected", "pending", "deferred"]
DONE: Final = frozenset({"applied", "rejected"})


@dataclass(frozen=True, slots=True)
class Status:
    """Where one operation stands in its document, and why."""

    state: State
    ts: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What receiving one operation did: applied, rejected, pending, deferred, duplicate,
    or (only from a non-strict :meth:`Documents.ingest`) invalid and not stored."""

    cid: Cid
    status: State | Literal["duplicate", "invalid"]
    reason: str = ""


class Ledger(Protocol):
    """What causal delivery needs to remember about one document's operations."""

    def status(self, cid: Cid) -> Status | None:
        """The status of ``cid`` in this document, or None if it was never received."""
        ...

    def set_status(self, op: Op, status: Status) -> None:
        """Record the status of ``op``."""
        ...

    def save_op(self, op: Op) -> None:
        """Keep ``op`` so that it can be applied later."""
        ...

    def load_op(self, cid: Cid) -> Op:
        """An operation saved earlier."""
        ...

    def wait(self, dep: Cid, waiter: Cid) -> None:
        """Remember that ``waiter`` waits for ``dep``."""
        ...

    def waiters(self, dep: Cid) -> list[Cid]:
        """Forget and return who waited for ``dep``."""
        ...

    def defer(self, op: Op) -> None:
        """Remember ``op`` until the clock reaches its time."""
        ...

    def state(self) -> DocState | None:
        """The document's state, None before its genesis is applied."""
        ...

    def start(self, state: DocState) -> None:
        """Begin the document's state with its genesis."""
        ...

    def done(self, op: Op, applied: bool) -> None:
        """Note that ``op`` is done: update heads and the applied log."""
        ...


def deliver(
    ledger: Ledger, op: Op, now_ms: int | None, max_drift_ms: int = DEFAULT_MAX_DRIFT_MS
) -> list[Outcome]:
    """Receive ``op`` and everything it unblocks; return what happened to each."""
    if ledger.status(op.cid) is not None:
        return [Outcome(op.cid, "duplicate", "already received")]
    ledger.save_op(op)
    return _run(ledger, [op], now_ms, max_drift_ms)


def redeliver(
    ledger: Ledger, ops: Iterable[Op], now_ms: int | None, max_drift_ms: int = DEFAULT_MAX_DRIFT_MS
) -> list[Outcome]:
    """Try again operations that were deferred (their time may have come)."""
    return _run(ledger, list(ops), now_ms, max_drift_ms)


def _run(ledger: Ledger, ops: list[Op], now_ms: int | None, max_drift_ms: int) -> list[Outcome]:
    outcomes: list[Outcome] = []
    queue = deque(ops)
    while queue:
        op = queue.popleft()
        status = ledger.status(op.cid)
        if status is not None and status.state in DONE:
            continue  # it waited for several operations that arrived together
        outcome = _try(ledger, op, now_ms, max_drift_ms)
        outcomes.append(outcome)
        if outcome.status in DONE:
            queue.extend(ledger.load_op(cid) for cid in sorted(ledger.waiters(op.cid)))
    return outcomes


def _try(ledger: Ledger, op: Op, now_ms: int | None, max_drift_ms: int) -> Outcome:
    if now_ms is not None and wall_ms(op.ts) > now_ms + max_drift_ms:
        ahead = (wall_ms(op.ts) - now_ms) // 1000
        reason = (
            f"its clock is {ahead} s ahead of this hub's (more than the "
            f"{max_drift_ms // 1000} s allowed); held until this hub's clock catches up"
        )
        ledger.set_status(op, Status("deferred", op.ts, reason))
        ledger.defer(op)
        return Outcome(op.cid, "deferred", reason)
    missing: list[Cid] = []
    for dep in op.deps:
        status = ledger.status(dep)
        if status is None or status.state not in DONE:
            missing.append(dep)
    if missing:
        for dep in missing:
            ledger.wait(dep, op.cid)
        names = ", ".join(str(cid) for cid in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        reason = f"waiting for {len(missing)} operation(s) not received yet: {names}{more}"
        ledger.set_status(op, Status("pending", op.ts, reason))
        return Outcome(op.cid, "pending", reason)
    reason = _judge(ledger, op)
    applied = not reason
    ledger.set_status(op, Status("applied" if applied else "rejected", op.ts, reason))
    ledger.done(op, applied)
    return Outcome(op.cid, "applied" if applied else "rejected", reason)


def _judge(ledger: Ledger, op: Op) -> str:
    """Apply ``op`` to the state; return why it was rejected, or "" if it applied."""
    if op.genesis is not None:
        try:
            ledger.start(DocState.from_genesis(op))
        except InvalidOp as exc:
            return str(exc)
        return ""
    state = ledger.state()
    if state is None:
        return "its document's genesis was rejected, so the document cannot be edited"
    refusal = state.refusal(op.author)
    if refusal is not None:
        return refusal
    for parent in op.parents:
        status = ledger.status(parent)
        assert status is not None  # parents are dependencies, so they are done
        if status.ts >= op.ts:
            return (
                f"its clock ({op.ts}) is not after its parent {parent}'s ({status.ts}); "
                "an edit must be later than what it saw"
            )
    try:
        state.apply(op)
    except Rejected as exc:
        return str(exc)
    return ""


def verified_op(record: Record, *, verify: bool = True) -> Op:
    """Parse a record as a document operation, checking its signature unless told not to."""
    op = parse_op(record)
    if verify:
        try:
            record.verify()
        except RecordError as exc:
            raise BadOpSignature(f"operation {record.cid} is not validly signed: {exc}") from exc
    return op


class Replica:
    """One hub's copy of one document, entirely in memory (for simulations and tests).

    Keeps every operation it received (a simulation needs them to answer sync requests);
    the state itself (:attr:`state`) holds no history.
    """

    def __init__(self, doc: Cid, *, max_drift_ms: int = DEFAULT_MAX_DRIFT_MS) -> None:
        self.doc = doc
        self.max_drift_ms = max_drift_ms
        self._status: dict[Cid, Status] = {}
        self._ops: dict[Cid, Op] = {}
        self._waiting: dict[Cid, set[Cid]] = {}
        self._deferred: dict[Cid, Op] = {}
        self._heads: set[Cid] = set()
        self._state: DocState | None = None
        self.log: list[Cid] = []  # done operations in the order this replica did them

    # -- the Ledger interface -----------------------------------------------------------

    def status(self, cid: Cid) -> Status | None:
        """The status of ``cid`` here, or None."""
        return self._status.get(cid)

    def set_status(self, op: Op, status: Status) -> None:
        """Record the status of ``op``."""
        self._status[op.cid] = status

    def save_op(self, op: Op) -> None:
        """Keep ``op``."""
        self._ops[op.cid] = op

    def load_op(self, cid: Cid) -> Op:
        """An operation received earlier."""
        return self._ops[cid]

    def wait(self, dep: Cid, waiter: Cid) -> None:
        """Remember that ``waiter`` waits for ``dep``."""
        self._waiting.setdefault(dep, set()).add(waiter)

    def waiters(self, dep: Cid) -> list[Cid]:
        """Forget and return who waited for ``dep``."""
        return sorted(self._waiting.pop(dep, ()))

    def defer(self, op: Op) -> None:
        """Hold ``op`` until its time comes."""
        self._deferred[op.cid] = op

    def state(self) -> DocState | None:
        """The merged state (None before the genesis arrives)."""
        return self._state

    def start(self, state: DocState) -> None:
        """Begin the state with the genesis."""
        self._state = state

    def done(self, op: Op, applied: bool) -> None:
        """Update heads and the log."""
        self._heads.difference_update(op.parents)
        self._heads.add(op.cid)
        self.log.append(op.cid)

    # -- using it -----------------------------------------------------------------------

    def receive(
        self, record: Record, now_ms: int | None = None, *, verify: bool = True
    ) -> list[Outcome]:
        """Receive one record of this document (raises :class:`InvalidOp` for bad ones)."""
        if record.cid in self._status:
            return [Outcome(record.cid, "duplicate", "already received")]
        op = verified_op(record, verify=verify)
        if op.doc != self.doc:
            raise InvalidOp(f"operation {op.cid} belongs to document {op.doc}, not {self.doc}")
        return deliver(self, op, now_ms, self.max_drift_ms)

    def release(self, now_ms: int) -> list[Outcome]:
        """Apply deferred operations whose time has come."""
        due = [
            op for op in self._deferred.values() if wall_ms(op.ts) <= now_ms + self.max_drift_ms
        ]
        for op in due:
            del self._deferred[op.cid]
        return redeliver(self, sorted(due, key=lambda op: op.key), now_ms, self.max_drift_ms)

    @property
    def heads(self) -> list[Cid]:
        """The operations no done operation follows: what a new edit links to."""
        return sorted(self._heads)

    def head_ts(self) -> int:
        """The greatest clock among the heads (a new edit must be later)."""
        return max((self._status[cid].ts for cid in self._heads), default=0)

    def records(self) -> list[Record]:
        """Every record received, in CID order (what a sync would offer)."""
        return [self._ops[cid].record for cid in sorted(self._ops)]

    def pending(self) -> dict[Cid, Status]:
        """Operations received but not done, with the reason."""
        return {c: s for c, s in self._status.items() if s.state not in DONE}

    def missing(self) -> list[Cid]:
        """Operations others wait for that this replica has not received."""
        return sorted(dep for dep in self._waiting if dep not in self._status)

    def encode_state(self) -> bytes:
        """The canonical bytes of the merged state (empty before the genesis)."""
        return b"" if self._state is None else self._state.encode()
