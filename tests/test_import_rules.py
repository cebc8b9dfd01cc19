"""The direction of imports, enforced: cli -> node -> protocol -> archive -> identity.

``simnet`` drives protocol/ and archive/ but never node/; protocol/ reads no clock
and opens no socket or thread; archive/ and identity/ never touch the network. The
check walks the syntax tree of every module, so an import inside a function counts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("identity", "archive", "protocol", "simnet", "node", "cli")
# Which craftnet subpackages each package may import (itself included).
ALLOWED: dict[str, set[str]] = {
    "identity": {"identity"},
    "archive": {"archive", "identity"},
    "protocol": {"protocol", "archive", "identity"},
    "simnet": {"simnet", "protocol", "archive", "identity"},
    "node": {"node", "protocol", "archive", "identity"},
    "cli": {"cli", "node", "simnet", "protocol", "archive", "identity"},
}
NETWORK = {
    "socket",
    "asyncio",
    "trio",
    "libp2p",
    "aiohttp",
    "anyio",
    "http",
    "urllib",
    "ssl",
    "selectors",
    "socketserver",
    "requests",
    "httpx",
    "websockets",
}
# protocol/ is sans-IO: no network, no clock, no threads or processes.
FORBIDDEN: dict[str, set[str]] = {
    "identity": NETWORK,
    "archive": NETWORK,
    "protocol": NETWORK
    | {"time", "threading", "multiprocessing", "concurrent", "subprocess", "signal", "os"},
    "simnet": {"socket", "trio", "libp2p", "aiohttp", "asyncio"},
    "node": set(),
    "cli": set(),
}


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """Every absolute module name ``source`` (the module ``module``) imports, with lines."""
    found: list[tuple[int, str]] = []
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # ``from craftnet import node`` imports a subpackage by name.
            if name == "craftnet":
                found.extend((node.lineno, f"craftnet.{a.name}") for a in node.names)
    return found


def violations(source: str, package: str, module: str) -> list[str]:
    """The import rules ``source`` (a module of ``package``) breaks."""
    problems = []
    for line, name in imported_modules(source, module):
        parts = name.split(".")
        if parts[0] == "craftnet" and len(parts) > 1 and parts[1] in ALLOWED:
            if parts[1] not in ALLOWED[package]:
                problems.append(
                    f"{module}:{line} imports {name} ({package} may not import {parts[1]})"
                )
        elif parts[0] in FORBIDDEN[package]:
            problems.append(f"{module}:{line} imports {name} ({package} must not use {parts[0]})")
    return problems


def _modules() -> list[tuple[str, Path]]:
    return [(pkg, path) for pkg in PACKAGES for path in sorted((ROOT / pkg).rglob("*.py"))]


def test_every_package_is_checked() -> None:
    checked = {pkg for pkg, _ in _modules()}
    assert checked == set(PACKAGES)


@pytest.mark.parametrize(("package", "path"), _modules(), ids=lambda v: str(v))
def test_imports_point_downward(package: str, path: Path) -> None:
    relative = path.relative_to(ROOT / package).with_suffix("")
    module = ".".join(["craftnet", package, *relative.parts])
    assert violations(path.read_text(encoding="utf-8"), package, module) == []


@pytest.mark.parametrize(
    ("package", "source"),
    [
        ("protocol", "import trio"),
        ("protocol", "from time import monotonic"),
        ("protocol", "def f():\n    import socket"),
        ("protocol", "from craftnet.node import host"),
        ("protocol", "from craftnet import node"),
        ("protocol", "from ..node import host"),
        ("archive", "import aiohttp.web"),
        ("archive", "from craftnet.protocol.engine import SyncEngine"),
        ("identity", "from craftnet.archive.cid import Cid"),
        ("simnet", "from craftnet.node.host import Host"),
        ("node", "from craftnet.cli.main import main"),
    ],
)
def test_the_checker_catches_upward_imports(package: str, source: str) -> None:
    assert violations(source, package, f"craftnet.{package}.example")


def test_the_checker_allows_downward_imports() -> None:
    source = "from craftnet.archive.cid import Cid\nfrom . import errors\nimport random"
    assert violations(source, "protocol", "craftnet.protocol.example") == []
