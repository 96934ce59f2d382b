"""Container engines: resolve a Docker or Podman container name or id to its PID.

This is the one place netns_kit runs another program, and it is not networking: it asks
the engine's own CLI (``docker inspect`` / ``podman inspect``, no shell, argv list) for
the container's init PID, exactly as the classic recipe does with
``docker inspect -f '{{.State.Pid}}'``. Everything after that (the namespace, the links,
the addresses) goes through netlink.

An :class:`Engine` is a CLI plus global options (e.g. podman's ``--root``); a
:class:`Container` is a reference resolved through one engine, or through every engine
found on ``PATH`` (Docker first, as pipework does). Errors:

- :class:`~netns_kit.errors.NotFoundError` when no engine is installed, no engine knows
  the container, or the container exists but is not running (its message says which);
- :class:`~netns_kit.errors.ValidationError` for a reference that could be read as an option,
  or that names more than one container (an id prefix several containers share).

Both engines are driven the same way and their answers read the same way: Docker's and
Podman's "no such container", "several containers match" and "not running" all map to the
errors above (tests/test_docker.py runs a real dockerd, tests/test_podman.py a real podman).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import NotFoundError, ValidationError
from .model import check_args
from .namespace import Namespace

__all__ = ["Container", "Engine", "container_pid"]

_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
_FORMAT = "{{.State.Pid}} {{.State.Status}}"
# what each engine's CLI prints when a reference is unknown, or is an id prefix several containers share
_MISSING = ("no such container", "no such object")
_AMBIGUOUS = ("multiple ids found", "more than one result")  # docker, podman


def _check_ref(ref: object) -> str:
    if not isinstance(ref, str) or not _REF_RE.match(ref):
        raise ValidationError(
            f"container reference {ref!r} must be a container name or id (letters, digits, '_.-', "
            "not starting with '-' or '.')", obj=repr(ref), step="resolve container")
    return ref


@dataclass(frozen=True)
class Engine:
    """A container engine CLI: ``Engine("podman")``, ``Engine("docker")``, with optional global options.

    ``options`` go before the subcommand (``podman --root DIR --runroot DIR inspect ...``).
    ``executable`` defaults to ``name`` looked up on ``PATH``.
    """

    name: str
    options: tuple[str, ...] = ()
    executable: str | None = None
    timeout: float = 15.0

    def __post_init__(self) -> None:
        check_args("Engine", name=(self.name, str), options=(self.options, [str]),
                   executable=(self.executable, str, None), timeout=(self.timeout, int, float))
        if self.name not in ("docker", "podman"):
            raise ValidationError(f"engine {self.name!r} must be 'docker' or 'podman'", obj=self.name)
        if isinstance(self.options, str) or not all(isinstance(o, str) for o in self.options):
            raise ValidationError("engine options must be a sequence of str (no shell string)",
                                  obj=repr(self.options))
        object.__setattr__(self, "options", tuple(self.options))

    @classmethod
    def podman(cls, *options: str) -> Engine:
        return cls("podman", tuple(options))

    @classmethod
    def docker(cls, *options: str) -> Engine:
        return cls("docker", tuple(options))

    def path(self) -> str | None:
        """The CLI to run, or None if it is not installed."""
        return shutil.which(self.executable or self.name)

    def argv(self, *args: str) -> list[str]:
        exe = self.path()
        if exe is None:
            raise NotFoundError(f"{self.name} is not installed (not on PATH)", obj=self.name,
                                step="resolve container")
        return [exe, *self.options, *args]

    def container_pid(self, ref: str) -> int:
        """The host PID of running container ``ref`` (name or id).

        NotFoundError if the engine is missing, does not answer, does not know ``ref``, or the
        container is not running (created, exited, ...); ValidationError if ``ref`` is an id
        prefix several containers share. Changes nothing.
        """
        check_args("Engine.container_pid", ref=(ref, str))
        ref = _check_ref(ref)
        argv = self.argv("inspect", "--type", "container", "--format", _FORMAT, ref)
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise NotFoundError(f"{self.name} did not answer within {self.timeout:g} s", obj=ref,
                                step="resolve container") from exc
        except OSError as exc:
            raise NotFoundError(f"{self.name} could not be run: {exc}", obj=ref, step="resolve container") from exc
        if proc.returncode != 0:
            detail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            low = detail.lower()
            if any(m in low for m in _MISSING):
                raise NotFoundError(f"{self.name} has no container {ref!r} ({detail})", obj=ref,
                                    step="resolve container")
            if any(m in low for m in _AMBIGUOUS):
                raise ValidationError(f"container reference {ref!r} names more than one {self.name} container "
                                      f"({detail}); give the name or more of the id", obj=ref,
                                      step="resolve container")
            raise NotFoundError(f"{self.name} did not answer ({detail})", obj=ref, step="resolve container")
        fields = proc.stdout.split()
        try:
            pid = int(fields[0])
        except (IndexError, ValueError) as exc:
            raise NotFoundError(f"{self.name} inspect gave no PID for {ref!r}: {proc.stdout.strip()!r}",
                                obj=ref, step="resolve container") from exc
        status = fields[1] if len(fields) > 1 else "unknown"
        if pid <= 0 or status not in ("running", "paused"):
            raise NotFoundError(f"{self.name} container {ref!r} is not running (state {status})", obj=ref,
                                step="resolve container")
        return pid


DEFAULT_ENGINES: tuple[Engine, ...] = (Engine("docker"), Engine("podman"))


def container_pid(ref: str, engines: Sequence[Engine] | None = None) -> tuple[Engine, int]:
    """Ask each engine in turn (default: Docker, then Podman; missing ones skipped) for ``ref``'s PID.

    Returns the engine that answered and the PID. NotFoundError lists what every engine said;
    an ambiguous reference (ValidationError) stops the search at the engine that found it so.
    """
    ref = _check_ref(ref)
    tried: list[str] = []
    last: NotFoundError | None = None
    for engine in engines if engines is not None else DEFAULT_ENGINES:
        if engine.path() is None:
            tried.append(f"{engine.name}: not installed")
            continue
        try:
            return engine, engine.container_pid(ref)
        except NotFoundError as exc:
            tried.append(exc.message)
            last = exc
    raise NotFoundError(f"no container engine has a running container {ref!r} ({'; '.join(tried) or 'none'})",
                        obj=ref, step="resolve container") from last


@dataclass(frozen=True)
class Container:
    """A Docker/Podman container by name or id; ``engine=None`` tries Docker then Podman.

    ``Container("test01").namespace()`` is ``Namespace.from_pid(<its PID>)``: the namespace's
    identity is recorded at that moment, so a container that exits later cannot make
    netns_kit touch a reused PID's namespace.
    """

    ref: str
    engine: Engine | None = None

    def __post_init__(self) -> None:
        check_args("Container", ref=(self.ref, str), engine=(self.engine, Engine, None))
        _check_ref(self.ref)

    def pid(self) -> int:
        """The container's PID now (asks the engine every call)."""
        if self.engine is not None:
            return self.engine.container_pid(self.ref)
        return container_pid(self.ref)[1]

    def namespace(self) -> Namespace:
        """The container's network namespace (NotFoundError if it is not running)."""
        pid = self.pid()
        try:
            ns = Namespace.from_pid(pid)
        except NotFoundError as exc:
            raise NotFoundError(f"container {self.ref!r} (PID {pid}) exited while being resolved", obj=self.ref,
                                step="resolve container") from exc
        ns.label = f"container:{self.ref}"
        return ns
