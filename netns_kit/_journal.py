"""The journal and the Transaction: every change records its undo as it is made.

A change made while a :class:`Transaction` is active (in this thread or asyncio
task: the active journal is a context variable) records how to undo it. Rollback
runs the undos in reverse order, keeps going past failures, treats "not found"
as already undone, and attaches every failure to the original exception.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from contextvars import ContextVar
from types import TracebackType
from typing import Any

from . import _batch, _state
from .errors import AlreadyExistsError, NotFoundError, StateError, ValidationError, attach_rollback_failures
from .model import check_args

__all__ = ["Transaction", "UndoEntry"]

log = logging.getLogger("netns_kit")

Undo = Callable[[], object]
Durable = tuple[str, dict[str, Any]]
"""A serializable undo for crash recovery: ``(op, args)``, ``op`` one of :mod:`netns_kit._state`'s."""


class UndoEntry:
    """One recorded change: a description for humans and the callable that undoes it."""

    __slots__ = ("description", "durable", "undo")

    def __init__(self, description: str, undo: Undo, durable: int | None = None) -> None:
        self.description = description
        self.undo = undo
        self.durable = durable  # id of the on-disk journal entry, if any

    def __repr__(self) -> str:
        return f"UndoEntry({self.description!r})"


class Journal:
    """An ordered undo log."""

    def __init__(self, *, step: bool = False, kept_at_end: bool = False) -> None:
        self.entries: list[UndoEntry] = []
        # on-disk entries of finished atomic steps, undone by a whole-object entry in ``entries``
        self.handed: list[int] = []
        # an atomic step's journal: confirmations may wait for the step's end (see atomic_step)
        self.step = step
        # a step in no transaction (outside any journal, or in steps only): the end of the outermost
        # step keeps every change made in it (one ``keep`` line settles each), so a confirmation
        # that may wait for a step's end is not needed at all
        self.kept_at_end = kept_at_end

    def record(self, description: str, undo: Undo, durable: int | None = None) -> None:
        self.entries.append(UndoEntry(description, undo, durable))

    def durable_ids(self) -> list[int]:
        return [e.durable for e in self.entries if e.durable is not None] + self.handed

    def hand_over(self, parent: Journal | None) -> None:
        """Success: give every entry to ``parent``; with no parent the changes are kept for good."""
        if parent is not None:
            parent.entries.extend(self.entries)
            parent.handed.extend(self.handed)
        else:
            _state.keep(self.durable_ids())
        self.entries.clear()
        self.handed.clear()

    def settle(self) -> None:
        """The owner undid everything itself (e.g. ``__exit__`` called ``remove()``): forget it all."""
        _state.done(self.durable_ids())
        self.entries.clear()
        self.handed.clear()

    def rollback(self) -> list[BaseException]:
        """Run every undo, newest first; return the failures (NotFoundError counts as success).

        Interface deletions and namespace removals are collected in a removal batch of the
        rollback's own and made together at the end (see :mod:`netns_kit._batch`); the on-disk
        entries are settled only after that, so a crash midway leaves them for recover().
        """
        failures: list[BaseException] = []
        undone: list[int] = []
        with _batch.collecting() as pending:
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
                    continue  # stays pending on disk: recover() retries once this process is gone
                if entry.durable is not None:
                    undone.append(entry.durable)
        batch_failures = pending.flush()
        failures += batch_failures
        if not batch_failures:
            _state.done(undone)
        if not failures:
            _state.done(self.handed)
            self.handed.clear()
        return failures


_active: ContextVar[Journal | None] = ContextVar("netns_kit_journal", default=None)


def recording() -> bool:
    """True if a journal is active (a :class:`Transaction`, an atomic step or a ``with`` block):
    only then does :func:`record` keep anything, so a caller may skip building its arguments.

    Outside any journal a change is kept the moment it is made. A change the kernel makes in one
    request (an address, a route, one nft batch of elements) is then all or nothing by itself, so
    it needs no on-disk intent either: a crash can leave it made or not made, never half made, and
    made it is kept, as the caller asked. Such callers skip :func:`intent` when this is False
    (two journal lines and their encoding less per change); a change made of several requests
    (a namespace, a veth pair, a bridge) is always written ahead, so a crash in the middle of it
    is undone by recovery."""
    return _active.get() is not None


