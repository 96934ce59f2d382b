"""The journal and the Transaction: every change records its undo as it is made.

A change made while a :class:`Transaction` is active (in this thread or asyncio
task: the active journal is a context variable) records how to undo it. Rollback
runs the undos in reverse order, keeps going past failures, treats "not found"
as already undone, and attaches every failure to the original exception.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType

from .errors import AlreadyExistsError, NotFoundError, StateError, attach_rollback_failures

__all__ = ["Transaction", "UndoEntry"]

log = logging.getLogger("netns_kit")

Undo = Callable[[], object]


class UndoEntry:
    """One recorded change: a description for humans and the callable that undoes it."""

    __slots__ = ("description", "undo")

    def __init__(self, description: str, undo: Undo) -> None:
        self.description = description
        self.undo = undo

    def __repr__(self) -> str:
        return f"UndoEntry({self.description!r})"


class Journal:
    """An ordered undo log."""

    def __init__(self) -> None:
        self.entries: list[UndoEntry] = []

    def record(self, description: str, undo: Undo) -> None:
        self.entries.append(UndoEntry(description, undo))

    def rollback(self) -> list[BaseException]:
        """Run every undo, newest first; return the failures (NotFoundError counts as success)."""
        failures: list[BaseException] = []
        while self.entries:
            entry = self.entries.pop()
            try:
                log.debug("undo: %s", entry.description)
                entry.undo()
            except NotFoundError:
                pass
            except Exception as exc:  # keep going: every undo gets its chance
                exc.add_note(f"while undoing: {entry.description}")
                failures.append(exc)
        return failures


_active: ContextVar[Journal | None] = ContextVar("netns_kit_journal", default=None)


def record(description: str, undo: Undo) -> None:
    """Record ``undo`` in the active journal, if any. Called right after a change succeeded."""
    log.debug("change: %s", description)
    journal = _active.get()
    if journal is not None:
        journal.record(description, undo)


@contextmanager
def intent(description: str, undo: Undo) -> Iterator[None]:
    """Record ``undo`` *before* making a change, so a failure between the kernel call and
    the bookkeeping cannot leave it unrecorded. ``undo`` must be safe if the change never
    happened. If the body raises AlreadyExistsError (nothing was made: the name was taken),
    the entry is withdrawn so the rollback cannot touch what someone else owns.
    """
    log.debug("change: %s", description)
    journal = _active.get()
    entry = UndoEntry(description, undo)
    if journal is not None:
        journal.entries.append(entry)
    try:
        yield
    except AlreadyExistsError:
        if journal is not None and entry in journal.entries:
            journal.entries.remove(entry)
        raise


@contextmanager
def atomic_step() -> Iterator[None]:
    """Group the changes of one multi-step operation: all of them, or none.

    On failure the step's own changes are undone and the error is re-raised with
    any undo failures attached. On success the recorded undos are dropped: the
    caller records one undo for the whole object instead.
    """
    journal = Journal()
    token = _active.set(journal)
    try:
        yield
    except BaseException as exc:
        _active.reset(token)
        attach_rollback_failures(exc, journal.rollback())
        raise
    _active.reset(token)


class Transaction:
    """All or nothing: every change made inside is undone, in reverse, if anything raises.

    ``keep=True`` (default): on success the changes stay (persistent).
    ``keep=False``: on success they are torn down when the ``with`` block ends (ephemeral).

    Usable as ``with Transaction() as tx:`` or ``async with``; nested transactions
    hand their changes to the enclosing one on success. :meth:`rollback` undoes
    everything recorded so far; :meth:`commit` forgets it (the changes stay).
    """

    def __init__(self, *, keep: bool = True) -> None:
        self.keep = keep
        self._journal = Journal()
        self._token: object | None = None
        self._parent: Journal | None = None
        self._open = False

    @property
    def undo_steps(self) -> list[str]:
        """What a rollback would do, one line per recorded change, oldest change first."""
        return [e.description for e in self._journal.entries]

    def record(self, description: str, undo: Undo) -> None:
        """Record a change of the caller's own (e.g. a side effect outside netns_kit) to undo on rollback."""
        self._journal.record(description, undo)

    def __enter__(self) -> Transaction:
        if self._open:
            raise StateError("transaction is already active", step="enter transaction")
        self._open = True
        self._parent = _active.get()
        self._token = _active.set(self._journal)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._token is not None
        _active.reset(self._token)  # type: ignore[arg-type]
        self._open = False
        if exc is not None:
            attach_rollback_failures(exc, self._journal.rollback())
            return
        if not self.keep:
            failures = self._journal.rollback()
            if failures:
                from .errors import NetnsKitError

                err = NetnsKitError(f"{len(failures)} undo step(s) failed during teardown", step="teardown")
                attach_rollback_failures(err, failures)
                raise err from failures[0]
            return
        if self._parent is not None:
            self._parent.entries.extend(self._journal.entries)
        self._journal.entries.clear()

    async def __aenter__(self) -> Transaction:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def rollback(self) -> None:
        """Undo everything recorded so far, newest first. Raises if any undo failed."""
        failures = self._journal.rollback()
        if failures:
            from .errors import NetnsKitError

            err = NetnsKitError(f"{len(failures)} undo step(s) failed during rollback", step="rollback")
            attach_rollback_failures(err, failures)
            raise err from failures[0]

    def commit(self) -> None:
        """Keep every change recorded so far; a later rollback will not undo them."""
        self._journal.entries.clear()
