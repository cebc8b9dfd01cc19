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
import collections
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
from concurrent.futures import Future
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
    size = max(1, min(task_size, -(-len(items) // len(running.workers))))
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
    """Worker processes (``python -m craftnet.identity.batch``), two threads serving each.

    Plain child processes on pipes rather than :mod:`multiprocessing`: its start methods
    either fork a process that runs threads or import the caller's main script again.
    A task goes to the worker with the fewest in hand, and is written to its pipe at
    once (by the worker's sender thread), so a worker finds its next task waiting when
    it answers one: with one task at a time, each answer cost the worker a round trip
    of idling (the parent's threads wait for a core and the GIL on a busy machine). A
    worker that dies is replaced, and the tasks it held are run here instead.
    """

    def __init__(self, count: int) -> None:
        self._lock = threading.Lock()
        self._all = [_Worker() for _ in range(count)]
        self.workers = tuple(self._all)  # as started (a replacement is not listed)
        self.ready = threading.Event()  # set once every worker has answered once
        warm = [self.submit(_check_raw_batch, []) for _ in range(count)]
        threading.Thread(target=self._warm, args=(warm,), daemon=True).start()

    def _warm(self, answers: list[Future[list[str | None]]]) -> None:
        for answer in answers:
            answer.exception()  # a worker that died at start was replaced: ready anyway
        self.ready.set()

    def wait_ready(self) -> None:
        self.ready.wait()

    def submit(self, fn: PartFn[T, R], part: list[T]) -> Future[list[R]]:
        """Hand ``fn(part)`` to the worker with the fewest tasks in hand."""
        with self._lock:
            while True:
                place = min(range(len(self._all)), key=lambda i: self._all[i].in_hand)
                worker = self._all[place]
                future = worker.submit(fn, part)
                if future is not None:
                    return future
                worker.close()  # it died: a new one takes its place
                self._all[place] = _Worker()

    def close(self) -> None:
        """Stop every worker once it has answered what it was given."""
        with self._lock:
            workers = list(self._all)
        for worker in workers:
            worker.close()


_Task = tuple["Future[Any]", Callable[[list[Any]], list[Any]], list[Any]]


class _Worker:
    """One child process answering length-prefixed pickled tasks on its stdin, in
    order: a task is ``(function, items)`` and its answer the function's list for them.

    A sender thread writes the tasks (a write blocks while the child is busy) and a
    reader thread hands each answer to its task's future; when the child dies, the
    reader runs the tasks it held in this process instead.
    """

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
        self._lock = threading.Lock()
        self._held: collections.deque[_Task] = collections.deque()  # sent or to send
        self._outbox: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._dead = False
        self._sender = threading.Thread(target=self._send_tasks, daemon=True)
        self._reader = threading.Thread(target=self._read_answers, daemon=True)
        self._sender.start()
        self._reader.start()

    @property
    def in_hand(self) -> int:
        """How many tasks it has been given and not answered."""
        return len(self._held)

    def submit(self, fn: PartFn[T, R], part: list[T]) -> Future[list[R]] | None:
        """Queue ``fn(part)``; None if the child has died (the caller replaces it)."""
        future: Future[list[R]] = Future()
        with self._lock:
            if self._dead:
                return None
            task: _Task = (future, fn, part)
            self._held.append(task)
        self._outbox.put(task)
        return future

    def _send_tasks(self) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        while True:
            task = self._outbox.get()
            if task is None:
                break
            try:
                _send(stdin, (task[1], task[2]))
            except (OSError, ValueError, pickle.PicklingError):
                break  # the child is gone: the reader sees its pipe close
        with contextlib.suppress(OSError):
            stdin.close()

    def _read_answers(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        while True:
            try:
                answer = _receive(stdout)
            except (OSError, EOFError, pickle.UnpicklingError, ValueError):
                break
            with self._lock:
                task = self._held.popleft() if self._held else None
            if task is None:
                break  # an answer nobody asked for: treat the child as broken
            future, _, part = task
            if not isinstance(answer, list) or len(answer) != len(part):
                self._run_here(task)
                break
            future.set_result(answer)
        with self._lock:
            self._dead = True
            orphans = list(self._held)
            self._held.clear()
        for task in orphans:
            self._run_here(task)

    @staticmethod
    def _run_here(task: _Task) -> None:
        future, fn, part = task
        if future.done():
            return
        try:
            future.set_result(fn(part))
        except BaseException as exc:  # the caller meets it when it collects the answer
            future.set_exception(exc)

    def close(self) -> None:
        """Stop the child once it has answered what it was given."""
        self._outbox.put(None)
        self._sender.join()
        try:
            self.proc.wait(timeout=5 + 5 * self.in_hand)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join()
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
