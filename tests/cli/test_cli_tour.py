"""The README's five-minute tour, run as written, with the real ``craftnet`` executable.

Every ```sh block of the "A five-minute tour" section is joined into one bash script
and run with ``set -euo pipefail`` in a scratch HOME, so a command that fails, or a
README that drifts from the CLI, fails this test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BIN = Path(sys.executable).parent


def tour_script() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## A five-minute tour", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) >= 5, "the tour lost its command blocks"
    return "\n".join(blocks)


@pytest.mark.slow
def test_readme_tour_runs(tmp_path: Path) -> None:
    script = tour_script()
    for command in ("init", "add", "publish", "show", "ls", "provenance", "export", "import",
                    "verify", "gc"):
        assert f"craftnet {command}" in script or f"craftnet --home ~/other-hub {command}" in script
    usb = tmp_path / "usb"
    usb.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAFTNET_")}
    env.update(HOME=str(tmp_path), USB=str(usb), PATH=f"{BIN}{os.pathsep}{env['PATH']}")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "the lamp file arrived intact" in result.stdout
    assert "Neo-Vernacular table lamp" in result.stdout
    assert (usb / "lamps.car").stat().st_size > 3_000_000
