"""One lab hub: its home, its ``craftnet serve`` process, its CLI calls and its HTTP API.

Every child's stderr (and ``serve``'s stdout) is read by a thread as it is written and
stored line by line with the time it arrived (:func:`craftnet.node.lab.logs.stamp`);
waiting for a hub to be ready is waiting for its lines, never a fixed sleep. Children
run in a session of their own, so a Ctrl+C at the terminal reaches the lab, which then
stops them itself (:meth:`LabHub.close`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import IO, Any, Final

from craftnet.node.lab.errors import LabError
from craftnet.node.lab.logs import stamp

START_TIMEOUT: Final = 90.0  # a loaded 2-core machine starts a hub in a few seconds
STOP_TIMEOUT: Final = 30.0
CLI_TIMEOUT: Final = 120.0
HTTP_TIMEOUT: Final = 10.0
_SERVING: Final = re.compile(r"serving at (?P<url>http://\S+?)/?$")
_LISTENING: Final = re.compile(
    r"listening on (?P<addr>/ip4/127\.0\.0\.1/tcp/\d+/p2p/(?P<peer>\w+))"
)
_TOKEN: Final = re.compile(r"API token.*: (?P<token>cnt_\S+)")
_READY: Final = re.compile(r"press Ctrl\+C to stop")  # serve's last start-up line, after the token
_NO_NETWORK: Final = re.compile(r"networking off|did not start")


class LogFile:
    """A log file several reader threads append stamped lines to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, at: float, line: str) -> None:
        """Append one line with its arrival time."""
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(stamp(at, line) + "\n")


