"""A replicated growable array (RGA) of runs, for ordered lists and character-level text.

Every element has an id ``(op key, change index, offset)`` and was inserted after an
*origin* element (or at the start). The order is the RGA tree order: an element comes
right after its origin, and elements inserted after the same origin are ordered newest
first (greater id first). Because an operation's HLC is greater than those of all the
operations it saw, every element's id is greater than its origin's, and the tree order
can be maintained in a flat list: to insert ``e`` after ``p``, start right after ``p``
and skip every element whose id is greater than ``e``'s.

Runs: one change inserts a string of characters, each the origin of the next, so they
are stored as one :class:`Run` and skipped as one (they share the key that the scan
compares). A run is split only when another insert lands inside it or a delete covers
part of it. A run of a list holds exactly one element.

Concurrent runs never interleave: a run's characters are a chain of origins, so a
concurrent insert after the same origin goes wholly before or wholly after the chain.

Runs live in blocks of at most ``2 * BLOCK`` runs, so finding a run's position and
inserting next to it costs O(BLOCK + blocks) rather than O(runs).
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Iterator
from typing import Any, Final

BLOCK: Final = 64

Key = tuple[int, str, bytes, int]  # (HLC, author, op CID bytes, change index)


class Run:
    """Consecutive elements inserted by one change, visible or deleted together."""

    __slots__ = ("block", "content", "deleted", "key", "length", "start")

    def __init__(self, key: Key, start: int, length: int, content: Any) -> None:
        self.key = key
        self.start = start  # offset of the first element within its change
        self.length = length
        self.content = content  # str for text (None once deleted), any value for lists
        self.deleted = False
        self.block: _Block | None = None

    def __repr__(self) -> str:
        return f"Run({self.key[3]}@{self.key[2][-4:].hex()}+{self.start}, {self.content!r})"


class _Block:
    __slots__ = ("index", "runs")

    def __init__(self, runs: list[Run], index: int) -> None:
        self.runs = runs
        self.index = index
        for run in runs:
            run.block = self


class Sequence:
    """An RGA of runs; ``text`` sequences hold strings, lists hold one value per run."""

    __slots__ = ("_string", "blocks", "fragments", "text", "visible")

    def __init__(self, *, text: bool) -> None:
        self.text = text
        self.blocks: list[_Block] = [_Block([], 0)]
        # op CID bytes -> the run it inserted here or, when it made several or a run was
        # split, a list of them sorted by (change index, start). Keyed by the CID object
        # the runs' keys already hold, so the index costs one dict slot per operation.
        self.fragments: dict[bytes, Run | list[Run]] = {}
        self.visible = 0  # number of visible elements
        self._string: str | None = None  # the visible text, until the next change

    # -- lookups ----------------------------------------------------------------------

    def has(self, cid: bytes, index: int, offset: int = 0) -> bool:
        """Tell whether element ``(cid, index, offset)`` is in the sequence."""
        return self.find(cid, index, offset) is not None

    def find(self, cid: bytes, index: int, offset: int = 0) -> Run | None:
        """The run holding element ``(cid, index, offset)``, or None."""
        entry = self.fragments.get(cid)
        if entry is None:
            return None
        if type(entry) is Run:
            run = entry
        else:
            assert isinstance(entry, list)
            at = bisect_right(entry, (index, offset), key=_position) - 1
            if at < 0:
                return None
            run = entry[at]
        if run.key[3] == index and run.start <= offset < run.start + run.length:
            return run
        return None

    def key_of(self, cid: bytes, index: int) -> Key | None:
        """The key of change ``(cid, index)`` if it inserted into this sequence."""
        run = self.find(cid, index, 0)
        return None if run is None else run.key

    def _fragments_of(self, cid: bytes, index: int) -> list[Run]:
        entry = self.fragments.get(cid)
        if entry is None:
            return []
        if type(entry) is Run:
            return [entry] if entry.key[3] == index else []
        assert isinstance(entry, list)
        return [run for run in entry if run.key[3] == index]

    def _add_fragment(self, run: Run) -> None:
        """Index ``run`` by its operation's CID: the run itself, or a list when several."""
        cid = run.key[2]
        entry = self.fragments.get(cid)
        if entry is None:
            self.fragments[cid] = run
        elif type(entry) is Run:
            self.fragments[cid] = sorted([entry, run], key=_position)
        else:
            assert isinstance(entry, list)
            insort(entry, run, key=_position)

    # -- edits ------------------------------------------------------------------------

    def insert(self, after: tuple[bytes, int, int] | None, run: Run) -> None:
        """Insert ``run`` after element ``after`` (None: at the start); the origin must exist."""
        if after is None:
            block_at, at = 0, 0
        else:
            origin = self.find(*after)
            if origin is None:
                raise KeyError(after)
            cut = after[2] - origin.start + 1
            if cut < origin.length:
                self._split(origin, cut)
            assert origin.block is not None
            block_at = origin.block.index
            at = origin.block.runs.index(origin) + 1
        self._string = None
        block_at, at = self._scan(block_at, at, run.key)
        self._place(block_at, at, run)
        self._add_fragment(run)
        if not run.deleted:
            self.visible += run.length

    def delete(self, cid: bytes, index: int, start: int, length: int) -> int:
        """Delete elements ``start .. start+length`` of change ``(cid, index)``; return how many."""
        frags = self._fragments_of(cid, index)
        if not frags:
            return 0
        end = start + length
        removed = 0
        self._string = None
        for run in frags:
            lo = max(start, run.start)
            hi = min(end, run.start + run.length)
            if lo >= hi or run.deleted:
                continue
            if lo > run.start:
                run = self._split(run, lo - run.start)
            if hi < run.start + run.length:
                self._split(run, hi - run.start)
            run.deleted = True
            if self.text:
                run.content = None
            removed += run.length
        self.visible -= removed
        return removed

    def _scan(self, block_at: int, at: int, key: Key) -> tuple[int, int]:
        """From a position, skip the elements with a greater id than ``key`` (RGA order)."""
        blocks = self.blocks
        while block_at < len(blocks):
            runs = blocks[block_at].runs
            while at < len(runs):
                if runs[at].key < key:
                    return block_at, at
                at += 1
            if block_at == len(blocks) - 1:
                return block_at, at
            block_at += 1
            at = 0
        return block_at, at  # pragma: no cover - the loop always returns

    def _place(self, block_at: int, at: int, run: Run) -> None:
        block = self.blocks[block_at]
        block.runs.insert(at, run)
        run.block = block
        if len(block.runs) > 2 * BLOCK:
            moved = block.runs[BLOCK:]
            del block.runs[BLOCK:]
            self.blocks.insert(block_at + 1, _Block(moved, block_at + 1))
            for later in self.blocks[block_at + 2 :]:
                later.index += 1

    def _split(self, run: Run, cut: int) -> Run:
        """Split ``run`` after ``cut`` elements; return the new right part (placed after it)."""
        right = Run(run.key, run.start + cut, run.length - cut, None)
        right.deleted = run.deleted
        if run.content is not None:
            right.content = run.content[cut:]
            run.content = run.content[:cut]
        run.length = cut
        block = run.block
        assert block is not None
        self._place(block.index, block.runs.index(run) + 1, right)
        self._add_fragment(right)
        return right

    # -- reading ----------------------------------------------------------------------

    def runs(self) -> Iterator[Run]:
        """Every run in order, deleted ones included."""
        for block in self.blocks:
            yield from block.runs

    def visible_runs(self) -> Iterator[Run]:
        """The runs that are not deleted, in order."""
        for block in self.blocks:
            for run in block.runs:
                if not run.deleted:
                    yield run

    def string(self) -> str:
        """The visible text (text sequences only)."""
        if self._string is None:
            self._string = "".join([run.content for run in self.visible_runs()])
        return self._string

    def chars(self) -> list[tuple[bytes, int, int]]:
        """The id of every visible character, in order (for turning positions into ids)."""
        out: list[tuple[bytes, int, int]] = []
        for run in self.visible_runs():
            cid, index = run.key[2], run.key[3]
            out.extend((cid, index, run.start + i) for i in range(run.length))
        return out

    def canonical_runs(self) -> Iterator[tuple[Key, int, int, bool, Any]]:
        """Runs with adjacent fragments of one change merged, so the form is canonical."""
        pending: list[Any] | None = None
        for run in self.runs():
            if (
                pending is not None
                and self.text
                and pending[0] == run.key
                and pending[1] + pending[2] == run.start
                and pending[3] == run.deleted
            ):
                pending[2] += run.length
                if not run.deleted:
                    pending[4] += run.content
                continue
            if pending is not None:
                yield (pending[0], pending[1], pending[2], pending[3], pending[4])
            pending = [run.key, run.start, run.length, run.deleted, run.content]
        if pending is not None:
            yield (pending[0], pending[1], pending[2], pending[3], pending[4])

    @classmethod
    def load(cls, runs: list[tuple[Key, int, int, bool, Any]], *, text: bool) -> Sequence:
        """Rebuild a sequence from :meth:`canonical_runs` output."""
        seq = cls(text=text)
        made: list[Run] = []
        for key, start, length, deleted, content in runs:
            run = Run(key, start, length, content)
            run.deleted = deleted
            made.append(run)
            seq._add_fragment(run)
            if not deleted:
                seq.visible += length
        if made:
            seq.blocks = [
                _Block(made[i : i + BLOCK], n) for n, i in enumerate(range(0, len(made), BLOCK))
            ]
        return seq


def _position(run: Run) -> tuple[int, int]:
    return (run.key[3], run.start)
