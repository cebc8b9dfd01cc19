"""The demo archive a new demo hub starts with (``craftnet serve --demo``).

Everything is made here, in code: small files (an SVG cutting pattern, binary STL
models, a PNG photo stand-in written with zlib), techniques, designs with a three-level
remix chain whose last step breaks the share-alike licence, attestations (a Living
Heritage "Human Treasure" potter), a Maker's Fair 2035 showcase collection, and a
co-edited technique where two hubs edited the same field at once (a CRDT conflict).

Demo artisans keep their keys in the hub keystore under ``artisan.<handle>``, encrypted
with :data:`DEMO_PASSPHRASE`: a published, well-known passphrase, for demos only.
"""

from __future__ import annotations

import io
import itertools
import math
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from craftnet.archive import index
from craftnet.archive.cid import Cid
from craftnet.archive.crdt.documents import Documents
from craftnet.archive.crdt.edit import ChangeBuilder
from craftnet.archive.crdt.ops import op_record
from craftnet.archive.hlc import HybridClock
from craftnet.archive.meta import has_meta, put_meta
from craftnet.archive.records import Record
from craftnet.archive.schemas import build
from craftnet.archive.store import Store
from craftnet.identity.keys import PrivateKey
from craftnet.identity.keystore import ARTISAN_PREFIX, Keystore

DEMO_PASSPHRASE: Final = "demo-passphrase"
SEEDED_KEY: Final = b"demo_seeded"
ARTISANS: Final = ("amaia", "kofi", "lin", "rosa", "alliance")


# -- small files made in code ------------------------------------------------------------


