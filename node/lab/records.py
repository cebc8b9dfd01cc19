"""Records the lab publishes: technique bodies in the archive's world, and bulk bundles.

A bundle publish (``via = "bundle"``) signs many records with one lab artisan's key and
writes them as a CARv1 bundle that the hub imports with ``craftnet import``: the way a
thousand records arrive at once (a USB stick from a Maker's Fair), which a one-process-
per-record CLI publish could not do in a lab's time.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Final

from craftnet.archive.car import write_header, write_section
from craftnet.archive.hlc import HybridClock
from craftnet.archive.records import Record
from craftnet.archive.schemas import schema_for
from craftnet.identity.keys import PrivateKey

SUBJECTS: Final = (
    "Rustic Futurism pendant lamp",
    "Neo-Vernacular table lamp",
    "Adopt-a-Workshop loom frame",
    "Maker's Fair showcase stand",
    "Living Heritage backstrap weaving",
    "Community Learning Hub jig",
    "Human Treasures lacquer finish",
    "Neighbourhood Fabrication Hub stool",
)
MATERIALS: Final = ("oak", "ash", "bamboo", "wool", "clay", "recycled PETG", "linen")
LICENCES: Final = ("CC-BY-4.0", "CC-BY-SA-4.0")


def technique_body(serial: str, rng: random.Random) -> dict[str, Any]:
    """A small technique record body; ``serial`` makes it unique in the run."""
    subject = rng.choice(SUBJECTS)
    return {
        "title": f"{subject} ({serial})",
        "steps": [
            {"text": "Prepare the stock on the shop's shared machine", "media": []},
            {"text": f"Finish by hand; record this as lab serial {serial}", "media": []},
        ],
        "materials": [rng.choice(MATERIALS)],
        "licence": rng.choice(LICENCES),
    }


def cli_publish_args(serial: str, rng: random.Random) -> list[str]:
    """``craftnet publish technique`` arguments for the same kind of record."""
    body = technique_body(serial, rng)
    args = ["publish", "technique", "--title", body["title"], "--licence", body["licence"]]
    for step in body["steps"]:
        args += ["--step", step["text"]]
    for material in body["materials"]:
        args += ["--material", material]
    return args


def write_bundle(path: Path, key: PrivateKey, serials: list[str], rng: random.Random) -> list[str]:
    """Sign one technique per serial with ``key``, write them as a bundle; their CIDs."""
    schema = schema_for("technique")
    version = schema.version if schema is not None else 1
    clock = HybridClock()
    records = [
        Record.create(key, "technique", technique_body(s, rng), (), clock=clock, v=version)
        for s in serials
    ]
    with path.open("wb") as out:
        write_header(out, [r.cid for r in records])
        for record in records:
            write_section(out, record.cid, record.block)
    return [str(r.cid) for r in records]
