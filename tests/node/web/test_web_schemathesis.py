"""Schemathesis (an OpenAPI fuzzer) over the whole API of a demo hub, with a fixed seed.

It generates requests from ``/api/v1/openapi.json`` (valid and invalid ones, and methods
the document does not list) and checks every answer: no server error, only documented
statuses, bodies that match the document, invalid input refused, schema-valid input
accepted (except where a body's rules go beyond JSON Schema: see schemathesis.toml),
and a 405 that says what is allowed. It runs as the ``st`` command, as a user would.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.node.web.web_hub import Hub

CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = "2035"
EXAMPLES = "12"


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    demo_hub: Hub, tmp_path: Path
) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st is not None, "schemathesis is a test dependency (pip install -e '.[test]')"
    done = subprocess.run(
        [
            st,
            "--config-file",
            str(CONFIG),
            "run",
            f"{demo_hub.url}api/v1/openapi.json",
            "--seed",
            SEED,
            "--max-examples",
            EXAMPLES,
            "--workers",
            "1",
            "--no-color",
            "--header",
            f"Authorization: Bearer {demo_hub.token}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # st keeps a cache folder where it runs
    )
    # The failures, each line cut short (a fuzzed request can be kilobytes of escapes).
    failures = done.stdout.split("WARNINGS")[0].rsplit("FAILURES", 1)[-1]
    report = "\n".join(line[:300] for line in failures.splitlines()[:200]) + done.stderr[-2000:]
    assert done.returncode == 0, report
    assert "Tested: 3" in done.stdout, report  # every operation was reached
