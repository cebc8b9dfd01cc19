"""The hub's housekeeping: unfinished imports expire while ``craftnet serve`` runs.

A real ``craftnet serve`` process on 127.0.0.1 over a real LMDB home: what was idle
longer than ``[bundles] keep_unfinished_days`` is gone once it has started, what is
recent stays, and held blocks from before ages get the time of that start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from craftnet.archive.cid import RAW, Cid
from craftnet.archive.leftovers import DAY_MS, survey
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.receive import HELD_DB, JOBS_DIR, decode_held, encode_held
from craftnet.node.config import HubConfig
from craftnet.node.housekeeping import tidy

CRAFTNET = Path(sys.executable).with_name("craftnet")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def held_entry(store: LmdbStore, set_id: bytes, data: bytes, value: bytes) -> bytes:
    key = set_id + Cid.of(data, RAW).bytes
    store.transact(lambda txn: txn.put(HELD_DB, key, value))
    return key


def job(home: Path, name: str, age_days: float) -> Path:
    folder = home / JOBS_DIR / name
    folder.mkdir(parents=True)
    (folder / "spill").write_bytes(b"s" * 100)
    (folder / "state").write_bytes(b"\xa0")
    when = (now_ms() - int(age_days * DAY_MS)) * 1_000_000
    for path in (folder / "spill", folder / "state", folder):
        os.utime(path, ns=(when, when))
    return folder


def test_a_limit_of_0_keeps_everything(tmp_path: Path) -> None:
    with LmdbStore(tmp_path / "store") as store:
        held_entry(store, b"s" * 16, b"x", encode_held("block", b"x", 0))
        assert tidy(HubConfig(home=tmp_path, keep_unfinished_days=0), store) is None
        report = tidy(HubConfig(home=tmp_path), store)
        assert report is not None and report.removed_blocks == 1


def test_serve_expires_idle_imports_at_start(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAFTNET_")}
    env.update(CRAFTNET_HOME=str(home), CRAFTNET_LOG="INFO")
    subprocess.run([str(CRAFTNET), "init", "--no-passphrase"], env=env, check=True,
                   capture_output=True, timeout=60)
    (home / "config.toml").write_text("[bundles]\nkeep_unfinished_days = 2\n")
    with LmdbStore(home / "store") as store:
        stale = held_entry(store, b"o" * 16, b"old chunk",
                           encode_held("block", b"old chunk", now_ms() - 3 * DAY_MS))
        fresh = held_entry(store, b"n" * 16, b"new chunk",
                           encode_held("block", b"new chunk", now_ms() - DAY_MS))
        legacy = held_entry(store, b"l" * 16, b"legacy chunk", b"b" + b"legacy chunk")
    idle = job(home, "a" * 32, 5)
    recent = job(home, "b" * 32, 0.5)
    before = now_ms()
    proc = subprocess.Popen(
        [str(CRAFTNET), "serve", "--port", "0", "--no-mdns"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("press Ctrl+C"):
                break
        else:
            pytest.fail("the hub did not start: " + (proc.stderr.read() if proc.stderr else ""))
        deadline = time.monotonic() + 60  # a bound on a loaded machine, not a measurement
        while idle.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not idle.exists() and recent.exists()
        with LmdbStore(home / "store") as store:
            # The held table is swept in the same round, before the job folders.
            with store.read() as txn:
                values = dict(txn.iterate(HELD_DB))
            assert stale not in values and fresh in values
            stamped = decode_held(values[legacy]).held_ms
            assert stamped is not None and before <= stamped <= now_ms()
            assert survey(store, home, now_ms()).held_blocks == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "unfinished imports idle 2 days or more: removed 1 held block(s)" in err
