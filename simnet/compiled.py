"""simnet's compiled mode: the same sources, compiled with mypyc, in a child process.

A run of 10,000 hubs spends its time in the engine's and the simulator's Python: about
190 calls per delivered record per hub. mypyc compiles the hot modules (the engine, the
block exchange, gossip, scoring, the wire messages, CIDs, the kernel, the mesh, the
stores, the metrics) from the very sources real hubs run; a large run then takes a
quarter to a third less CPU (what is left is mostly memory: dict lookups and freeing
objects). The build is a copy of the
package with those modules compiled beside it, kept in the user's cache folder under a
fingerprint of every source file, Python's version and mypyc's; a run loads it by
starting a child Python with only that copy on its path. Real hubs never load it.

The build needs mypyc (part of mypy, installed with the test extras) and a C compiler.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Final

import blake3
import platformdirs

import craftnet
from craftnet.errors import CraftnetError

# The modules a delivery runs through, relative to the package. Each must compile under
# mypyc and behave exactly as interpreted (tests/simnet/test_compiled.py compares the
# outputs of runs). Three needed their sources changed first, each with a comment there:
# archive/cid.py (object.__new__ cannot make a compiled class), protocol/messages.py
# (mypyc handed the dataclasses' KIND class attributes to dataclass() as fields) and
# simnet/metrics.py (a dataclass annotated with a type imported for type checking only
# read a null type object when imported first, and crashed the interpreter).
MODULES: Final = (
    "archive/cid.py",
    "protocol/blocks.py",
    "protocol/coded.py",
    "protocol/engine.py",
    "protocol/events.py",
    "protocol/framing.py",
    "protocol/messages.py",
    "protocol/gossip.py",
    "protocol/items.py",
    "protocol/members.py",
    "protocol/policy.py",
    "protocol/reconcile.py",
    "protocol/scoring.py",
    "simnet/counters.py",
    "simnet/executor.py",
    "simnet/hub.py",
    "simnet/items.py",
    "simnet/kernel.py",
    "simnet/links.py",
    "simnet/mesh.py",
    "simnet/metrics.py",
    "simnet/stores.py",
    "simnet/verify.py",
)
SUBPACKAGES: Final = ("archive", "cli", "identity", "node", "protocol", "simnet")
KEEP_BUILDS: Final = 3
# Set in the child process so that it does not build and start another child.
CHILD_ENV: Final = "CRAFTNET_SIMNET_COMPILED"
_SUFFIX: Final = ".so" if sys.platform != "win32" else ".pyd"


class CompileError(CraftnetError):
    """The compiled mode cannot be built or loaded here; the message says what is missing."""


def package_root() -> Path:
    """The folder that holds the package's sources as ``craftnet`` imports them."""
    return Path(craftnet.__file__).resolve().parent


def _package_dirs() -> dict[str, Path]:
    """Each subpackage's name and its source folder (the install maps some elsewhere).

    Found without importing them: simnet never imports node/.
    """
    folders = {}
    for name in SUBPACKAGES:
        spec = importlib.util.find_spec(f"craftnet.{name}")
        if spec is None or not spec.submodule_search_locations:
            raise CompileError(f"craftnet.{name} is not installed as a package folder")
        folders[name] = Path(next(iter(spec.submodule_search_locations))).resolve()
    return folders


def _sources() -> Iterator[tuple[str, Path]]:
    """Every Python source of the package: its path inside the package, and on disk."""
    root = package_root()
    for path in sorted(root.glob("*.py")):
        yield path.name, path
    for name, folder in sorted(_package_dirs().items()):
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" not in path.parts:
                yield f"{name}/{path.relative_to(folder).as_posix()}", path


def fingerprint() -> str:
    """A name for the build of the sources as they are now, with this Python and mypyc."""
    try:
        from mypy.version import __version__ as mypy_version
    except ImportError:
        mypy_version = "none"
    h = blake3.blake3()
    h.update(f"{sys.version}\0{mypy_version}\0{','.join(MODULES)}\0".encode())
    for name, path in _sources():
        h.update(name.encode() + b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:24]


def cache_dir() -> Path:
    """Where builds are kept (``CRAFTNET_SIMNET_BUILDS`` overrides)."""
    override = os.environ.get("CRAFTNET_SIMNET_BUILDS")
    if override:
        return Path(override)
    return Path(platformdirs.user_cache_dir("craftnet")) / "simnet-compiled"


def _copy_package(dest: Path) -> None:
    """The package's sources and data as one tree under ``dest/craftnet``."""
    top = dest / "craftnet"
    top.mkdir(parents=True)
    for path in package_root().iterdir():
        if path.is_file():
            shutil.copy2(path, top / path.name)
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.pyd", "node_modules")
    for name, folder in _package_dirs().items():
        shutil.copytree(folder, top / name, ignore=ignore)