class Child:
    """A child process whose output lines are stamped, stored and waitable."""

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str],
        log: LogFile,
        *,
        log_stdout: bool,
        hide: Callable[[str], str] = lambda line: line,
    ) -> None:
        self.argv = list(argv)
        self.log = log
        self.hide = hide
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._seen = threading.Condition()
        try:
            self.proc = subprocess.Popen(
                self.argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise LabError(f"cannot run {self.argv[0]}: {exc}") from exc
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._threads = [
            threading.Thread(
                target=self._pump, args=(self.proc.stdout, self.stdout, log_stdout), daemon=True
            ),
            threading.Thread(
                target=self._pump, args=(self.proc.stderr, self.stderr, True), daemon=True
            ),
        ]
        for thread in self._threads:
            thread.start()

    def _pump(self, stream: IO[bytes], lines: list[str], keep: bool) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if keep:
                self.log.write(time.time(), self.hide(line))
            with self._seen:
                lines.append(line)
                self._seen.notify_all()
        with self._seen:
            self._seen.notify_all()

    def running(self) -> bool:
        """Has it not exited yet?"""
        return self.proc.poll() is None

    def wait_line(self, found: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``found()`` (checked whenever a line arrives) or the child exits."""
        deadline = time.monotonic() + timeout
        with self._seen:
            while not found():
                left = deadline - time.monotonic()
                if left <= 0 or (
                    not self.running() and not any(t.is_alive() for t in self._threads)
                ):
                    return found()
                self._seen.wait(min(left, 0.5))
        return True

    def signal(self, signum: int) -> None:
        """Send a signal (nothing if it already exited)."""
        if self.running():
            os.kill(self.proc.pid, signum)

    def wait(self, timeout: float) -> int | None:
        """Wait for the exit (and the last lines); the status, or None on timeout."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        for thread in self._threads:
            thread.join(5)
        return code

    def tail(self, lines: int = 5) -> str:
        """The last stderr lines, for an error message."""
        return " | ".join(line.strip() for line in self.stderr[-lines:] if line.strip())

    def error(self) -> str | None:
        """A craftnet command's one error: ``error: ...``, or with --json ``{"error": ...}``."""
        for line in reversed(self.stderr):
            if line.startswith("error: "):
                return line
            if line.startswith('{"error"'):
                try:
                    return "error: " + str(json.loads(line)["error"]["message"])
                except (ValueError, KeyError, TypeError):
                    return line
        return None


# `craftnet` with its log records at INFO on stderr, whether or not that build reads
# CRAFTNET_LOG: the console script's own entry point, after one logging.basicConfig.
LAUNCH: Final = (
    "import logging, sys\n"
    "logging.basicConfig(level=logging.INFO, stream=sys.stderr,\n"
    "                    format='%(asctime)s %(levelname)s %(name)s: %(message)s')\n"
    "from craftnet.cli.main import main\n"
    "sys.argv[0] = 'craftnet'\n"
    "main()\n"
)


def python_of(craftnet: Path) -> Path | None:
    """The Python interpreter of a ``craftnet`` console script (its ``#!`` line), if any."""
    try:
        with craftnet.open("rb") as script:
            first = script.readline(4096).decode("utf-8", "replace").strip()
    except OSError as exc:
        raise LabError(f"cannot read {craftnet}: {exc.strerror or exc}") from exc
    if first.startswith("#!") and first[2:].split() and Path(first[2:].split()[0]).exists():
        return Path(first[2:].split()[0])
    return None


def launcher(craftnet: Path) -> tuple[str, ...]:
    """How the lab runs ``craftnet``: its Python with :data:`LAUNCH`, else the file itself."""
    python = python_of(craftnet)
    if python is None:
        return (str(craftnet),)
    # -I: nothing from the lab's environment or folder shadows the tested installation.
    return (str(python), "-I", "-u", "-c", LAUNCH)


class State(Enum):
    """Where a hub's ``craftnet serve`` is."""

    NEW = "new"  # not initialised yet
    DOWN = "down"
    RUNNING = "running"
    PAUSED = "paused"  # SIGSTOPped


@dataclass
class LabHub:
    """One hub of the lab: home, port, identity, process and what happened to it."""

    name: str
    home: Path
    port: int
    command: tuple[str, ...]  # how to run `craftnet` (see :func:`launcher`)
    hostile: bool = False
    bootstrap_only: str = ""  # dial only this hub's address at start ("" = every member)
    did: str = ""
    dids: list[str] = field(default_factory=list)  # every hub key it has had, oldest first
    peer_id: str = ""
    url: str = ""
    token: str = ""
    state: State = State.NEW
    serve: Child | None = None
    counts: dict[str, int] = field(default_factory=dict)
    exits: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.log = LogFile(self.home / "serve.log")
        self.cli_log = LogFile(self.home / "cli.log")

    # ------------------------------------------------------------------ identity

    @property
    def listen(self) -> str:
        """Where the hub listens for other hubs."""
        return f"/ip4/127.0.0.1/tcp/{self.port}"

    @property
    def address(self) -> str:
        """The multiaddr other hubs dial (known after the first start)."""
        return f"{self.listen}/p2p/{self.peer_id}" if self.peer_id else ""

    def count(self, what: str, by: int = 1) -> None:
        """Count one more event of a kind (restart, kill, pause, ...)."""
        self.counts[what] = self.counts.get(what, 0) + by

    def env(self) -> dict[str, str]:
        """The environment of its commands: its home, INFO logs, no inherited settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRAFTNET_")}
        env.update(CRAFTNET_HOME=str(self.home), CRAFTNET_LOG="INFO", PYTHONUNBUFFERED="1")
        return env

    # ------------------------------------------------------------------ CLI

    def spawn(self, *args: str) -> Child:
        """Start ``craftnet ARGS`` in this hub's home (its stderr goes to cli.log)."""
        self.cli_log.write(time.time(), "$ craftnet " + _shown(args))
        return Child([*self.command, *args], self.env(), self.cli_log, log_stdout=False)

    def run(self, *args: str, timeout: float = CLI_TIMEOUT) -> Child:
        """Run ``craftnet ARGS`` in this hub's home to the end."""
        child = self.spawn(*args)
        if child.wait(timeout) is None:
            child.signal(signal.SIGKILL)
            child.wait(STOP_TIMEOUT)
            raise LabError(f"{self.name}: 'craftnet {_shown(args)}' took over {timeout:.0f}s")
        return child

    def cli(self, *args: str, timeout: float = CLI_TIMEOUT) -> Any:
        """Run ``craftnet --json ARGS``; its JSON answer, or LabError with its error line."""
        child = self.run("--json", *args, timeout=timeout)
        code = child.proc.returncode
        if code != 0:
            why = child.error() or child.tail()
            raise LabError(f"{self.name}: 'craftnet {_shown(args)}' exit {code}: {why}")
        text = "\n".join(child.stdout).strip()
        try:
            return json.loads(text) if text.startswith(("{", "[")) else text
        except ValueError as exc:
            raise LabError(
                f"{self.name}: 'craftnet {args[0]}' printed no JSON: {text[:200]}"
            ) from exc

    # ------------------------------------------------------------------ serve

    def start(self, bootstrap: Sequence[str], timeout: float = START_TIMEOUT) -> float:
        """Start ``craftnet serve``; returns once it serves HTTP and listens (seconds taken)."""
        if self.state in (State.RUNNING, State.PAUSED):
            raise LabError(f"{self.name} is already running")
        argv = [*self.command, "serve", "--port", "0", "--listen", self.listen, "--no-mdns"]
        for addr in bootstrap:
            argv += ["--bootstrap", addr]
        began = time.monotonic()
        self.log.write(time.time(), f"lab: starting with {len(bootstrap)} bootstrap hub(s)")
        child = Child(argv, self.env(), self.log, log_stdout=True, hide=_hide_token)
        self.serve = child
        ready = child.wait_line(
            lambda: (
                (
                    _find(_READY, child.stdout) is not None
                    and _find(_LISTENING, child.stderr) is not None
                )
                or _find(_NO_NETWORK, child.stderr) is not None
            ),
            timeout,
        )
        if not ready or _find(_NO_NETWORK, child.stderr) is not None:
            tail = child.tail()
            child.signal(signal.SIGKILL)
            child.wait(STOP_TIMEOUT)
            self.state = State.DOWN
            raise LabError(f"{self.name}: craftnet serve did not start its network: {tail}")
        serving = _find(_SERVING, child.stdout)
        listening = _find(_LISTENING, child.stderr)
        assert serving is not None and listening is not None
        self.url = serving["url"]
        self.peer_id = listening["peer"]
        token = _find(_TOKEN, child.stdout)
        if token is not None:
            self.token = token["token"]  # printed once, at the first start
        self.state = State.RUNNING
        return time.monotonic() - began

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM and wait; a hub that does not stop in time is killed (and noted)."""
        child = self._child()
        if self.state is State.PAUSED:
            child.signal(signal.SIGCONT)
        child.signal(signal.SIGTERM)
        code = child.wait(timeout)
        clean = code is not None
        if code is None:
            child.signal(signal.SIGKILL)
            code = child.wait(STOP_TIMEOUT)
        self._exited(code, "stop", clean)
        return code

    def kill(self) -> int | None:
        """``kill -9``."""
        child = self._child()
        child.signal(signal.SIGKILL)
        code = child.wait(STOP_TIMEOUT)
        self._exited(code, "kill", True)
        return code

    def pause(self) -> None:
        """SIGSTOP: the hub stops dead, its connections stay open."""
        self._child().signal(signal.SIGSTOP)
        self.state = State.PAUSED

    def resume(self) -> None:
        """SIGCONT."""
        self._child().signal(signal.SIGCONT)
        self.state = State.RUNNING

    def alive(self) -> bool:
        """Is its serve process still there (running or paused)?"""
        return self.serve is not None and self.serve.running()

    def note_crash(self) -> bool:
        """If serve exited on its own, record it and mark the hub down; True if so."""
        if self.state in (State.RUNNING, State.PAUSED) and self.serve and not self.serve.running():
            self._exited(self.serve.wait(STOP_TIMEOUT), "crash", False)
            return True
        return False

    def _child(self) -> Child:
        if self.serve is None or self.state not in (State.RUNNING, State.PAUSED):
            raise LabError(f"{self.name} is not running")
        return self.serve

    def _exited(self, code: int | None, how: str, clean: bool) -> None:
        self.state = State.DOWN
        self.exits.append({"at": time.time(), "how": how, "code": code, "clean": clean})
        self.log.write(time.time(), f"lab: {how}: exit {code}")

    def close(self) -> None:
        """Stop whatever still runs (end of the lab, or an error)."""
        if self.serve is not None and self.serve.running():
            self.serve.signal(signal.SIGCONT)
            self.serve.signal(signal.SIGTERM)
            if self.serve.wait(STOP_TIMEOUT) is None:
                self.serve.signal(signal.SIGKILL)
                self.serve.wait(STOP_TIMEOUT)
        self.state = State.DOWN if self.state is not State.NEW else State.NEW

    # ------------------------------------------------------------------ HTTP

    def get(self, path: str, timeout: float = HTTP_TIMEOUT) -> Any:
        """``GET /api/v1/<path>`` as JSON."""
        return self._http(urllib.request.Request(f"{self.url}/api/v1/{path}"), timeout)

    def post(self, path: str, body: Any, timeout: float = HTTP_TIMEOUT) -> Any:
        """``POST /api/v1/<path>`` with the API token; the JSON answer."""
        request = urllib.request.Request(
            f"{self.url}/api/v1/{path}",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method="POST",
        )
        return self._http(request, timeout)

    def _http(self, request: urllib.request.Request, timeout: float) -> Any:
        if self.state is not State.RUNNING:
            raise LabError(f"{self.name} is {self.state.value}: no HTTP")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace")
            raise LabError(
                f"{self.name}: HTTP {exc.code} from {request.full_url}: {detail}"
            ) from exc
        except (OSError, ValueError) as exc:
            raise LabError(f"{self.name}: {request.full_url}: {exc}") from exc


def _find(pattern: re.Pattern[str], lines: list[str]) -> re.Match[str] | None:
    for line in lines:
        found = pattern.search(line)
        if found is not None:
            return found
    return None


def _shown(args: Sequence[str]) -> str:
    """A command line for messages: long arguments (invitation tokens) cut short."""
    return " ".join(a if len(a) <= 60 else a[:40] + "..." for a in args)


def _hide_token(line: str) -> str:
    return _TOKEN.sub("API token: (kept by the lab)", line) if "API token" in line else line
