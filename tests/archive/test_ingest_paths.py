"""An import checks its blocks on the worker processes or in its own process, alike.

``ingest_records`` hands each batch to :func:`craftnet.archive.record_check.check_blocks`,
on the signature worker processes when they are used, else in the importing process:
for the same input both paths must give the same report, the same errors in strict
mode and the same store, whatever the blocks hold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from craftnet.archive import codec
from craftnet.archive.cid import DAG_CBOR, Cid
from craftnet.archive.errors import CodecError, RecordError, SchemaError
from craftnet.archive.hlc import pack
from craftnet.archive.index import BlockInput, IngestReport, ingest_records
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.record_check import check_blocks, refusal
from craftnet.archive.records import MAX_RECORD_SIZE, Record
from craftnet.archive.schemas import build
from craftnet.archive.store import DATABASES, Store
from craftnet.identity import batch
from craftnet.identity.keys import PrivateKey

POTTER = PrivateKey.from_seed(b"rustic-futurism-hub-potter-00001")
WEAVER = PrivateKey.from_seed(b"intergenerational-making-coop-02")
OLD = PrivateKey.from_seed(b"living-heritage-program-elder-01")
NEW = PrivateKey.from_seed(b"living-heritage-program-elder-02")
T0 = pack(2_000_000_000_000)
PHOTO = Cid.of(b"kiln-photo.jpg")


def technique(key: PrivateKey, n: int) -> Record:
    built = build(
        "technique",
        title=f"Raku glaze firing {n}",
        steps=[{"text": "Pull the pot red hot", "media": [PHOTO]}],
        licence="CC-BY-SA-4.0",
    )
    return Record.create(key, "technique", built.body, built.links, ts=T0 + n)


def _good() -> list[Record]:
    """Good records of every kind the write treats apart."""
    records = [technique(POTTER if n % 2 else WEAVER, n) for n in range(40)]
    records.append(Record.create(OLD, "key-succession", {"new": NEW.did}, ts=T0 + 100))
    records.append(
        Record.create(
            NEW, "revocation", {"did": OLD.did, "since": T0 + 50, "reason": "lost"}, ts=T0 + 101
        )
    )
    records.append(
        Record.create(
            POTTER,
            "attestation",
            {"subject": WEAVER.did, "kind": "skill", "skill": "weaving"},
            ts=T0 + 102,
        )
    )
    records.append(Record.create(POTTER, "workshop-booking", {"seats": 4}, ts=T0 + 103))
    return records


def _hostile(good: list[Record]) -> list[BlockInput]:
    """Blocks that every check refuses, one way or another."""
    first = good[0]
    unsigned = first.unsigned()
    forged = codec.encode({**unsigned, "body": {**first.body, "title": "Forged"}, "sig": first.sig})
    return [
        forged,  # bad signature
        codec.encode({**unsigned, "sig": first.sig[:63]}),  # short signature
        codec.encode({**unsigned, "sig": bytes(64)}),  # zero signature
        first.block[:-1],  # truncated
        first.block[:10],
        first.block + b"\x00",  # trailing byte
        (good[1].cid, first.block),  # under the wrong CID
        (Cid.of(first.block), first.block),  # a raw-codec CID
        Record.create(POTTER, "design", {"title": "Stool", "licence": "MIT"}, ts=T0, v=3).block,
        Record.create(POTTER, "design", {"title": "Stool"}, ts=T0).block,  # no licence
        Record.create(POTTER, "Not A Slug", {}, ts=T0).block,
        codec.encode({**unsigned, "v": "1", "sig": first.sig}),  # wrong types
        codec.encode({**unsigned, "body": [1], "sig": first.sig}),
        codec.encode({**unsigned, "author": 7, "sig": first.sig}),
        codec.encode({**unsigned, "sig": "not bytes"}),
        codec.encode([1, 2, 3]),
        b"\xa0",
        b"",
        b"\x00" * (MAX_RECORD_SIZE + 1),  # over the size limit
        b"\xd8\x2a\x58\x25\x00\x01\x55\x12\x20" + bytes(32),  # a sha2-256 link
    ]


def _use_workers(workers: int) -> None:
    """Import on ``workers`` worker processes (0: on this core), started and answering."""
    batch.set_workers(workers)
    if workers:
        batch.verify_many([(POTTER.public, POTTER.sign(b"warm"), b"warm")], pool=True)


@pytest.fixture
def two_workers() -> Iterator[None]:
    """Two worker processes, started and answering, used whatever the load."""
    try:
        _use_workers(2)
        yield
    finally:
        batch.set_workers(None)


class _Counted:
    """Counts the import batches handed to the worker processes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.parts = 0
        real: Callable[..., Any] = batch._submit_parts

        def counted(running: Any, fn: Any, items: Any, task_size: int) -> Any:
            self.parts += fn is check_blocks
            return real(running, fn, items, task_size)

        monkeypatch.setattr(batch, "_submit_parts", counted)


