"""The exception tree of netns_kit.

Every error the library raises on purpose derives from :class:`NetnsKitError`.
Where a built-in meaning fits, the error also derives from that built-in, so
``except PermissionError`` or ``except LookupError`` keep working::

    NetnsKitError
    ├── ValidationError        (ValueError)       bad input; raised before any change
    │   └── TopologyFileError                     a topology file's field is wrong (``field`` names it)
    ├── PermissionDeniedError  (PermissionError)  no CAP_NET_ADMIN / CAP_SYS_ADMIN
    │   └── RootlessError                         rootless mode cannot do it (the machine's own namespaces)
    ├── NotFoundError          (LookupError)      a namespace, link, process or container is missing
    ├── AlreadyExistsError     (FileExistsError)  a name or address is already taken
    ├── OwnershipError                            the object was not made by netns_kit (adopt it first)
    ├── UnsupportedError                          the kernel lacks a feature (e.g. netem)
    ├── StateError                                object used in the wrong state (e.g. after remove())
    ├── KernelError                               the kernel refused a change (carries ``errno``)
    ├── ExhaustedError                            no subnet or address left (nothing was changed)
    └── LeakError                                 a test left named namespaces behind

Errors name what they were about: ``obj`` (the object), ``namespace`` and
``step`` (what the library was doing) are attributes and appear in the message.
Failures met while rolling back are attached to the original exception (see
:func:`rollback_failures`), never swallowed.
"""

from __future__ import annotations

import contextlib
import errno as _errno
import os
from collections.abc import Iterable
from types import TracebackType

__all__ = [
    "AlreadyExistsError",
    "ExhaustedError",
    "KernelError",
    "LeakError",
    "NetnsKitError",
    "NotFoundError",
    "OwnershipError",
    "PermissionDeniedError",
    "RootlessError",
    "StateError",
    "TopologyFileError",
    "UnsupportedError",
    "ValidationError",
    "error_for_errno",
    "rollback_failures",
]


class NetnsKitError(Exception):
    """Root of every error netns_kit raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        obj: str | None = None,
        namespace: str | None = None,
        step: str | None = None,
        errno: int | None = None,
    ) -> None:
        self.message = message
        self.obj = obj
        self.namespace = namespace
        self.step = step
        self.errno = errno
        super().__init__(self._render())
        self.errno = errno  # OSError's constructor (FileExistsError, PermissionError bases) resets it

    def _render(self) -> str:
        where = []
        if self.step:
            where.append(f"step {self.step!r}")
        if self.obj:
            where.append(f"object {self.obj!r}")
        if self.namespace:
            where.append(f"namespace {self.namespace!r}")
        suffix = f" [{', '.join(where)}]" if where else ""
        return f"{self.message}{suffix}"

    def __str__(self) -> str:
        return self._render()


class ValidationError(NetnsKitError, ValueError):
    """The request is malformed or impossible; nothing was changed."""


class TopologyFileError(ValidationError):
    """A topology file (YAML, or a containerlab topology) is malformed: ``field`` is the path of the
    wrong field (``endpoints.web.address``, ``topology.links[0].endpoints[1]``); nothing was changed."""

    def __init__(self, message: str, *, field: str, source: str | None = None) -> None:
        self.field = field
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {message}", obj=field, step="load topology file")


class PermissionDeniedError(NetnsKitError, PermissionError):
    """The process lacks the capabilities (CAP_NET_ADMIN, CAP_SYS_ADMIN) it needs."""


class RootlessError(PermissionDeniedError):
    """Rootless mode cannot do this: the namespace belongs to the machine (outside the process's
    user namespace, see :func:`netns_kit.testing.enter_rootless`), or no user namespace can be made."""


class NotFoundError(NetnsKitError, LookupError):
    """A namespace, interface, process or container that the call needs does not exist."""


class AlreadyExistsError(NetnsKitError, FileExistsError):
    """A name or address asked for is already in use."""


class OwnershipError(NetnsKitError):
    """The object exists but netns_kit did not create it; it is left alone."""


class UnsupportedError(NetnsKitError):
    """The running kernel lacks a feature the call needs."""


class ExhaustedError(NetnsKitError):
    """No subnet left in the pools, or no address left in a subnet (nothing was changed)."""


class LeakError(NetnsKitError):
    """A test left named namespaces behind in /run/netns (see :func:`netns_kit.testing.isolated_host`)."""


class StateError(NetnsKitError):
    """The object is in the wrong state for the call (e.g. used after ``remove()``)."""


class KernelError(NetnsKitError):
    """The kernel refused a change; ``errno`` holds its reason."""


_ERRNO_CLASSES: dict[int, type[NetnsKitError]] = {
    _errno.EEXIST: AlreadyExistsError,
    _errno.ENOENT: NotFoundError,
    _errno.ENODEV: NotFoundError,
    _errno.ESRCH: NotFoundError,
    _errno.EADDRNOTAVAIL: NotFoundError,
    _errno.EPERM: PermissionDeniedError,
    _errno.EACCES: PermissionDeniedError,
    _errno.EOPNOTSUPP: UnsupportedError,
    _errno.EPROTONOSUPPORT: UnsupportedError,
    _errno.EAFNOSUPPORT: UnsupportedError,
}
"""The one errno -> error table of the three seams (netlink, libnftables, libc): anything else
is a :class:`KernelError`."""


def error_class(errno: int | None) -> type[NetnsKitError]:
    """The netns_kit error class for a kernel's ``errno`` (:class:`KernelError` when none fits)."""
    return _ERRNO_CLASSES.get(errno, KernelError) if errno is not None else KernelError


