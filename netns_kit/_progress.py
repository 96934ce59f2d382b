"""Seam for tqdm: the only module that imports it. Progress of long work, as ``(done, total)`` calls.

Calls that build or remove many objects (:meth:`Topology.create <netns_kit.Topology.create>` and
:meth:`~netns_kit.Topology.remove`, :func:`~netns_kit.removal_batch`,
:meth:`Network.remove <netns_kit.Network.remove>`) take ``progress=``:

- ``None`` (the default): silent;
- a callable: called as ``progress(done, total)``, first with ``done == 0``, then each time
  ``done`` grows, last with ``done == total``; ``done`` never decreases and ``total`` never changes
  within one call of the library;
- ``True``: a progress bar drawn by tqdm (``tqdm.auto``: a widget in Jupyter, text in a terminal);
  tqdm is optional (``pip install 'netns-kit[progress]'``), and without it ``True`` raises
  :class:`~netns_kit.errors.UnsupportedError` before anything changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import UnsupportedError, ValidationError

__all__ = ["Progress", "ProgressArg", "reporter"]

ProgressArg = Callable[[int, int], object] | bool | None
"""What a ``progress=`` parameter accepts."""


class Progress:
    """Reports one piece of work of ``total`` units to a callback; :meth:`advance` moves it on."""

    def __init__(self, callback: Callable[[int, int], object] | None, total: int, *, bar: Any = None) -> None:
        self._callback = callback
        self._bar = bar
        self.total = total
        self.done = 0
        if callback is not None:
            callback(0, total)

    def advance(self, n: int = 1) -> None:
        """``n`` more units are done (never past the total)."""
        if n <= 0 or self.done >= self.total:
            return
        self.done = min(self.total, self.done + n)
        if self._callback is not None:
            self._callback(self.done, self.total)

    def finish(self) -> None:
        """Everything is done (also after failures, where every step had its try); closes a bar."""
        self.advance(self.total - self.done)
        self.close()

    def close(self) -> None:
        """Close a bar (where the work stopped early, ``done`` stays below ``total``). Idempotent."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def check(progress: object, *, step: str) -> None:
    """Validate a ``progress=`` argument (and that tqdm is there for ``True``) before any change."""
    if progress is None or progress is False or callable(progress):
        return
    if progress is True:
        _tqdm(step)
        return
    raise ValidationError(f"progress {progress!r} must be a callable (done, total), True (a bar) or None",
                          obj=repr(progress), step=step)


def _tqdm(step: str) -> Any:
    try:
        from tqdm.auto import tqdm  # type: ignore[import-untyped]
    except ImportError as exc:
        raise UnsupportedError("progress=True draws a bar with tqdm: pip install 'netns-kit[progress]'",
                               step=step) from exc
    return tqdm


def reporter(progress: ProgressArg, total: int, *, desc: str, unit: str = "step") -> Progress:
    """A :class:`Progress` for ``total`` units: silent, calling ``progress``, or drawing a tqdm bar."""
    check(progress, step=desc)
    if progress is True:
        bar = _tqdm(desc)(total=total, desc=desc, unit=unit)

        def update(done: int, _total: int) -> None:
            bar.update(done - bar.n)

        return Progress(update, total, bar=bar)
    if progress is None or progress is False:
        return Progress(None, total)
    assert callable(progress)
    return Progress(progress, total)
