"""The ``craftnet`` command: builds the click group and turns errors into one line.

Commands live in small modules (``files``, ``records``, ``bundles``, ``keys``,
``maintenance``); this module only wires them together. Errors are shown as one line
on stderr, ``error: ...``, with exit status 2 for a usage mistake and 1 for everything
else. A user's mistake (any :class:`CraftnetError`, or an ``OSError`` such as a missing
file) never shows a traceback; an unexpected exception shows one line and a hint to
rerun with ``--debug``, which prints the traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from craftnet.cli import bundles, files, keys, maintenance, records, serve
from craftnet.cli.context import HOME_ENV, App, default_home
from craftnet.errors import CraftnetError

EXIT_ERROR = 1
EXIT_USAGE = 2
LOG_ENV = "CRAFTNET_LOG"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging() -> None:
    """Log to stderr at the level named by ``CRAFTNET_LOG`` (``INFO``, ``DEBUG``, ...).

    Unset, Python's default stays: warnings and errors, message only. The lab
    (docs/lab.md) and operators set it to read a hub's refusals and disconnects.
    """
    level = os.environ.get(LOG_ENV, "").strip().upper()
    if not level:
        return
    if not isinstance(logging.getLevelName(level), int):
        raise click.UsageError(
            f"{LOG_ENV}={level!r} is not a log level (DEBUG, INFO, WARNING, ERROR)"
        )
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)


class CraftnetGroup(click.Group):
    """The top-level group; its ``main`` applies craftnet's error rules (also under CliRunner)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; exit with 2 on usage errors, 1 on other errors."""
        argv = list(sys.argv[1:] if args is None else args)
        code = guarded(
            lambda: super(CraftnetGroup, self).main(
                argv, prog_name or "craftnet", complete_var, standalone_mode=False, **extra
            ),
            debug="--debug" in argv,
        )
        if standalone_mode:
            sys.exit(code)
        return code


@click.group(cls=CraftnetGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=HOME_ENV,
    default=None,
    help=f"Directory holding the archive and keys [env {HOME_ENV}; "
    "default: the per-user data directory].",
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
@click.version_option(package_name="craftnet", prog_name="craftnet")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, as_json: bool, debug: bool) -> None:
    """craftnet: the Digital Craft Archive of community fabrication hubs."""
    configure_logging()
    app = App(home if home is not None else default_home(), as_json, debug)
    ctx.obj = app
    ctx.call_on_close(app.close)


for module in (keys, files, records, bundles, maintenance, serve):
    for command in module.COMMANDS:
        cli.add_command(command)

# The alliance and network commands (issue 4's networking part).
for module_name in ("craftnet.cli.alliance", "craftnet.cli.net", "craftnet.cli.lab"):
    for command in importlib.import_module(module_name).COMMANDS:
        cli.add_command(command)

cli.add_command(importlib.import_module("craftnet.cli.sim").sim)  # simnet (issue 6)

if importlib.util.find_spec("craftnet.cli.doc") is not None:
    # The CRDT documents' command group lives in its own module, owned with the CRDTs.
    cli.add_command(importlib.import_module("craftnet.cli.doc").doc)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _fail(message: str, code: int) -> int:
    click.echo(f"error: {_one_line(message)}", err=True)
    return code


def guarded(call: Callable[[], object], debug: bool) -> int:
    """Run ``call`` (the click machinery); turn every error into one line and a status."""
    try:
        result = call()
    except click.UsageError as exc:
        hint = ""
        if exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        return _fail(exc.format_message() + hint, EXIT_USAGE)
    except click.Abort:
        return _fail("aborted", EXIT_ERROR)
    except click.ClickException as exc:
        return _fail(exc.format_message(), exc.exit_code)
    except BrokenPipeError:
        # A reader such as `head` went away; that is not an error worth a message.
        return EXIT_ERROR
    except OSError as exc:
        if debug:
            traceback.print_exc()
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{where}", EXIT_ERROR)
    except CraftnetError as exc:
        if debug:
            traceback.print_exc()
        return _fail(str(exc) or type(exc).__name__, EXIT_ERROR)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:
        if debug:
            traceback.print_exc()
            return _fail(f"unexpected {type(exc).__name__}: {exc}", EXIT_ERROR)
        return _fail(
            f"unexpected {type(exc).__name__}: {exc} (rerun with --debug to see the traceback)",
            EXIT_ERROR,
        )
    return result if isinstance(result, int) else 0


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="craftnet")
