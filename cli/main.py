"""The ``craftnet`` command: builds the click group and turns errors into one line.

Commands live in small modules (``files``, ``records``, ``bundles``, ``keys``,
``maintenance``); this module only wires them together. Errors are shown as one line
on stderr, ``error: ...`` (with ``--json``: one JSON document,
``{"error": {"code", "message", "exit"}}``), with the exit statuses of :data:`EXIT_CODES`.
A user's mistake (any :class:`CraftnetError`, or an ``OSError`` such as a missing
file) never shows a traceback; an unexpected exception shows one line and a hint to
rerun with ``--debug``, which prints the traceback.

The global options (``--home``, ``--json``, ``--debug``) may stand anywhere before a
``--``, also after the command (``craftnet doc show CID --json``): they are moved to
the front before click parses the line.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from craftnet.cli import bundles, files, keys, maintenance, records, serve
from craftnet.cli.context import HOME_ENV, App, default_home
from craftnet.errors import CraftnetError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# The documented exit statuses (docs/cli.md, "Exit status and errors", which a test
# compares with this table).
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_ERROR: "an error while doing the work (bad data, a failed check, a network failure)",
    EXIT_USAGE: "a usage error: the command line itself is wrong",
    EXIT_INTERRUPTED: "interrupted (Ctrl+C)",
}
_FLAGS = ("--json", "--debug")
_VALUED = ("--home",)


def hoist_global_options(argv: Sequence[str]) -> list[str]:
    """Move the global options, wherever they stand before ``--``, to the front of ``argv``.

    Click only accepts a group's options before the subcommand; scripts write them
    anywhere (``craftnet doc show CID --json``).
    """
    front: list[str] = []
    rest: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in _FLAGS or arg.startswith(tuple(f"{name}=" for name in _VALUED)):
            front.append(arg)
        elif arg in _VALUED and i + 1 < len(args):
            front.extend(args[i : i + 2])
            i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest


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
        argv = hoist_global_options(sys.argv[1:] if args is None else args)
        options = argv[: argv.index("--")] if "--" in argv else argv
        code = guarded(
            lambda: super(CraftnetGroup, self).main(
                argv, prog_name or "craftnet", complete_var, standalone_mode=False, **extra
            ),
            debug="--debug" in options,
            as_json="--json" in options,
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
    metavar="DIR",
    help=f"The hub's home directory: the archive store (store/), the keystore (keys/) and "
    f"the name of the current hub key (hub-key). Default: the environment variable "
    f"{HOME_ENV}, else the per-user data directory (~/.local/share/craftnet on Linux).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON document on stdout instead of tables and text, for scripts. Remarks "
    "for people and progress bars are then suppressed.",
)
@click.option("--debug", is_flag=True, help="Show the Python traceback of an unexpected error.")
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
cli.add_command(importlib.import_module("craftnet.cli.witness").witness)  # issue 13

if importlib.util.find_spec("craftnet.cli.doc") is not None:
    # The CRDT documents' command group lives in its own module, owned with the CRDTs.
    cli.add_command(importlib.import_module("craftnet.cli.doc").doc)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def error_code(exc: BaseException) -> str:
    """The machine name of an error for ``--json``: its class in kebab case, "-error" cut.

    ``NotFound`` is ``not-found``, ``BundleError`` ``bundle``, ``MalformedDid``
    ``malformed-did``; a plain :class:`CraftnetError` is ``error``.
    """
    name = type(exc).__name__
    if name == "CraftnetError":
        return "error"
    words = re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()
    return words.removesuffix("-error") or "error"


class _Failure(Exception):
    """An error already turned into what the user sees: a code, a message and a status."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _report(failure: _Failure, as_json: bool) -> int:
    message = _one_line(failure.message)
    if as_json:
        error = {"code": failure.code, "message": message, "exit": failure.status}
        click.echo(json.dumps({"error": error}, sort_keys=True), err=True)
    else:
        click.echo(f"error: {message}", err=True)
    return failure.status


def guarded(call: Callable[[], object], debug: bool, as_json: bool = False) -> int:
    """Run ``call`` (the click machinery); turn every error into one line and a status."""
    try:
        result = _classified(call, debug)
    except _Failure as failure:
        return _report(failure, as_json)
    return result if isinstance(result, int) else EXIT_OK


def _classified(call: Callable[[], object], debug: bool) -> object:
    """Run ``call``; raise every error it raises as a :class:`_Failure`."""
    try:
        return call()
    except click.UsageError as exc:
        hint = ""
        if exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        raise _Failure("usage", exc.format_message() + hint, EXIT_USAGE) from None
    except click.Abort as exc:
        # Click turns Ctrl+C (and end of input at a prompt) into Abort.
        if isinstance(exc.__cause__, KeyboardInterrupt):
            raise _Failure("interrupted", "interrupted", EXIT_INTERRUPTED) from None
        raise _Failure("aborted", "aborted", EXIT_ERROR) from None
    except click.ClickException as exc:
        raise _Failure("error", exc.format_message(), exc.exit_code) from None
    except BrokenPipeError:
        # A reader such as `head` went away; that is not an error worth a message.
        return EXIT_ERROR
    except OSError as exc:
        if debug:
            traceback.print_exc()
        where = f": {exc.filename}" if exc.filename else ""
        raise _Failure("os", f"{exc.strerror or exc}{where}", EXIT_ERROR) from None
    except CraftnetError as exc:
        if debug:
            traceback.print_exc()
        raise _Failure(error_code(exc), str(exc) or type(exc).__name__, EXIT_ERROR) from None
    except KeyboardInterrupt:
        raise _Failure("interrupted", "interrupted", EXIT_INTERRUPTED) from None
    except Exception as exc:
        if debug:
            traceback.print_exc()
            message = f"unexpected {type(exc).__name__}: {exc}"
        else:
            message = (
                f"unexpected {type(exc).__name__}: {exc} "
                "(rerun with --debug to see the traceback)"
            )
        raise _Failure("unexpected", message, EXIT_ERROR) from None


def main() -> None:
    """Console-script entry point."""
    from craftnet.startup import own_process

    own_process()  # this process is the command: it may freeze its start-up objects
    cli.main(prog_name="craftnet")
