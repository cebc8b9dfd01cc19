"""Checking many signatures at once, on every core when the batch is big enough to pay.

An Ed25519 check costs about 65 µs in OpenSSL and ``cryptography`` holds the GIL while
it runs, so threads cannot share the work: a large import (a bundle from a USB stick, a
hub catching up after weeks offline) checks its signatures in a pool of worker
processes, one per core. Each check there is the same strict check as
:meth:`PublicKey.verify` (canonical point encodings, no small-order points, S < L);
only the process differs. Small batches are checked in this process: shipping the
messages to a worker and the verdicts back costs more than it saves below
:data:`POOL_MIN` signatures (measured by ``tests/bench/test_bench_identity.py``), and
the pool starts only when the first batch that big arrives.

The workers are plain child processes (``python -m craftnet.identity.batch``) fed
through pipes: never forked from a process that runs threads (the node's event
loops, LMDB's helpers), and never importing the caller's main script again. Each task
names a module-level function and its list of items (pickled by reference), so a
caller above this package can run a larger check there too: :func:`start_map` (record
imports parse, check and verify their blocks there, see ``archive.index``).
:func:`shutdown` stops them, and so does interpreter exit; a worker whose parent dies
sees its pipe close and exits.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any, Final, TypeVar

from craftnet.identity.errors import IdentityError
from craftnet.identity.keys import PublicKey

# Signatures below which a batch is checked in this process. With the pool running, the
# bench measured the crossover at 128 signatures on 2 cores (1.7x faster there, 1.8x
# at 8,192); the margin keeps a loaded machine from paying for shipping small batches.
POOL_MIN: Final = 256
# Starting the workers costs about 0.1 s of CPU (a Python and cryptography each); a
# batch this big starts them in the background and is checked here meanwhile, so no
# batch waits for the start and a small one-off import never pays for it.
POOL_START: Final = 1000
# Signatures per task sent to a worker: big enough that the hand-over is a few
# percent of the work, small enough that the cores finish close together.
TASK_SIZE: Final = 256

Item = tuple[PublicKey, bytes, bytes]  # key, signature, message
RawItem = tuple[bytes, bytes, bytes]  # the key's 32 bytes, signature, message
T = TypeVar("T")
R = TypeVar("R")
# A task's function: a list of items in, one answer per item out, in order. It must be a
# module-level function of an importable module (a worker imports it by name).
PartFn = Callable[[list[T]], list[R]]

_lock = threading.Lock()
_pool: _Pool | None = None
_workers_override: int | None = None


def cores() -> int:
    """How many cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def workers() -> int:
    """How many worker processes a big batch uses (0: every check runs here)."""
    if _workers_override is not None:
        return _workers_override
    count = cores()
    return count if count > 1 else 0


def set_workers(count: int | None) -> None:
    """Use ``count`` worker processes (0 turns the pool off; None: one per core, used
    while the machine has a core to spare). A count set here is used whatever the load."""
    global _workers_override
    if count is not None and count < 0:
        raise ValueError("a worker count is 0 or more")
    shutdown()
    _workers_override = count


