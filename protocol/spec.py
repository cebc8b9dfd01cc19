"""The generated parts of docs/protocol.md: state diagrams, scoring and limits tables.

``python -m craftnet.protocol.spec`` prints every section; ``--write PATH`` replaces
the text between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->`` markers
in a Markdown file. A test keeps docs/protocol.md equal to what this prints, so the
document cannot drift from the tables the engines run on.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from craftnet.archive.codec import MAX_BLOCK_SIZE
from craftnet.protocol.blocks import BlockConfig
from craftnet.protocol.coded import CHECK_SIZE, SYMBOL_CHECK_SIZE
from craftnet.protocol.engine import (
    CONNECTION_TRANSITIONS,
    RECONCILE_TRANSITIONS,
    EngineConfig,
    mermaid,
)
from craftnet.protocol.framing import MAX_FRAME_SIZE
from craftnet.protocol.messages import (
    HELLO_VERSIONS,
    MAX_ANNOUNCE_ITEMS,
    MAX_BLOCKS_PER_WANT,
    MAX_CIDS_PER_MESSAGE,
    MAX_GIFTS,
    MAX_ITEM_KEY,
    MAX_PUSHED_BLOCK,
    MAX_PUSHED_TOTAL,
    MAX_RANGE_DATA,
    MAX_RANGES,
    SUPPORTED_VERSIONS,
)
from craftnet.protocol.policy import policy_table
from craftnet.protocol.reconcile import (
    CODED_FINGERPRINT_SIZE,
    FINGERPRINT_SIZE,
    MAX_CODED_SYMBOLS,
    MAX_FRAMES_PER_MESSAGE,
    MAX_SESSION_MESSAGES,
    MAX_SESSION_SYMBOLS,
    SALT_SIZE,
    SHORT_ID_SIZE,
    ReconConfig,
)
from craftnet.protocol.scoring import offence_table


def limits_table() -> str:
    """Every limit and default as a Markdown table."""
    engine = EngineConfig(alliance="-")
    recon = ReconConfig()
    blocks = BlockConfig()
    rows = [
        ("protocol versions spoken", f"{list(SUPPORTED_VERSIONS)}"),
        ("versions a hello offers", f"{list(HELLO_VERSIONS)} (3: coded reconcile ranges)"),
        ("maximum frame body", f"{MAX_FRAME_SIZE:,} bytes (configurable)"),
        ("maximum block", f"{MAX_BLOCK_SIZE:,} bytes"),
        ("CIDs per have-only want / have / dont-have", f"{MAX_CIDS_PER_MESSAGE}"),
        ("CIDs per want for blocks", f"{MAX_BLOCKS_PER_WANT}"),
        ("CIDs per announcement (records + heads)", f"{MAX_ANNOUNCE_ITEMS}"),
        (
            "inline blocks per announcement",
            f"at most one per CID; each 1..{MAX_PUSHED_BLOCK:,} bytes, {MAX_PUSHED_TOTAL:,} in all",
        ),
        ("reconcile ranges per frame", f"{MAX_RANGES}"),
        ("reconcile range data", f"{MAX_RANGE_DATA:,} bytes"),
        ("reconcile gifts per frame", f"{MAX_GIFTS}"),
        ("reconcile item key", f"9..{MAX_ITEM_KEY} bytes (8-byte ts + CID)"),
        ("frames per reconcile message", f"{MAX_FRAMES_PER_MESSAGE}"),
        (
            "fingerprint / short id / salt",
            f"{FINGERPRINT_SIZE} / {SHORT_ID_SIZE} / {SALT_SIZE} bytes",
        ),
        ("reconcile buckets / leaf size (local)", f"{recon.buckets} / {recon.leaf_size}"),
        ("messages per reconcile", f"{MAX_SESSION_MESSAGES}"),
        (
            "coded symbols per range / per reconcile received",
            f"{MAX_CODED_SYMBOLS} / {MAX_SESSION_SYMBOLS:,}",
        ),
        (
            "coded symbol / range fingerprint / decoded name",
            f"1 + key width + {SYMBOL_CHECK_SIZE} / {CODED_FINGERPRINT_SIZE} / {CHECK_SIZE} bytes",
        ),
        (
            "coded ranges (local): items / symbols / expected differences per range",
            f"{recon.coded_max_items} / {recon.coded_max_symbols} / {recon.coded_max_estimate:g}",
        ),
        ("blocks in flight per peer / per want", f"{blocks.window} / {blocks.batch}"),
        ("want timeout", f"{blocks.timeout:g} s + {blocks.per_block_timeout:g} s per block"),
        ("hello timeout", f"{engine.hello_timeout:g} s"),
        (
            "reconcile interval / timeout",
            f"{engine.reconcile_interval:g} s / {engine.reconcile_timeout:g} s",
        ),
    ]
    lines = ["| limit | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def sections() -> dict[str, str]:
    """Name -> generated Markdown."""
    return {
        "connection": "```mermaid\n" + mermaid(CONNECTION_TRANSITIONS) + "\n```",
        "reconcile": "```mermaid\n" + mermaid(RECONCILE_TRANSITIONS) + "\n```",
        "scoring": offence_table(),
        "policy": policy_table(),
        "limits": limits_table(),
    }


def _replacer(body: str) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        return match.group(1) + body + "\n" + match.group(2)

    return replace


def render(text: str) -> str:
    """``text`` with every generated section replaced by its current content."""
    for name, body in sections().items():
        pattern = re.compile(
            rf"(<!-- generated:{name} -->\n)(?:.*?\n)?(<!-- /generated:{name} -->)", re.DOTALL
        )
        text = pattern.sub(_replacer(body), text)
    return text


def main(argv: list[str]) -> int:
    """Print the sections, or rewrite a Markdown file's generated sections in place."""
    if len(argv) == 2 and argv[0] == "--write":
        path = Path(argv[1])
        path.write_text(render(path.read_text(encoding="utf-8")), encoding="utf-8")
        return 0
    for name, body in sections().items():
        print(f"<!-- generated:{name} -->\n{body}\n<!-- /generated:{name} -->\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
