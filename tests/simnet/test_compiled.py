"""simnet's compiled mode runs the same sources and must write the same outputs.

The build (mypyc, about a minute on two cores) is made once per version of the sources
and kept in the user's cache folder, so a second test run reuses it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from craftnet.simnet import compiled

# Adversaries of every kind, churn and a partition that heals: the engine's paths for
# hostile peers, lost connections and reconciles, not only gossip.
SCENARIO = """
name = "compiled-twin"
hubs = 24
max_time_s = 240
sample_interval_s = 10
[topology]
degree = 4
[engine]
reconcile_interval_s = 30
[workload]
records = 20
start_s = 1
window_s = 40
[churn]
share = 0.25
online_mean_s = 60
offline_mean_s = 20
[[partitions]]
split = "halves"
start_s = 20
heal_s = 90
[[adversaries]]
kind = "invalid"
count = 1
rate_per_s = 0.5
[[adversaries]]
kind = "spam"
count = 1
rate_per_s = 4
[[adversaries]]
kind = "drop"
count = 1
"""


def _craftnet(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "craftnet", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.mark.slow
def test_a_compiled_run_writes_exactly_what_the_interpreted_run_writes(tmp_path: Path) -> None:
    scenario = tmp_path / "twin.toml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    outs = {}
    for mode in ("interpreted", "compiled"):
        out = tmp_path / mode
        extra = ["--compiled"] if mode == "compiled" else []
        done = _craftnet(
            "sim", "run", str(scenario), "--seed", "3", "--no-plots", "--quiet",
            "--out", str(out), *extra,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        outs[mode] = out
    for name in ("summary.json", "metrics.jsonl", "report.txt"):
        interpreted, compiled_ = (_without_wall_time(out / name) for out in outs.values())
        assert interpreted, name
        assert compiled_ == interpreted, name


@pytest.mark.slow
def test_a_compiled_sweep_writes_the_rows_of_the_interpreted_sweep(tmp_path: Path) -> None:
    # Two spawned worker processes: each must load the build (a worker that ran the
    # sources under --compiled would fail its run, see sweep.run_task).
    scenario = tmp_path / "twin.toml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    rows = {}
    for mode in ("interpreted", "compiled"):
        out = tmp_path / mode
        extra = ["--compiled"] if mode == "compiled" else []
        done = _craftnet(
            "sim", "sweep", str(scenario), "--seeds", "1..2", "--workers", "2",
            "--out", str(out), *extra,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        lines = (out / "sweep.jsonl").read_text().splitlines()
        rows[mode] = [json.loads(line) for line in lines]
        for row in rows[mode]:
            del row["wall_s"]
    assert len(rows["interpreted"]) == 2
    assert rows["compiled"] == rows["interpreted"]


def test_a_compiled_sweep_on_a_dask_cluster_is_a_usage_error(tmp_path: Path) -> None:
    scenario = tmp_path / "small.toml"
    scenario.write_text('name = "s"\nhubs = 4\nmax_time_s = 10\n', encoding="utf-8")
    done = _craftnet(
        "sim", "sweep", str(scenario), "--compiled", "--scheduler", "tcp://127.0.0.1:1",
        "--out", str(tmp_path / "o"),
    )
    assert done.returncode == 2
    assert "--compiled runs the sweep on this machine's workers" in done.stderr
    assert not (tmp_path / "o").exists()


def _without_wall_time(path: Path) -> str:
    """The file's text without the report's wall time and events per second."""
    wall = r"in [0-9.]+ s wall; ([0-9,]+) events \([0-9,]+/s\)"
    return re.sub(wall, r"\1 events", path.read_text())


def test_the_child_process_loads_the_compiled_engine() -> None:
    build = compiled.ensure_build()
    argv, env = compiled.child_command(
        build,
        ["-c", "from craftnet.simnet import compiled; compiled.check_child(); "
         "print(compiled.is_compiled())"],
    )
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
    assert not compiled.is_compiled()  # this process runs the sources


def test_each_compiled_module_imports_first_in_a_fresh_process() -> None:
    # A module that cannot start an import chain of its own would crash a run that
    # happens to import it first (simnet/metrics.py did, compiled, and is left out).
    build = compiled.ensure_build()
    for path in compiled.MODULES:
        name = "craftnet." + path.removesuffix(".py").replace("/", ".")
        argv, env = compiled.child_command(build, ["-c", f"import {name}"])
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (name, done.returncode, done.stderr[-2000:])


# What archive/cid.py, protocol/messages.py and simnet/metrics.py were changed for, to
# compile (see simnet/compiled.py): made both ways, the same CIDs, messages and errors.
PROBE = """
import pickle
from craftnet.archive.cid import Cid
from craftnet.archive.errors import CidError
from craftnet.protocol import messages as m
from craftnet.simnet import compiled, metrics
compiled.check_child()
out = []
cid = Cid.of(b"lathe manual")
made = [cid, Cid.from_bytes(cid.bytes), Cid.from_link(b"\\0" + cid.bytes), Cid.parse(str(cid)),
        pickle.loads(pickle.dumps(cid)), Cid(cid.codec, cid.digest)]