def shutdown() -> None:
    """Stop the worker processes, if they run (a later big batch starts them again)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.close()


atexit.register(shutdown)


def verify_many(items: Sequence[Item], *, pool: bool | None = None) -> list[str | None]:
    """Check every ``(key, signature, message)``; for each, None or why it failed.

    ``pool`` forces the choice (True: in worker processes, if any are allowed, started
    and waited for if need be; False: in this process). By default a batch of
    :data:`POOL_START` items starts the pool in the background, and once it runs it
    takes every batch of :data:`POOL_MIN` items or more, while the machine has a core
    to spare (its load average is below the core count less a half).
    A failure reads exactly as the :class:`~craftnet.identity.errors.BadSignature`
    message :meth:`PublicKey.verify` raises.
    """
    return start_verify_many(items, pool=pool)()


def start_verify_many(
    items: Sequence[Item], *, pool: bool | None = None
) -> Callable[[], list[str | None]]:
    """:func:`verify_many` begun now and collected by calling the result: a batch that
    goes to the workers is checked there while the caller does other work (parses the
    next batch); one checked in this process is checked when collected."""
    running = _pool_for(len(items), pool)
    if running is None:
        return lambda: [_check(key, signature, message) for key, signature, message in items]
    return _submit_parts(
        running, _check_raw_batch, [(key.raw, sig, msg) for key, sig, msg in items], TASK_SIZE
    )


def start_map(
    fn: PartFn[T, R],
    items: Sequence[T],
    *,
    pool: bool | None = None,
    task_size: int = TASK_SIZE,
) -> Callable[[], list[R]]:
    """``fn`` over ``items`` in parts of at most ``task_size``, begun now; the result,
    called, gives ``fn``'s answers for all of them in order.

    The parts go to the worker processes on the same terms as :func:`start_verify_many`
    (``pool`` forces the choice likewise); otherwise ``fn`` runs in this process, all of
    it when the result is called. ``fn`` is a module-level function (the workers import
    it by name) that answers each item of its list, in order; a part whose worker died
    is run here.
    """
    running = _pool_for(len(items), pool)
    if running is None:
        return lambda: fn(list(items))
    return _submit_parts(running, fn, items, task_size)


def _pool_for(count_items: int, pool: bool | None) -> _Pool | None:
    """The running pool that takes ``count_items`` items, or None to do them here."""
    count = workers()
    use_pool = count > 0 and count_items > 0 and (count_items >= POOL_MIN if pool is None else pool)
    if pool is None and use_pool and _workers_override is None and not _idle_core(count):
        use_pool = False
    running = (
        _running_pool(count, start=count_items >= POOL_START or pool is True) if use_pool else None
    )
    if running is not None and pool is True:
        running.wait_ready()
    if running is None or not running.ready.is_set():
        return None
    return running


def _submit_parts(
    running: _Pool, fn: PartFn[T, R], items: Sequence[T], task_size: int
) -> Callable[[], list[R]]:
    """Send ``items`` to the workers in parts (spread over every worker for a small
    batch); the result collects the answers in order."""
    size = max(1, min(task_size, -(-len(items) // running.workers)))
    tasks = [
        running.submit(fn, list(items[start : start + size]))
        for start in range(0, len(items), size)
    ]

    def collect() -> list[R]:
        answers: list[R] = []
        for task in tasks:
            answers.extend(task.result())
        return answers

    return collect


def pool_ready(*, start: bool) -> bool:
    """Whether the worker processes run, have answered, and the machine has a core to
    spare for them; with ``start``, they are started in the background if they do not
    run yet (so a caller that checks many small batches can switch once they are up)."""
    count = workers()
    running = _running_pool(count, start=start) if count > 0 else None
    if running is None or not running.ready.is_set():
        return False
    return _workers_override is not None or _idle_core(count)


def _idle_core(count: int) -> bool:
    """Whether the machine seems to have a core to spare beyond this process's own.

    Workers only pay on idle cores: on the shared 2-core development machine at load 5
    they checked no faster than one process, and the shipping made an import slower.
    The one-minute load average counts this process's own work too, hence the margin.
    """
    try:
        load = os.getloadavg()[0]
    except OSError:
        return True
    return load < min(count, cores()) - 0.5


def _running_pool(count: int, *, start: bool) -> _Pool | None:
    """The pool if it runs (or starts), starting it in the background if ``start``."""
    global _pool
    with _lock:
        if _pool is None and start and count > 0:
            _pool = _Pool(count)
        return _pool


class _Pool:
    """Worker processes (``python -m craftnet.identity.batch``), one thread driving each.

    Plain child processes on pipes rather than :mod:`multiprocessing`: its start methods
    either fork a process that runs threads or import the caller's main script again.
    A worker that dies is replaced, and its task is run here instead.
    """

    def __init__(self, count: int) -> None:
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._all = [_Worker() for _ in range(count)]
        self.workers = count
        for worker in self._all:
            self._idle.put(worker)
        self._threads = ThreadPoolExecutor(count, thread_name_prefix="craftnet-verify")
        self.ready = threading.Event()  # set once every worker has answered once
        warm = [self._threads.submit(self._run, _check_raw_batch, []) for _ in self._all]
        threading.Thread(target=self._warm, args=(warm,), daemon=True).start()

    def _warm(self, answers: list[Future[list[str | None]]]) -> None:
        for answer in answers:
            answer.exception()  # a worker that died at start was replaced: ready anyway
        self.ready.set()

    def wait_ready(self) -> None:
        self.ready.wait()

    def submit(self, fn: PartFn[T, R], part: list[T]) -> Future[list[R]]:
        return self._threads.submit(self._run, fn, part)

    def _run(self, fn: PartFn[T, R], part: list[T]) -> list[R]:
        worker = self._idle.get()
        try:
            answer: list[R] = worker.ask(fn, part)
            return answer
        except (OSError, EOFError, pickle.UnpicklingError, ValueError):
            worker.close()
            worker = _Worker()
            return fn(part)
        finally:
            self._idle.put(worker)

    def close(self) -> None:
        self._threads.shutdown(wait=True)
        for worker in self._all:
            worker.close()
        while not self._idle.empty():
            self._idle.get().close()


class _Worker:
    """One child process answering length-prefixed pickled tasks on its stdin: a task
    is ``(function, items)`` and its answer the function's list for them."""

    def __init__(self) -> None:
        # The parent's import path, so the worker finds this craftnet however the
        # parent was started (installed, editable, or from a source tree).
        path = os.pathsep.join(entry for entry in sys.path if entry)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "craftnet.identity.batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
            env={**os.environ, "PYTHONPATH": path},
        )

    def ask(self, fn: PartFn[T, R], part: list[T]) -> list[R]:
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None and stdout is not None
        _send(stdin, (fn, part))
        answer = _receive(stdout)
        if not isinstance(answer, list) or len(answer) != len(part):
            raise ValueError("a signature worker answered out of turn")
        return answer

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


_LENGTH: Final = struct.Struct(">I")


def _send(stream: IO[bytes], value: object) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    # Only between this process and the children it started: pickle is safe here.
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        raise EOFError("the signature worker closed its pipe")
    (size,) = _LENGTH.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the signature worker closed its pipe mid-answer")
    return pickle.loads(data)


def _check(key: PublicKey, signature: bytes, message: bytes) -> str | None:
    try:
        key.verify(signature, message)
    except IdentityError as exc:
        return str(exc)
    return None


@functools.lru_cache(maxsize=4096)
def _key(raw: bytes) -> PublicKey:
    return PublicKey(raw)


def _check_raw_batch(items: list[RawItem]) -> list[str | None]:
    """The strict check of each item, keys rebuilt (and checked) from their raw bytes."""
    verdicts: list[str | None] = []
    for raw, signature, message in items:
        try:
            key = _key(raw)
        except IdentityError as exc:
            verdicts.append(str(exc))
            continue
        verdicts.append(_check(key, signature, message))
    return verdicts


def _serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """A worker's loop: tasks in, answers out, until the parent closes the pipe."""
    while True:
        try:
            fn, items = _receive(stdin)
        except EOFError:
            return
        _send(stdout, fn(items))


if __name__ == "__main__":
    _serve(sys.stdin.buffer, sys.stdout.buffer)
