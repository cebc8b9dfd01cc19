"""Write the seed corpus under tests/fuzz/corpus/TARGET/ from real craftnet objects.

Run once (``python tests/fuzz/make_seeds.py``) and commit the files: records of every
publishable type, a CAR bundle with a design, its file and its ancestry, every kind of
protocol frame, did:keys and CIDs (good, foreign and cut short), and document
operations made through ``craftnet doc``. Keys and clocks are fixed, so the output is
the same on every run. Each seed is named by the BLAKE3 of its bytes, as libFuzzer
names the inputs it keeps.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tempfile
from pathlib import Path

import blake3
import cbor2
from click.testing import CliRunner

from craftnet.archive import codec, files, index
from craftnet.archive.bundle import export_car
from craftnet.archive.car import encode_varint
from craftnet.archive.cid import DAG_CBOR, Cid
from craftnet.archive.crdt.ops import GENESIS_TYPE, OP_TYPE
from craftnet.archive.hlc import HybridClock
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.memory_store import MemoryStore
from craftnet.archive.records import Record
from craftnet.cli.main import cli
from craftnet.identity.keys import PrivateKey
from craftnet.protocol.framing import encode_frame
from craftnet.protocol.messages import (
    RANGE_FINGERPRINT,
    RANGE_IDLIST,
    SUPPORTED_VERSIONS,
    Announce,
    Block,
    Bye,
    DontHave,
    End,
    Have,
    Hello,
    Recon,
    ReconRange,
    Want,
)

HERE = Path(__file__).resolve().parent
ARTISAN = PrivateKey.from_seed(b"rustic-futurism-hub-artisan-0001")
ALLIANCE = str(Cid.of(b"Global Micro-manufacturing Alliance", DAG_CBOR))


def clock() -> HybridClock:
    ms = iter(range(1_764_000_000_000, 1_764_000_000_000 + 10_000_000, 1000))
    return HybridClock(lambda: next(ms))


def archive() -> tuple[MemoryStore, list[Record], Cid]:
    store = MemoryStore()
    tick = clock()
    lamp = files.add_file(store, io.BytesIO(bytes(range(256)) * 40), name="lamp.stl").cid
    technique = index.publish(store, ARTISAN, "technique", {
        "title": "Steam-bending oak strips", "steps": [{"text": "Steam", "media": [lamp]}],
        "materials": ["oak"], "licence": "CC-BY-SA-4.0"}, [lamp], tick)
    parent = index.publish(store, ARTISAN, "design", {
        "title": "Rustic Futurism pendant lamp", "files": [lamp], "licence": "CC-BY-SA-4.0",
        "process": "laser-cutting"}, [lamp], tick)
    child = index.publish(store, ARTISAN, "design", {
        "title": "Neo-Vernacular table lamp", "derived_from": [parent.cid],
        "licence": "CC-BY-SA-4.0"}, [parent.cid], tick)
    attestation = index.publish(store, ARTISAN, "attestation", {
        "subject": PrivateKey.from_seed(bytes(32)).did, "kind": "living-heritage",
        "note": "Human Treasure of the Living Heritage Program"}, (), tick)
    collection = index.publish(store, ARTISAN, "collection", {
        "title": "Maker's Fair 2026", "items": [technique.cid, child.cid]},
        [technique.cid, child.cid], tick)
    return store, [technique, parent, child, attestation, collection], lamp


def record_seeds(records: list[Record]) -> list[bytes]:
    out = [b"\x00" + r.block for r in records]
    for n, r in enumerate(records):
        out.append(b"\x01" + bytes([n]) + codec.encode(dict(r.body)))
    return out


def car_seeds(store: MemoryStore, records: list[Record]) -> list[bytes]:
    out = []
    for roots in ([records[2].cid], [records[4].cid], None):
        stream = io.BytesIO()
        export_car(store, stream, roots)
        out.append(stream.getvalue())
    # An IPFS export: a sha2-256 root (refused for its hash).
    block = cbor2.dumps({"title": "lamp"})
    sha = bytes([0x01, 0x71, 0x12, 0x20]) + hashlib.sha256(block).digest()
    header = cbor2.dumps({"roots": [cbor2.CBORTag(42, b"\x00" + sha)], "version": 1})
    out.append(encode_varint(len(header)) + header + encode_varint(len(sha + block)) + sha + block)
    return out


def frame_seeds(records: list[Record]) -> list[bytes]:
    cids = tuple(r.cid for r in records)
    small = records[0].block
    messages = [
        Hello.create(ARTISAN, SUPPORTED_VERSIONS, ALLIANCE, "12D3KooWFuzzPeer", (small,)),
        Bye("no room: already 64 peers"),
        Announce.create(ARTISAN, 117_000_000_000_000_000, cids[:2], (), (small,)),
        Want(1, cids, False), Want(2, cids[:1], True), Have(3, cids), DontHave(4, cids[:2]),
        Block(5, records[0].cid, small), End(6),
        Recon(7, True, 0, bytes(16), (ReconRange(b"\x00" * 8, RANGE_IDLIST, bytes(40)),
                                      ReconRange(None, RANGE_FINGERPRINT, bytes(32))),
              (bytes(8) + bytes(32),), True),
    ]
    frames = [encode_frame(m) for m in messages]
    return [*frames, b"".join(frames)]


def identifier_seeds(records: list[Record], lamp: Cid) -> list[bytes]:
    did = ARTISAN.did.encode()
    return [
        did, did[:-1], did + b"x", b"did:key:z" + b"1" * 47, str(lamp).encode(),
        str(records[0].cid).encode(), lamp.bytes, records[0].cid.bytes,
        bytes([0x01, 0x71, 0x12, 0x20]) + bytes(32), bytes([0x12, 0x20]) + bytes(32),
        encode_varint(300), encode_varint(2**63 - 1), b"\x80\x00",
    ]


def document_seeds() -> list[bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "hub"
        runner = CliRunner()

        def run(*args: str) -> str:
            result = runner.invoke(cli, ["--home", str(home), *args], catch_exceptions=False)
            assert result.exit_code == 0, result.stderr
            return result.stdout

        run("init", "--no-passphrase")
        doc = run("doc", "new", "technique", "--title", "Raku glaze firing", "--add",
                  "tags=raku", "--insert-step", "Bisque-fire the pot.", "--set",
                  "description=A low-fire technique.").split()[-1]
        run("doc", "edit", doc, "--set", "title=Raku", "--edit-step", "1", "Bisque-fire it.",
            "--insert-step-at", "2", "Preheat the kiln.", "--remove", "tags=raku",
            "--set", "description=A low-fire Japanese technique.")
        store = LmdbStore(home / "store")
        out = []
        with store.read() as txn:
            for rtype in (GENESIS_TYPE, OP_TYPE):
                for summary in index.list_records(txn, type=rtype, limit=20).records:
                    record = Record.from_block(txn.get("blocks", summary.cid.bytes) or b"")
                    mode = b"\x01" if rtype == GENESIS_TYPE else b"\x00"
                    out.append(mode + codec.encode(dict(record.body)))
        store.close()
        return out


def write(target: str, seeds: list[bytes]) -> None:
    folder = HERE / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        (folder / blake3.blake3(seed).hexdigest()[:16]).write_bytes(seed)
    print(f"{target}: {len(seeds)} seeds", file=sys.stderr)


def main() -> None:
    os.environ.pop("CRAFTNET_PASSPHRASE", None)
    store, records, lamp = archive()
    write("record", record_seeds(records))
    write("car", car_seeds(store, records))
    write("frame", frame_seeds(records))
    write("identifiers", identifier_seeds(records, lamp))
    write("crdt_op", document_seeds())


if __name__ == "__main__":
    main()
