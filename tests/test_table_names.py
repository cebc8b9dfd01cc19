"""Store tables are archive's business: no code outside archive/ names one.

archive/ gives every other package a typed interface to what it keeps (blocks and
pins in ``archive.blocks``, records and their indexes in ``archive.index``, the
reconcile index in ``archive.recon_index``, settings in ``archive.meta``). A raw
``txn.has("blocks", ...)`` elsewhere ties that code to the store's layout, which is
then no longer archive's to change. Like tests/test_import_rules.py, this walks the
syntax tree of every module of the other packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from craftnet.archive.store import DATABASES

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("identity", "protocol", "simnet", "node", "cli", "craftnet")
# The transaction methods that take a table name first.
TXN_METHODS = {"get", "has", "iterate", "count", "put", "delete"}


def _receiver_is_txn(call: ast.Call) -> bool:
    assert isinstance(call.func, ast.Attribute)
    return "txn" in ast.unparse(call.func.value).lower()


def raw_table_uses(source: str) -> list[str]:
    """Where ``source`` names a store table: as a transaction call's first argument, or by
    importing one of archive's ``*_DB`` table-name constants."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in TXN_METHODS
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value in DATABASES
            # dict.get("records") is not a table; a transaction's get always names one.
            and (node.func.attr != "get" or _receiver_is_txn(node))
        ):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "craftnet.archive"
        ):
            for alias in node.names:
                if alias.name.endswith("_DB") or alias.name == "DATABASES":
                    found.append(f"line {node.lineno}: imports {alias.name} from {node.module}")
    return found


def _modules() -> list[Path]:
    return [path for pkg in PACKAGES for path in sorted((ROOT / pkg).rglob("*.py"))]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_table_name_outside_archive(path: Path) -> None:
    assert raw_table_uses(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "source",
    [
        'txn.has("blocks", cid.bytes)',
        'self.txn.get("records", key)',
        'txn.iterate("rec_type", prefix, stop)',
        'txn.count("records")',
        'txn.put("meta", b"x", b"1")',
        'txn.delete("pins", key)',
        "from craftnet.archive.recon_index import ITEMS_DB",
        "from craftnet.archive.store import DATABASES",
    ],
)
def test_the_checker_catches_table_names(source: str) -> None:
    assert raw_table_uses(source)


def test_the_checker_allows_the_typed_interface_and_plain_dicts() -> None:
    source = (
        "from craftnet.archive.blocks import has_block\n"
        "has_block(txn, cid)\n"
        'payload.get("records", [])\n'
        'count_records(txn, type="design")\n'
    )
    assert raw_table_uses(source) == []