def record(description: str, undo: Undo, durable: Durable | None = None) -> None:
    """Record ``undo`` in the active journal, if any. Called right after a change succeeded.

    ``durable=(op, args)`` also writes the change to the on-disk journal (already made, so
    confirmed at once): :func:`netns_kit._recovery.recover` undoes it if this process dies first.
    Prefer :func:`intent`, which writes before the change.
    """
    log.debug("change: %s", description)
    journal = _active.get()
    if journal is None:
        # made and kept at once: recovery would never touch it, so the disk gets nothing
        if durable is not None:
            _state.check_op(durable[0])
        return
    did: int | None = None
    if durable is not None:
        did = _state.intend(durable[0], **durable[1])
        lazy = journal.step and durable[0] in _state.DEFERRABLE_OPS
        if not (lazy and journal.kept_at_end):  # else kept at the outermost step's end: no confirmation
            _state.confirm(did, lazy=lazy)
    journal.record(description, undo, did)


def record_made(description: str, undo: Undo, did: int) -> None:
    """Like :func:`record`, for a change whose on-disk intent ``did`` was written before it was
    made (with the same arguments a record would write) and whose recovery does not depend on its
    confirmation: inside a journal ``did`` is confirmed (with the step's end, inside an atomic step)
    and recorded; outside one the change is kept at once (one ``keep`` line)."""
    log.debug("change: %s", description)
    journal = _active.get()
    if journal is None:
        _state.keep([did])
        return
    # recovery undoes such a change the same whether confirmed or not (its intent said all): in a
    # step the confirmation waits for the step's end, as a namespace's does (DEFERRABLE_OPS), and
    # a step that keeps its changes at its end needs none
    if not journal.kept_at_end:
        _state.confirm(did, lazy=journal.step)
    journal.record(description, undo, did)


class _Intent:
    """The ``with`` block of :func:`intent` (a class: cheaper than a generator on this hot path)."""

    __slots__ = ("did", "entry", "journal", "lazy", "unchanged_on")

    def __init__(self, journal: Journal | None, entry: UndoEntry, did: int | None,
                 unchanged_on: tuple[type[BaseException], ...], lazy: bool) -> None:
        self.journal = journal
        self.entry = entry
        self.did = did
        self.unchanged_on = unchanged_on
        self.lazy = lazy

    def __enter__(self) -> int | None:
        return self.did

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        journal, did = self.journal, self.did
        if exc_type is None:
            if did is not None:
                if journal is None:
                    _state.keep([did])  # made and kept: the one line settles it
                elif not (self.lazy and journal.kept_at_end):  # else kept at the outermost step's end
                    _state.confirm(did, lazy=self.lazy)
        elif issubclass(exc_type, self.unchanged_on):
            if journal is not None and self.entry in journal.entries:
                journal.entries.remove(self.entry)
            if did is not None:
                _state.done([did])


def intent(description: str, undo: Undo, durable: Durable | None = None,
           unchanged_on: tuple[type[BaseException], ...] = (AlreadyExistsError,)) -> AbstractContextManager[int | None]:
    """Record ``undo`` *before* making a change, so a failure between the kernel call and
    the bookkeeping cannot leave it unrecorded. ``undo`` must be safe if the change never
    happened. If the body raises one of ``unchanged_on`` (the kernel refused the one change the
    body makes, so nothing was made; by default AlreadyExistsError, the name was taken), the entry
    is withdrawn so the rollback cannot touch what someone else owns.

    ``durable=(op, args)`` writes the intent to the on-disk journal first (see
    :mod:`netns_kit._state`), confirms it after the body, and settles it with the entry. Outside
    any journal the change is kept at once: one ``keep`` line, no separate confirmation. The
    ``with`` block gets the on-disk change's id (None without ``durable``).
    """
    log.debug("change: %s", description)
    journal = _active.get()
    did = _state.intend(durable[0], **durable[1]) if durable is not None else None
    entry = UndoEntry(description, undo, did)
    if journal is not None:
        journal.entries.append(entry)
    lazy = journal is not None and journal.step and durable is not None and durable[0] in _state.DEFERRABLE_OPS
    return _Intent(journal, entry, did, unchanged_on, lazy)


