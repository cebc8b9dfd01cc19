"""What a long-running craftnet process does once its start-up is over."""

from __future__ import annotations

import gc
import logging

_log = logging.getLogger("craftnet.startup")
_whole_process = False


def own_process() -> None:
    """Say that this process is one craftnet command or hub, run to its end.

    The entry points (``craftnet``, ``python -m craftnet.node.hub``) call it; only then
    does :func:`freeze_start_up` freeze. A command run inside another program (a test's
    ``CliRunner``, a script) leaves that program's objects to its own collector: frozen,
    the cycles among them would never be freed.
    """
    global _whole_process
    _whole_process = True


def freeze_start_up(*, collect: bool) -> int:
    """Move every object alive now to the cyclic GC's permanent generation; return how many.

    A hub's process holds about 112,000 objects once its imports are done and its store
    is open (modules, functions, classes, the tables of libp2p and aiohttp), and they
    live as long as the process. A full collection walks every one of them (91 ms
    measured, on the thread that serves and syncs), and one sync in three to six met
    one. Frozen, they are never walked again; refcounting frees them as before, only a
    reference cycle among them would now outlive the process. ``collect`` first frees
    the cycles start-up left behind, for a process that runs for days (one full
    collection, once); a one-shot command skips it. Does nothing (returns 0) unless
    :func:`own_process` was called.
    """
    if not _whole_process:
        return 0
    if collect:
        gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    _log.debug("froze %d start-up objects: full collections of the cyclic GC skip them", frozen)
    return frozen