def error_for_errno(errno: int | None, message: str, *, obj: str | None = None, namespace: str | None = None,
                    step: str | None = None, strerror: bool = True) -> NetnsKitError:
    """The most specific netns_kit error for ``errno``, naming ``obj``, ``namespace`` and ``step``.

    ``strerror`` appends the errno's text to ``message`` (``"MESSAGE: File exists"``). The error
    carries ``errno``; raise it ``from`` the original exception.
    """
    text = message
    if strerror and errno is not None:
        text = f"{message}: {os.strerror(errno)}" if message else os.strerror(errno)
    exc = error_class(errno)(text, obj=obj, namespace=namespace, step=step, errno=errno)
    exc.errno = errno  # OSError-derived classes reset errno in their constructor
    return exc


_ROLLBACK_ATTR = "_netns_kit_rollback_failures"


def attach_rollback_failures(exc: BaseException, failures: list[BaseException]) -> None:
    """Record undo failures on ``exc`` (as an attribute and as exception notes)."""
    if not failures:
        return
    existing: list[BaseException] = list(getattr(exc, _ROLLBACK_ATTR, []))
    existing.extend(failures)
    with contextlib.suppress(AttributeError):  # exceptions with __slots__ keep the notes only
        setattr(exc, _ROLLBACK_ATTR, existing)
    for failure in failures:
        exc.add_note(f"netns_kit rollback also failed: {type(failure).__name__}: {failure}")


_Catch = type[BaseException] | tuple[type[BaseException], ...]


class Failures:
    """The errors of a teardown that keeps going past them (internal). Each undo step runs inside
    :meth:`step`, which keeps the error it raises; :meth:`raise_first` then raises the first one
    with the others attached (see :func:`rollback_failures`)."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []

    def step(self, catch: _Catch = Exception) -> _Step:
        """A context manager that keeps an error of type ``catch`` raised in its body and goes on;
        any other error passes through."""
        return _Step(self.errors, catch)

    def append(self, exc: BaseException) -> None:
        self.errors.append(exc)

    def extend(self, errors: Iterable[BaseException]) -> None:
        self.errors.extend(errors)

    def raise_first(self) -> None:
        """Raise the first error kept, the later ones attached to it; nothing if there was none."""
        if self.errors:
            first = self.errors[0]
            attach_rollback_failures(first, self.errors[1:])
            raise first


class _Step:
    def __init__(self, errors: list[BaseException], catch: _Catch) -> None:
        self._errors = errors
        self._catch = catch

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if exc is not None and isinstance(exc, self._catch):
            self._errors.append(exc)
            return True
        return False


def rollback_failures(exc: BaseException) -> list[BaseException]:
    """The errors met while undoing changes after ``exc`` was raised (empty if the undo was clean)."""
    if not isinstance(exc, BaseException):
        raise ValidationError(f"rollback_failures: argument 'exc' must be an exception, got {type(exc).__name__}",
                              obj=repr(exc)[:60], step="check argument exc")
    return list(getattr(exc, _ROLLBACK_ATTR, []))