def detached(create: Callable[[], object]) -> Journal:
    """Run ``create`` with a journal of its own that does not stay active (for ``__enter__``).

    On failure its changes are undone. On success the journal is returned, still holding
    the on-disk entries: the change is ephemeral (recovered after a crash) until the caller
    undoes it and calls :meth:`Journal.settle`.
    """
    journal = Journal()
    token = _active.set(journal)
    try:
        create()
    except BaseException as exc:
        _active.reset(token)
        attach_rollback_failures(exc, journal.rollback())
        raise
    _active.reset(token)
    return journal



class EphemeralScope:
    """Mixin for objects whose ``with`` block is ephemeral on disk too.

    ``_enter_ephemeral(create)`` runs ``create`` with a journal of its own (see :func:`detached`),
    so that :func:`netns_kit._recovery.recover` undoes it if the process dies inside the block;
    ``_settle_ephemeral()`` forgets that journal once ``__exit__`` has undone everything itself.
    """

    _scope: Journal | None = None

    def _enter_ephemeral(self, create: Callable[[], object]) -> None:
        self._scope = detached(create)

    def _settle_ephemeral(self) -> None:
        scope, self._scope = self._scope, None
        if scope is not None:
            pending = _batch.current()
            if pending is not None:  # the removal is only made at the end of the batch
                pending.on_success(scope.settle)
            else:
                scope.settle()

class _AtomicStep:
    """The ``with`` block of :func:`atomic_step` (a class: cheaper than a generator on this hot path)."""

    __slots__ = ("journal", "token")

    def __enter__(self) -> None:
        parent = _active.get()
        self.journal = Journal(step=True, kept_at_end=parent is None or (parent.step and parent.kept_at_end))
        self.token = _active.set(self.journal)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        _active.reset(self.token)
        journal = self.journal
        if exc is not None:
            _state.flush()
            attach_rollback_failures(exc, journal.rollback())
            return
        # the step's undos are dropped (the caller records one for the whole object), but its
        # on-disk entries follow the caller's fate: kept with it, or undone with it
        parent = _active.get()
        if parent is not None:
            parent.handed.extend(journal.durable_ids())
            if not parent.step:  # an enclosing step flushes at its own end
                _state.flush()
        else:
            _state.keep(journal.durable_ids())
            _state.flush()


def atomic_step() -> AbstractContextManager[None]:
    """Group the changes of one multi-step operation: all of them, or none.

    On failure the step's own changes are undone and the error is re-raised with
    any undo failures attached. On success the recorded undos are dropped: the
    caller records one undo for the whole object instead.

    The step's on-disk confirmations of namespaces and interfaces (whose recovery reads their
    ownership mark, see :data:`netns_kit._state.DEFERRABLE_OPS`) are deferred to its end (a step
    is one library call): kept at once, a change needs none, so creating a namespace or a veth
    pair outside any transaction writes an intent and a ``keep`` line and nothing else.
    """
    return _AtomicStep()


class Transaction:
    """All or nothing: every change made inside is undone, in reverse, if anything raises.

    ``keep=True`` (default): on success the changes stay (persistent).
    ``keep=False``: on success they are torn down when the ``with`` block ends (ephemeral).

    Usable as ``with Transaction() as tx:`` or ``async with``; nested transactions
    hand their changes to the enclosing one on success. :meth:`rollback` undoes
    everything recorded so far; :meth:`commit` forgets it (the changes stay).
    """

    def __init__(self, *, keep: bool = True) -> None:
        check_args("Transaction", keep=(keep, bool))
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
        check_args("Transaction.record", description=(description, str))
        if not callable(undo):
            raise ValidationError(f"Transaction.record: argument 'undo' must be callable, got {type(undo).__name__}",
                                  obj=repr(undo), step="check argument undo")
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
        self._journal.hand_over(self._parent)

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
        _state.keep(self._journal.durable_ids())
        self._journal.entries.clear()
        self._journal.handed.clear()
