"""Schemathesis (an OpenAPI fuzzer) over the whole API of a demo hub, with a fixed seed.

It generates requests from ``/api/v1/openapi.json`` (valid and invalid ones, and methods
the document does not list) and checks every answer: no server error, only documented
statuses, bodies that match the document, invalid input refused, schema-valid input
accepted (except where a body's rules go beyond JSON Schema: see schemathesis.toml),
and a 405 that says what is allowed. It runs as the ``st`` command, as a user would:
once with the operator's token over every operation, and once as a logged-in artisan
over what artisans write (records and co-edited documents), so that schema-valid
records are really signed and published, not only refused for want of a signer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from craftnet.archive.demo import DEMO_PASSPHRASE
from tests.node.web.web_hub import Hub

CONFIG = Path(__file__).with_name("schemathesis.toml")
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
SEED = "2035"
EXAMPLES = "12"


def run_schemathesis(
    hub: Hub, cwd: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], str]:
    """``st run`` against ``hub`` with the fixed seed; the process and its failures."""
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st is not None, "schemathesis is a test dependency (pip install -e '.[test]')"
    done = subprocess.run(
        [
            st,
            "--config-file",
            str(CONFIG),
            "run",
            f"{hub.url}api/v1/openapi.json",
            "--seed",
            SEED,
            "--max-examples",
            EXAMPLES,
            "--workers",
            "1",
            "--no-color",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,  # st keeps a cache folder where it runs
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
    )
    # The failures, each line cut short (a fuzzed request can be kilobytes of escapes).
    failures = done.stdout.split("WARNINGS")[0].rsplit("FAILURES", 1)[-1]
    report = "\n".join(line[:300] for line in failures.splitlines()[:200]) + done.stderr[-2000:]
    return done, report


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    demo_hub: Hub, tmp_path: Path
) -> None:
    done, report = run_schemathesis(
        demo_hub, tmp_path, "--header", f"Authorization: Bearer {demo_hub.token}"
    )
    assert done.returncode == 0, report
    assert "Tested: 3" in done.stdout, report  # every operation was reached


def test_schemathesis_as_an_artisan_publishes_what_the_schema_allows(
    demo_hub: Hub, tmp_path: Path
) -> None:
    login = demo_hub.request(
        "POST", "/api/v1/session", {"handle": "amaia", "passphrase": DEMO_PASSPHRASE}
    )
    cookie = login.headers["set-cookie"].split(";")[0]
    before = demo_hub.record_count()
    done, report = run_schemathesis(
        demo_hub,
        tmp_path,
        "--header",
        f"Cookie: {cookie}",
        "--header",
        "X-Requested-With: craftnet",
        "--include-path-regex",
        "^/api/v1/(records|documents)",
    )
    assert done.returncode == 0, report
    assert demo_hub.record_count() > before, report  # schema-valid bodies were published