def _build(dest: Path, progress: Callable[[str], None]) -> None:
    """Copy the package to ``dest`` and compile :data:`MODULES` there with mypyc."""
    try:
        import mypyc  # noqa: F401
    except ImportError as exc:
        raise CompileError(
            "the compiled mode needs mypyc, which comes with mypy: "
            "pip install 'craftnet[test]' (or pip install mypy)"
        ) from exc
    _check_compiler()
    _copy_package(dest)
    progress(f"compiling {len(MODULES)} modules with mypyc (about a minute, once per version)")
    command = [sys.executable, "-m", "mypyc", *(f"craftnet/{m}" for m in MODULES)]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    done = subprocess.run(command, cwd=dest, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        log = dest.parent / "last-failed-build.log"
        log.write_text(done.stdout + done.stderr, encoding="utf-8")
        last = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["(no output)"]
        raise CompileError(
            f"mypyc could not build simnet's compiled mode (exit {done.returncode}): is a C "
            f"compiler installed (apt-get install gcc)? Last line: {last[0][:200]}; "
            f"the whole output is in {log}"
        )
    shutil.rmtree(dest / "build", ignore_errors=True)
    missing = [m for m in MODULES if not list((dest / "craftnet").glob(m[:-3] + ".*" + _SUFFIX))]
    if missing:
        raise CompileError(f"mypyc ran but built no extension for {', '.join(missing)}")


def _check_compiler() -> None:
    """Fail at once, not after mypyc's minute of analysis, when there is no C compiler
    or no Python headers."""
    configured = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    compiler = configured.split()[0]
    if shutil.which(compiler) is None:
        raise CompileError(
            f"the compiled mode needs a C compiler and found none ({compiler!r} is not "
            "installed): apt-get install gcc, or set CC"
        )
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not headers.exists():
        raise CompileError(
            f"the compiled mode needs Python's C headers ({headers} is missing): "
            "apt-get install python3-dev"
        )


def ensure_build(progress: Callable[[str], None] = lambda _: None) -> Path:
    """The folder of a compiled build of the current sources, built first if need be.

    Two processes building at once each build in a folder of their own; the first to
    finish installs its build, the other uses it.
    """
    target = cache_dir() / fingerprint()
    if (target / "craftnet").is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="building-", dir=target.parent))
    try:
        _build(work, progress)
        try:
            work.rename(target)
        except OSError:
            if not (target / "craftnet").is_dir():
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    _prune(target.parent, keep=target)
    return target


def _prune(folder: Path, keep: Path) -> None:
    """Remove all but the :data:`KEEP_BUILDS` newest builds (each source version makes
    one), never ``keep`` nor a build under way."""
    builds = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("building-")]
    builds.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in builds[KEEP_BUILDS:]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


def child_command(build: Path, args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of a Python that imports craftnet from ``build``.

    ``-P`` keeps the working folder off the path: run from a checkout, its ``craftnet``
    folder would otherwise shadow the build.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = str(build)
    env[CHILD_ENV] = "1"
    env.update(large_heap_env(env))
    return [sys.executable, "-P", *args], env


def large_heap_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Settings for a run whose objects fill gigabytes: the C allocator on huge pages.

    A large run is bound by memory: each delivery touches its hub's tables, spread over
    the heap, and most of those reads miss the caches and the TLB. Python's own
    allocator takes 1 MiB arenas that the kernel backs with 4 KiB pages; glibc's
    malloc, asked to (``glibc.malloc.hugetlb=1``), advises the kernel to back its heap
    with 2 MiB pages where transparent huge pages are on ``madvise``. Other C libraries
    ignore the tunable. Settings the user made are kept.
    """
    if "PYTHONMALLOC" in environ or not sys.platform.startswith("linux"):
        return {}
    tunables = environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" not in tunables:
        tunables = f"{tunables}:glibc.malloc.hugetlb=1" if tunables else "glibc.malloc.hugetlb=1"
    return {"PYTHONMALLOC": "malloc", "GLIBC_TUNABLES": tunables}


def is_compiled() -> bool:
    """Whether the engine running in this process is the compiled one."""
    from craftnet.protocol import engine

    return (engine.__file__ or "").endswith(_SUFFIX)


def check_child(environ: Mapping[str, str] = os.environ) -> None:
    """In a child started by :func:`child_command`: make sure the build was loaded."""
    if environ.get(CHILD_ENV) and not is_compiled():
        raise CompileError(
            "the compiled build was not loaded (the engine came from "
            f"{package_root()}); remove {cache_dir()} and try again"
        )