def png(width: int, height: int, pixel: Callable[[int, int], tuple[int, int, int]]) -> bytes:
    """A truecolour PNG, encoded with zlib (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(width)) for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def raku_png() -> bytes:
    """A glazed raku bowl on a kiln shelf, as a tiny picture."""

    def pixel(x: int, y: int) -> tuple[int, int, int]:
        cx, cy = x - 48, y - 40
        if cy > 18:
            return (90, 70, 55)  # kiln shelf
        inside = (cx * cx) / (40 * 40) + (cy * cy) / (26 * 26) <= 1 and cy > -6
        if inside:
            crackle = ((x * 7 + y * 13) % 17 == 0) or ((x * 3 - y * 5) % 23 == 0)
            return (30, 30, 30) if crackle else (40 + y, 120 + cx // 2, 130 + cy)
        return (235, 225, 205)

    return png(96, 72, pixel)


def lamp_svg() -> bytes:
    """A laser-cutting pattern for a lamp shade panel (a Neo-Vernacular lattice)."""
    holes = []
    for row in range(6):
        for col in range(4):
            x, y = 30 + col * 40 + (20 if row % 2 else 0), 30 + row * 36
            holes.append(
                f'<path d="M{x} {y - 12} L{x + 10} {y} L{x} {y + 12} L{x - 10} {y} Z" '
                'fill="none" stroke="#b3541e" stroke-width="2"/>'
            )
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 240" width="200" height="240">'
        '<rect x="4" y="4" width="192" height="232" rx="10" fill="#f7efe2" stroke="#333" '
        'stroke-width="2"/>' + "".join(holes) + "</svg>"
    ).encode()


def stl_solid(profile: list[tuple[float, float]], sides: int) -> bytes:
    """A binary STL of a solid of revolution: ``profile`` is (radius, height) from bottom up."""
    tris: list[tuple[tuple[float, float, float], ...]] = []

    def ring(r: float, z: float, i: int) -> tuple[float, float, float]:
        a = 2 * math.pi * i / sides
        return (r * math.cos(a), r * math.sin(a), z)

    for (r0, z0), (r1, z1) in itertools.pairwise(profile):
        for i in range(sides):
            a, b = ring(r0, z0, i), ring(r0, z0, i + 1)
            c, d = ring(r1, z1, i), ring(r1, z1, i + 1)
            tris += [(a, b, d), (a, d, c)]
    for r, z, up in ((profile[0][0], profile[0][1], False), (profile[-1][0], profile[-1][1], True)):
        centre = (0.0, 0.0, z)
        for i in range(sides):
            a, b = ring(r, z, i), ring(r, z, i + 1)
            tris.append((centre, a, b) if up else (centre, b, a))
    out = io.BytesIO()
    out.write(b"craftnet demo model".ljust(80, b" "))
    out.write(struct.pack("<I", len(tris)))
    for tri in tris:
        out.write(struct.pack("<3f", 0.0, 0.0, 0.0))
        for vertex in tri:
            out.write(struct.pack("<3f", *vertex))
        out.write(b"\x00\x00")
    return out.getvalue()


def lamp_base_stl() -> bytes:
    """A turned lamp base: wide foot, waist, collar."""
    return stl_solid([(40, 0), (42, 6), (30, 14), (18, 40), (22, 60), (14, 66)], 48)


def desk_lamp_stl() -> bytes:
    """A taller desk-lamp body derived from the base."""
    return stl_solid([(36, 0), (38, 5), (20, 20), (12, 90), (16, 110), (10, 116)], 40)


def heddle_stl() -> bytes:
    """A rigid heddle bar for a backstrap loom (an octagonal rod)."""
    return stl_solid([(6, 0), (6, 160)], 8)


# -- seeding -------------------------------------------------------------------------------


@dataclass
class DemoArchive:
    """What was seeded, by name, for tests and the tour."""

    artisans: dict[str, str] = field(default_factory=dict)  # handle -> did
    records: dict[str, Cid] = field(default_factory=dict)
    files: dict[str, Cid] = field(default_factory=dict)
    document: Cid | None = None


def is_seeded(store: Store) -> bool:
    """Whether the demo archive was already written to this store."""
    with store.read() as txn:
        return has_meta(txn, SEEDED_KEY)


def _artisan_keys(keystore: Keystore) -> dict[str, PrivateKey]:
    keys = {}
    for handle in ARTISANS:
        name = ARTISAN_PREFIX + handle
        if keystore.has(name):
            keys[handle] = keystore.load(name, DEMO_PASSPHRASE)
        else:
            keys[handle] = keystore.create(name, DEMO_PASSPHRASE)
    return keys


def seed(store: Store, keystore: Keystore) -> DemoArchive:
    """Write the demo archive (once: a second call returns what it finds and adds nothing)."""
    from craftnet.archive import files

    keys = _artisan_keys(keystore)
    demo = DemoArchive({h: k.did for h, k in keys.items()})
    if is_seeded(store):
        return demo
    clock = HybridClock()

    def add(name: str, data: bytes) -> Cid:
        cid: Cid = files.add_file(store, io.BytesIO(data), name=name).cid
        demo.files[name] = cid
        return cid

    def pub(label: str, who: str, rtype: str, **fields: Any) -> Record:
        built = build(rtype, **fields)
        record = index.publish(store, keys[who], rtype, built.body, built.links, clock)
        demo.records[label] = record.cid
        return record

    photo = add("raku-bowl.png", raku_png())
    pattern = add("lamp-shade-panel.svg", lamp_svg())
    base_stl = add("lamp-base.stl", lamp_base_stl())
    desk_stl = add("desk-lamp.stl", desk_lamp_stl())
    heddle = add("heddle.stl", heddle_stl())

    pub(
        "raku",
        "amaia",
        "technique",
        title="Raku firing in a shared community kiln",
        summary="Low-fire raku as the Intergenerational Making Cooperatives teach it: pull the "
        "glowing pots at 950 °C and smoke them in sawdust for the crackle glaze.",
        tradition="Raku ceramics, Rustic Futurism revival",
        region="Basque Country",
        language="en",
        materials=["stoneware clay", "raku glaze", "sawdust"],
        tools=["gas kiln", "tongs", "metal bin"],
        steps=[
            {"text": "Bisque-fire the pots and glaze them thickly.", "media": []},
            {
                "text": "Fire to 950 °C; lift each glowing pot out with long tongs.",
                "media": [photo],
            },
            {"text": "Smother in sawdust for fifteen minutes, then quench in water.", "media": []},
        ],
        licence="CC-BY-SA-4.0",
    )
    pub(
        "backstrap",
        "kofi",
        "technique",
        title="Backstrap loom weaving with a 3D-printed heddle",
        summary="Kente-style strip weaving on a backstrap loom whose rigid heddle is printed at "
        "the community fabrication hub.",
        tradition="Kente strip weaving",
        region="Ashanti, Ghana",
        language="en",
        materials=["cotton yarn", "PLA"],
        tools=["backstrap loom", "3D printer"],
        steps=[
            "Print the heddle bar and sand its slots smooth.",
            "Warp the loom and thread alternate warps through the heddle.",
            "Weave the strip, beating each pick firmly.",
        ],
        licence="CC-BY-4.0",
    )
    pub(
        "joinery",
        "lin",
        "technique",
        title="Técnica de encaixe cortada a laser para bancos neovernaculares",
        summary="Encaixes sem cola, cortados a laser em contraplacado, inspirados na "
        "carpintaria tradicional: Neo-Vernacular Design para oficinas comunitárias.",
        tradition="Neo-Vernacular Design",
        region="Porto",
        language="pt",
        materials=["plywood"],
        tools=["laser cutter"],
        steps=["Corte as peças.", "Encaixe sem cola e lixe as arestas."],
        licence="CC-BY-4.0",
    )

    shade = pub(
        "shade",
        "lin",
        "design",
        title="Neo-Vernacular lamp shade",
        description="A lattice lamp shade panel, laser-cut from birch plywood.",
        files=[pattern],
        licence="CC-BY-SA-4.0",
        process="laser-cutting",
        machine="40 W CO2 laser",
        materials=["birch plywood"],
    )
    base = pub(
        "base",
        "rosa",
        "design",
        title="Rustic Futurism lamp base",
        description="A turned-look lamp base printed to carry the Neo-Vernacular shade.",
        files=[base_stl],
        licence="CC-BY-SA-4.0",
        derived_from=[shade.cid],
        process="3d-printing",
        materials=["recycled PETG"],
    )
    pub(
        "desk",
        "kofi",
        "design",
        title="Adopt-a-Workshop desk lamp",
        description="A taller desk lamp for the Adopt-a-Workshop programme, remixed from the "
        "Rustic Futurism base.",
        files=[desk_stl],
        licence="CC-BY-4.0",  # drops the share-alike: the conflict the demo shows
        derived_from=[base.cid],
        process="3d-printing",
        materials=["PLA"],
    )
    pub(
        "heddle",
        "kofi",
        "design",
        title="Rigid heddle bar for backstrap looms",
        description="The heddle used in the backstrap weaving technique.",
        files=[heddle],
        licence="CC-BY-NC-4.0",
        process="3d-printing",
        materials=["PLA"],
    )

    pub(
        "treasure",
        "alliance",
        "attestation",
        subject=keys["amaia"].did,
        kind="living-heritage",
        note="Recognised as a Human Treasure by the Living Heritage Program for raku firing.",
    )
    pub(
        "skill",
        "alliance",
        "attestation",
        subject=keys["rosa"].did,
        kind="skill",
        skill="3D printing with recycled filament",
        level="master",
    )
    pub(
        "fabricated",
        "lin",
        "attestation",
        subject=keys["rosa"].did,
        kind="fabricated",
        design=base.cid,
        note="Printed and tested at the Porto community fabrication hub.",
    )
    pub(
        "fair",
        "alliance",
        "collection",
        title="Maker's Fair 2035 showcase",
        description="Work shown by the Global Micro-manufacturing Alliance at Maker's Fair 2035.",
        items=[
            demo.records["raku"],
            demo.records["backstrap"],
            shade.cid,
            base.cid,
            demo.records["desk"],
        ],
    )

    demo.document = _co_edited_technique(store, keys, clock)
    store.transact(lambda txn: put_meta(txn, SEEDED_KEY, b"1"))
    return demo


def _co_edited_technique(store: Store, keys: dict[str, PrivateKey], clock: HybridClock) -> Cid:
    """A technique three hubs co-edit; two of them set its region at the same time."""
    docs = Documents(store)

    def first(b: ChangeBuilder) -> None:
        b.set("title", "Community kiln maintenance")
        b.edit_text("summary", "How hubs keep a shared wood-fired kiln in good repair.")
        for tag in ("kiln", "ceramics", "maintenance"):
            b.add("tags", tag)
        b.add("materials", "fire bricks")
        b.append("steps", "Brush out ash after every firing.")

    genesis = docs.create(keys["amaia"], "technique", first, mode="alliance", clock=clock)
    doc = genesis.cid
    docs.edit(
        keys["kofi"],
        doc,
        lambda b: b.append("steps", "Check the door seal with a candle before firing.").add(
            "materials", "kiln cement"
        ),
        clock=clock,
    )
    # Two hubs, offline from each other, edit the region from the same heads.
    state = docs.state(doc)
    heads = docs.heads(doc)
    left = ChangeBuilder(state).set("region", "Basque Country").build()
    right = ChangeBuilder(state).set("region", "Minho, Portugal").build()
    ops = [
        op_record(keys["amaia"], doc, heads, left, ts=clock.tick()),
        op_record(keys["lin"], doc, heads, right, ts=clock.tick()),
    ]
    docs.ingest(ops)
    return doc
