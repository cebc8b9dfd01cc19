"""Helpers for the CRDT tests: hub keys, a small simulated alliance, random edits."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from craftnet.archive.cid import Cid
from craftnet.archive.crdt.causal import Replica
from craftnet.archive.crdt.edit import ChangeBuilder
from craftnet.archive.crdt.ops import genesis_record, op_record
from craftnet.archive.crdt.state import DocState
from craftnet.archive.hlc import HybridClock, pack
from craftnet.archive.records import Record
from craftnet.identity.keys import PrivateKey

HUBS = [
    "lisbon-fablab",
    "porto-ceramics",
    "nairobi-makerspace",
    "oaxaca-textiles",
    "kyoto-raku",
    "tromso-woodshop",
    "recife-adopt-a-workshop",
    "dakar-intergenerational",
]
KEYS = {hub: PrivateKey.from_seed(hub.encode().ljust(32, b"\0")[:32]) for hub in HUBS}
START_MS = 1_780_000_000_000  # some day in 2026

TAGS = ["raku", "glaze", "kiln", "rustic-futurism", "neo-vernacular", "smoke", "copper"]
WORDS = ["pot", "slowly", "kiln ", "glaze", "tongs", "sawdust", " ", "é", "🔥", "\n", "clay"]
MEDIA = ["photo-kiln.jpg", "video-reduction.mp4", "sketch.svg", "glaze-test.png"]


def raku_genesis(owner: str = HUBS[0], *, mode: str = "alliance", editors: tuple[str, ...] = (),
                 ts: int = pack(START_MS)) -> Record:
    """The genesis of the "Raku glaze firing" technique, as the Lisbon hub wrote it."""
    changes = (
        ChangeBuilder(None)
        .set("title", "Raku glaze firing")
        .add("tags", "raku")
        .append("steps", "Bisque-fire the pot.")
        .append("steps", "Glaze and fire to 1000 °C.")
        .edit_text("description", "A low-fire technique from Kyoto.")
        .build()
    )
    return genesis_record(
        KEYS[owner], "technique", changes, mode=mode,
        editors=[KEYS[e].did for e in editors], ts=ts,
    )


def random_text_edit(rng: random.Random, old: str) -> str:
    """Splice a random piece of ``old`` out and random words in."""
    i = rng.randint(0, len(old))
    j = min(len(old), i + rng.choice([0, 0, 1, 3, 8]))
    added = "".join(rng.choice(WORDS) for _ in range(rng.choice([0, 1, 1, 2, 4])))
    return old[:i] + added + old[j:]


def random_changes(rng: random.Random, state: DocState) -> list[dict[str, Any]]:
    """One to three random edits a hub might make, against ``state``."""
    builder = ChangeBuilder(state)
    edited: set[tuple[str, int | None]] = set()
    for _ in range(rng.randint(1, 3)):
        steps = builder.items("steps")
        action = rng.randrange(10)
        if action == 0:
            builder.set("title", rng.choice(["Raku glaze firing", "Raku", "Raku firing (Kyoto)"]))
        elif action == 1:
            builder.set(rng.choice(["region", "licence"]), rng.choice(["CC-BY-4.0", "Kyoto", None]))
        elif action == 2:
            builder.add("tags", rng.choice(TAGS))
        elif action == 3:
            present = list(state.sets.get("tags", {}))
            if present:
                builder.remove("tags", rng.choice(sorted(present)))
        elif action == 4:
            builder.insert("steps", rng.randint(0, len(steps)), rng.choice(WORDS) * 2)
        elif action == 5 and steps:
            builder.delete("steps", rng.randrange(len(steps)))
        elif action in (6, 7) and steps:
            index = rng.randrange(len(steps))
            if len(steps[index]) == 2 and ("steps", index) not in edited:
                edited.add(("steps", index))
                seq = state.lists["steps"].find(steps[index][0].bytes, steps[index][1])
                assert seq is not None
                builder.edit_text("steps", random_text_edit(rng, seq.content.string()), index)
        elif action == 8 and ("description", None) not in edited:
            edited.add(("description", None))
            text = state.texts.get("description")
            old = "" if text is None else text.string()
            builder.edit_text("description", random_text_edit(rng, old))
        elif action == 9:
            media = builder.items("media")
            builder.insert("media", rng.randint(0, len(media)), rng.choice(MEDIA))
    changes = builder.build()
    return changes or ChangeBuilder(state).add("tags", rng.choice(TAGS)).build()


class Alliance:
    """``n`` hubs holding one document, each with its own (virtual, skewed) clock."""

    def __init__(self, n: int, seed: int = 0, *, genesis: Record | None = None) -> None:
        self.rng = random.Random(seed)
        self.hubs = HUBS[:n]
        self.genesis = genesis or raku_genesis()
        self.doc: Cid = self.genesis.cid
        self.now = START_MS
        self.skew = [self.rng.randint(-2000, 2000) for _ in self.hubs]
        self.clocks = [HybridClock(self._wall(i)) for i in range(n)]
        self.replicas = [Replica(self.doc) for _ in self.hubs]
        for replica in self.replicas:
            replica.receive(self.genesis, verify=False)
        self.sent: list[Record] = [self.genesis]

    def _wall(self, i: int) -> Callable[[int], int] | Any:
        return lambda: self.now + self.skew[i]

    def edit(self, i: int) -> Record:
        """Hub ``i`` makes a random edit against what it has; returns the signed op."""
        self.now += self.rng.randint(0, 50)
        replica = self.replicas[i]
        state = replica.state()
        assert state is not None
        changes = random_changes(self.rng, state)
        ts = self.clocks[i].observe(replica.head_ts())
        record = op_record(KEYS[self.hubs[i]], self.doc, replica.heads, changes, ts=ts)
        outcomes = replica.receive(record, verify=False)
        assert outcomes[0].status == "applied", outcomes
        self.sent.append(record)
        return record

    def sync_all(self) -> None:
        """Everyone receives everything, in a random order."""
        for replica in self.replicas:
            order = self.sent[:]
            self.rng.shuffle(order)
            for record in order:
                replica.receive(record, verify=False)