out.append([str(c) for c in made] + [len({*made}), hash(cid) == hash(made[1])])
out.append(Cid.from_link(b"\\0" + cid.bytes[:-1]))
for bad in (cid.bytes[:-1], b"\\x12\\x20" + bytes(32), b"\\x01\\x70" + cid.bytes[2:]):
    try:
        Cid.from_bytes(bad)
    except CidError as exc:
        out.append(str(exc))
try:
    cid._bytes = b""
except AttributeError as exc:
    out.append(str(exc))
for msg in (m.End(3), m.Bye("no"), m.Want(1, (cid,), True), m.Block(1, cid, b"x")):
    out.append([msg.KIND, m.to_wire(msg), m.from_wire(m.to_wire(msg)) == msg])
out.append(sorted(m.MESSAGE_TYPES))
out.append(metrics.quantiles([3.0, 1.0, 2.0]))
print(repr(out))
"""


def test_cids_messages_and_metrics_behave_the_same_compiled() -> None:
    build = compiled.ensure_build()
    runs = {}
    for mode, where in (("interpreted", None), ("compiled", build)):
        if where is None:
            argv, env = [sys.executable, "-P", "-c", PROBE], dict(os.environ)
        else:
            argv, env = compiled.child_command(where, ["-c", PROBE])
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (mode, done.stderr[-2000:])
        runs[mode] = done.stdout
    assert "Cid is immutable" in runs["compiled"]
    assert runs["compiled"] == runs["interpreted"]


def test_a_child_that_did_not_load_the_build_says_so() -> None:
    with pytest.raises(compiled.CompileError, match="was not loaded"):
        compiled.check_child({compiled.CHILD_ENV: "1"})


def test_a_source_change_names_a_new_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = compiled.fingerprint()
    monkeypatch.setattr(compiled, "MODULES", (*compiled.MODULES, "simnet/sim.py"))
    assert compiled.fingerprint() != before


def test_a_missing_c_compiler_is_one_clear_error(tmp_path: Path) -> None:
    scenario = tmp_path / "small.toml"
    scenario.write_text('name = "s"\nhubs = 4\nmax_time_s = 10\n', encoding="utf-8")
    env = dict(os.environ)
    env["CRAFTNET_SIMNET_BUILDS"] = str(tmp_path / "builds")  # nothing built there yet
    env["CC"] = str(tmp_path / "no-such-cc")
    done = _craftnet(
        "sim", "run", str(scenario), "--compiled", "--quiet", "--out", str(tmp_path / "o"),
        env=env,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: the compiled mode needs a C compiler and found none "
        f"('{tmp_path}/no-such-cc' is not installed): apt-get install gcc, or set CC"
    ]
    assert not (tmp_path / "o").exists()
    assert list((tmp_path / "builds").iterdir()) == []  # no half-made build left behind


def test_a_failed_build_is_one_line_naming_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A compiler that exists but fails; one small module, so that mypyc's analysis is short.
    monkeypatch.setenv("CRAFTNET_SIMNET_BUILDS", str(tmp_path / "builds"))
    monkeypatch.setenv("CC", "false")
    monkeypatch.setattr(compiled, "MODULES", ("protocol/policy.py",))
    with pytest.raises(compiled.CompileError) as caught:
        compiled.ensure_build()
    message = str(caught.value)
    assert message.startswith("mypyc could not build simnet's compiled mode (exit 1)")
    assert "\n" not in message
    log = tmp_path / "builds" / "last-failed-build.log"
    assert f"the whole output is in {log}" in message
    assert log.read_text()
    assert [p.name for p in (tmp_path / "builds").iterdir()] == [log.name]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's tunable")
def test_a_compiled_child_allocates_with_malloc_on_huge_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large run is bound by memory: its child uses glibc's malloc, on huge pages."""
    assert compiled.large_heap_env({}) == {
        "PYTHONMALLOC": "malloc",
        "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1",
    }
    kept = compiled.large_heap_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert kept["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    # What the user chose stays as it is.
    assert compiled.large_heap_env({"PYTHONMALLOC": "pymalloc"}) == {}
    assert compiled.large_heap_env({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}) == {
        "PYTHONMALLOC": "malloc",
        "GLIBC_TUNABLES": "glibc.malloc.hugetlb=0",
    }
    monkeypatch.delenv("PYTHONMALLOC", raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    show = "import os; print(os.environ['PYTHONMALLOC'], os.environ['GLIBC_TUNABLES'])"
    argv, env = compiled.child_command(tmp_path, ["-c", show])
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["malloc", "glibc.malloc.hugetlb=1"]
