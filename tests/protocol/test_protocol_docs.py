"""docs/protocol.md stays in step with the code: generated parts, messages, fields."""

from __future__ import annotations

from pathlib import Path

from craftnet.protocol.messages import _FIELD_NAMES, MESSAGE_TYPES
from craftnet.protocol.scoring import OFFENCES
from craftnet.protocol.spec import main, render, sections

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_generated_sections_are_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert render(text) == text, "run: python -m craftnet.protocol.spec --write docs/protocol.md"
    for name in sections():
        assert f"<!-- generated:{name} -->" in text


def test_every_message_and_field_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for kind in MESSAGE_TYPES:
        assert f"| `{kind}` |" in text, kind
        for field in _FIELD_NAMES[kind]:
            assert f"`{field}`" in text, (kind, field)


def test_every_offence_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name in OFFENCES:
        assert f"`{name}`" in text


def test_the_spec_command_prints_every_section(capsys: object) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "stateDiagram-v2" in out and "| offence |" in out


def test_render_replaces_stale_and_empty_sections() -> None:
    for stale in (
        "<!-- generated:limits -->\nold table\n<!-- /generated:limits -->",
        "<!-- generated:limits -->\n<!-- /generated:limits -->",
    ):
        fresh = render(stale)
        assert "old table" not in fresh and "| limit | value |" in fresh
        assert render(fresh) == fresh
