"""Drawing a provenance graph as SVG: generations in rows, remixes as arrows.

Ancestors are drawn above the design, descendants below, one row per generation. Each
box shows the title, a short author id, the licence and a badge for attestations (a
Living Heritage "Human Treasure", a skill). An edge whose licence check found an error
is drawn thick, red and dashed, with a label, so a conflict is visible without colour too.
"""

from __future__ import annotations

from html import escape
from typing import Any, Final

BOX_W: Final = 260
BOX_H: Final = 74
GAP_X: Final = 40
GAP_Y: Final = 70
MARGIN: Final = 20


def short_did(did: str | None) -> str:
    """A did:key shortened for a label."""
    if not did:
        return "unknown"
    tail = did.rsplit(":", 1)[-1]
    return f"{tail[:6]}…{tail[-4:]}" if len(tail) > 12 else tail


def _clip(text: str | None, limit: int) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _row(node: dict[str, Any]) -> int:
    depth = int(node["depth"])
    return -depth if node["role"] == "ancestor" else depth


def render_svg(graph: dict[str, Any], names: dict[str, str] | None = None) -> str:
    """The SVG markup of a provenance graph (as :meth:`ProvenanceGraph.to_dict` gives it)."""
    names = names or {}
    nodes = graph["nodes"]
    rows: dict[int, list[dict[str, Any]]] = {}
    for node in nodes:
        rows.setdefault(_row(node), []).append(node)
    ordered = sorted(rows)
    widest = max(len(row) for row in rows.values())
    # Room on the right for an edge's "licence conflict" label.
    width = MARGIN * 2 + widest * BOX_W + (widest - 1) * GAP_X + 130
    height = MARGIN * 2 + len(ordered) * BOX_H + (len(ordered) - 1) * GAP_Y
    where: dict[str, tuple[float, float]] = {}
    for r, key in enumerate(ordered):
        row = sorted(rows[key], key=lambda n: n["cid"])
        row_w = len(row) * BOX_W + (len(row) - 1) * GAP_X
        x0 = (width - 130 - row_w) / 2
        for i, node in enumerate(row):
            where[node["cid"]] = (x0 + i * (BOX_W + GAP_X), MARGIN + r * (BOX_H + GAP_Y))
    conflicts = {
        (w["child"], w["parent"]): w for w in graph["warnings"] if w["severity"] == "error"
    }
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" class="provenance" '
        f'viewBox="0 0 {width} {height}" '
        # A group, not role="img": an image may not hold the focusable links of its nodes.
        f'width="{width}" height="{height}" role="group" '
        f'aria-label="Provenance graph with {len(nodes)} designs">',
        "<defs><marker id='arrow' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='8' "
        "markerHeight='8' orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z' "
        "fill='#444'/></marker><marker id='arrow-bad' viewBox='0 0 10 10' refX='9' refY='5' "
        "markerWidth='8' markerHeight='8' orient='auto-start-reverse'><path d='M0,0 L10,5 "
        "L0,10 z' fill='#b00020'/></marker></defs>",
    ]
    for edge in graph["edges"]:
        if edge["child"] not in where or edge["parent"] not in where:
            continue
        px, py = where[edge["parent"]]
        cx, cy = where[edge["child"]]
        x1, y1 = px + BOX_W / 2, py + BOX_H
        x2, y2 = cx + BOX_W / 2, cy
        if cy < py:  # drawn upward if a cycle puts a child above its parent
            y1, y2 = py, cy + BOX_H
        bad = conflicts.get((edge["child"], edge["parent"]))
        if bad is not None:
            parts.append(
                f'<g class="edge conflict"><title>{escape(bad["message"])}</title>'
                f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" '
                'stroke="#b00020" stroke-width="4" stroke-dasharray="8 5" '
                'marker-end="url(#arrow-bad)"/>'
                f'<text x="{(x1 + x2) / 2 + 8:.0f}" y="{(y1 + y2) / 2:.0f}" fill="#b00020" '
                f'font-size="13" font-weight="bold">⚠ licence conflict</text></g>'
            )
        else:
            parts.append(
                f'<line class="edge" x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" '
                'stroke="#444" stroke-width="2" marker-end="url(#arrow)"/>'
            )
    for node in nodes:
        x, y = where[node["cid"]]
        root = node["role"] == "root"
        present = node["status"] == "present"
        fill = "#fff7e0" if root else ("#ffffff" if present else "#eeeeee")
        stroke = "#7a4b00" if root else "#555"
        title = node["title"] or ("(not on this hub)" if not present else node["type"] or "record")
        author = names.get(node["author"] or "", short_did(node["author"]))
        badges = []
        for att in node.get("attestations", []):
            if att["kind"] == "living-heritage" and "★ Human Treasure" not in badges:
                badges.append("★ Human Treasure")
            elif att["kind"] == "skill" and att.get("level") and f"✓ {att['level']}" not in badges:
                badges.append(f"✓ {att['level']}")
        href = f"/records/{node['cid']}"
        parts.append(
            f'<a href="{escape(href)}" class="node" data-cid="{escape(node["cid"])}">'
            f"<title>{escape(title)} by {escape(author)}</title>"
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="8" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="{3 if root else 1.5}"/>'
            f'<text x="{x + 10:.0f}" y="{y + 22:.0f}" font-size="14" font-weight="bold" '
            f'fill="#1a1a1a">{escape(_clip(title, 28))}</text>'
            f'<text x="{x + 10:.0f}" y="{y + 41:.0f}" font-size="12" fill="#333">'
            f"by {escape(_clip(author, 28))}</text>"
            f'<text x="{x + 10:.0f}" y="{y + 60:.0f}" font-size="12" fill="#333">'
            f"{escape(node['licence'] or '')} {escape(' '.join(badges))}</text></a>"
        )
    parts.append("</svg>")
    return "".join(parts)
