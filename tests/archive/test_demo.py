"""The demo archive: what a new demo hub shows, written once."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from craftnet.archive import demo, index
from craftnet.archive.crdt.documents import Documents
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.provenance import provenance
from craftnet.identity.keystore import Keystore
from craftnet.node.web.preview import parse_stl


def test_seed_writes_the_tour_once(tmp_path: Path) -> None:
    store = LmdbStore(tmp_path / "store")
    keystore = Keystore(tmp_path / "keys", scrypt_n=2**10)
    try:
        seeded = demo.seed(store, keystore)
        with store.read() as txn:
            counts = index.counts_by_type(txn)
            total = index.count_records(txn)
            desk = provenance(txn, seeded.records["desk"])
            fair = index.get_record(txn, seeded.records["fair"])
            treasure = index.get_record(txn, seeded.records["treasure"])
        assert counts["technique"] == 3 and counts["design"] == 4
        assert counts["attestation"] == 3 and counts["collection"] == 1
        # A three-level remix chain whose last step breaks the share-alike licence.
        assert len(desk.nodes) == 3 and len(desk.edges) == 2
        assert [w.code for w in desk.warnings if w.severity == "error"] == ["share-alike"]
        assert fair.body["title"] == "Maker's Fair 2035 showcase"
        assert treasure.body["kind"] == "living-heritage"
        assert treasure.body["subject"] == seeded.artisans["amaia"]
        # The co-edited technique: two hubs set the region at once.
        assert seeded.document is not None
        view = Documents(store).view(seeded.document)
        assert set(view["fields"]["region"].split(", ")) <= {"Minho", "Portugal", "Basque Country"}
        assert len(view["conflicts"]["region"]) == 1
        assert len(view["fields"]["steps"]) == 2
        # Seeding again adds nothing and finds the same artisans.
        again = demo.seed(store, keystore)
        assert again.artisans == seeded.artisans
        with store.read() as txn:
            assert index.count_records(txn) == total
        assert sorted(keystore.names()) == sorted(f"artisan.{h}" for h in demo.ARTISANS)
        assert all(info.encrypted for info in keystore.list())
    finally:
        store.close()


def test_generated_files_are_what_they_claim() -> None:
    image = demo.raku_png()
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", image[16:24])
    idat = image.index(b"IDAT")
    size = struct.unpack(">I", image[idat - 4 : idat])[0]
    raw = zlib.decompress(image[idat + 4 : idat + 4 + size])
    assert len(raw) == height * (1 + 3 * width)
    for model in (demo.lamp_base_stl(), demo.desk_lamp_stl(), demo.heddle_stl()):
        count = struct.unpack("<I", model[80:84])[0]
        assert len(model) == 84 + 50 * count
        assert len(parse_stl(model)) == count
    svg = demo.lamp_svg()
    assert svg.startswith(b"<svg") and svg.count(b"<path") == 24
    assert io.BytesIO(svg).read(4) == b"<svg"
