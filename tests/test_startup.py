"""``craftnet.startup.freeze_start_up`` freezes only a process that is a craftnet command.

The real freeze is tested on a real ``craftnet serve`` process
(tests/node/web/test_web_serve.py); here, that a command run inside another program
(this test run, as CliRunner runs commands) leaves that program's collector alone.
"""

from __future__ import annotations

import gc

from craftnet import startup


def test_a_command_inside_another_program_freezes_nothing() -> None:
    assert not startup._whole_process  # pytest is no craftnet entry point
    before = gc.get_freeze_count()
    try:
        assert startup.freeze_start_up(collect=False) == 0
        assert gc.get_freeze_count() == before
    finally:
        if gc.get_freeze_count() != before:
            gc.unfreeze()  # the guard failed: give this process its objects back
