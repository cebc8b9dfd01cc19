"""The fuzz targets over the committed seed corpus and every crash ever found (``make test``).

``make fuzz`` runs the same targets for 10^5 coverage-guided inputs each; this is the
short run that keeps them working and replays the crashes fixed since.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz_targets import TARGETS, run_one

from craftnet.errors import CraftnetError

HERE = Path(__file__).resolve().parent


def inputs(target: str) -> list[Path]:
    found = []
    for kind in ("corpus", "crashes"):
        folder = HERE / kind / target
        if folder.is_dir():
            found.extend(sorted(p for p in folder.iterdir() if p.is_file()))
    return found


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_seed_and_past_crash_is_refused_or_accepted_cleanly(target: str) -> None:
    paths = inputs(target)
    assert len(paths) >= 2, f"no seed corpus for {target}; run tests/fuzz/make_seeds.py"
    accepted = 0
    for path in paths:
        data = path.read_bytes()
        run_one(target, data)  # anything but a CraftnetError fails the test
        try:
            TARGETS[target](data)
        except CraftnetError:
            continue
        accepted += 1
    # The seeds are real objects: most pass, so the fuzzer starts deep inside each decoder.
    assert accepted >= 1, f"every seed of {target} is refused: the target reaches nothing"


def test_the_targets_refuse_garbage_with_craftnet_errors() -> None:
    for target in TARGETS:
        for data in (b"", b"\x00", b"\xff" * 64, b"\xa1\x61x\x01", bytes(range(256))):
            run_one(target, data)