def _snapshot(store: Store) -> dict[str, list[tuple[bytes, bytes]]]:
    with store.read() as txn:
        return {db: list(txn.iterate(db)) for db in DATABASES if db != "meta"}


def _summary(report: IngestReport) -> tuple[Any, ...]:
    return (
        report.added,
        report.duplicates,
        [(r.index, r.cid, r.reason) for r in report.rejected],
        report.opaque,
    )


def _both(
    tmp_path: Path, name: str, blocks: list[BlockInput], **options: Any
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """Ingest ``blocks`` on one core and with two workers (started and answering first):
    the report and the stored entries of each."""
    results = []
    for workers in (0, 2):
        _use_workers(workers)
        with LmdbStore(tmp_path / f"{name}-{workers}") as store:
            report = ingest_records(store, blocks, **options)
            results.append((_summary(report), _snapshot(store)))
    return results[0], results[1]


def test_both_paths_refuse_and_store_alike(
    tmp_path: Path, two_workers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _good()
    blocks: list[BlockInput] = [record.block for record in good]
    blocks += _hostile(good)
    blocks += [good[3].block, (good[4].cid, good[4].block)]  # the same records again
    blocks = blocks * 5  # over POOL_MIN: the workers take it
    assert len(blocks) >= batch.POOL_MIN
    counted = _Counted(monkeypatch)
    here, there = _both(tmp_path, "mixed", blocks, batch_size=None)
    assert counted.parts == 1  # the second ingest went to the workers
    assert here == there
    (added, duplicates, rejected, opaque), stored = here
    assert len(added) == len(good) and opaque == 1
    assert len(rejected) == 5 * len(_hostile(good))
    assert len(duplicates) == len(blocks) - len(added) - len(rejected)
    assert len(stored["blocks"]) == len(good) and stored["keys"] and stored["att_subject"]


def test_batches_and_duplicates_across_them_agree(
    tmp_path: Path, two_workers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _good()
    blocks: list[BlockInput] = [r.block for r in good] * 12 + list(_hostile(good)) * 3
    counted = _Counted(monkeypatch)
    here, there = _both(tmp_path, "batches", blocks, batch_size=260)
    assert counted.parts == 2  # the third batch (68 blocks) is checked here
    assert here == there


@pytest.mark.parametrize("bad", range(20))
def test_strict_imports_raise_the_same_error(tmp_path: Path, two_workers: None, bad: int) -> None:
    good = _good()
    hostile = _hostile(good)
    assert len(hostile) == 20
    blocks: list[BlockInput] = [r.block for r in good] * 6
    blocks.insert(100, hostile[bad])
    raised = []
    for workers in (0, 2):
        _use_workers(workers)
        with LmdbStore(tmp_path / f"strict-{workers}") as store:
            with pytest.raises((RecordError, SchemaError, CodecError)) as caught:
                ingest_records(store, blocks, strict=True, batch_size=None)
            raised.append((type(caught.value), str(caught.value)))
            assert _snapshot(store)["blocks"] == []
    assert raised[0] == raised[1]


def test_refusals_keep_their_error_class() -> None:
    link = b"\xd8\x2a\x58\x25\x00\x01\x55\x12\x20" + bytes(32)
    (answer,) = check_blocks([(codec.encode({"x": 1}), None, True)])
    assert len(answer) == 3 and isinstance(refusal(answer), RecordError)
    with pytest.raises(CodecError):
        codec.decode(link)
    schema = Record.create(POTTER, "design", {"title": "Stool"}, ts=T0)
    (answer,) = check_blocks([(schema.block, None, True)])
    assert len(answer) == 3 and answer[2] and isinstance(refusal(answer), SchemaError)


_BASE = [r.block for r in _good()[:8]]


@st.composite
def _mangled(draw: st.DrawFn) -> list[BlockInput]:
    """Good blocks, some with bytes changed, cut or added, some under a named CID."""
    out: list[BlockInput] = []
    for _ in range(draw(st.integers(1, 12))):
        block = bytearray(draw(st.sampled_from(_BASE)))
        for _ in range(draw(st.integers(0, 3))):
            at = draw(st.integers(0, len(block) - 1))
            block[at] = draw(st.integers(0, 255))
        data = bytes(block[: len(block) - draw(st.integers(0, 3))])
        data += draw(st.binary(max_size=2))
        if draw(st.booleans()):
            out.append((Cid.of(draw(st.sampled_from([data, *_BASE])), DAG_CBOR), data))
        else:
            out.append(data)
    return out


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(_mangled())
def test_mangled_blocks_get_the_same_verdicts(
    tmp_path_factory: pytest.TempPathFactory, two_workers: None, mangled: list[BlockInput]
) -> None:
    # Repeated over POOL_MIN so that the workers take the batch.
    blocks = mangled * (batch.POOL_MIN // len(mangled) + 1)
    here, there = _both(tmp_path_factory.mktemp("mangled"), "m", blocks, batch_size=None)
    assert here == there
