"""Crash safety and inter-process locking: the on-disk journal, ownership marks, the JSON store, locks.

This is the durable base: it knows no kind of object. :mod:`netns_kit._recovery` (at the top of
the package) reads the journals of dead processes with :func:`read_journal` and undoes them.

What survives what
------------------
Every change netns_kit makes is *intended* on disk before it is made: one JSON line in
``/run/netns-kit/journal/<pid>.<starttime>.jsonl`` (directory 0700, files 0600, root only),
then confirmed (``ok``) after the kernel acknowledged it. A change then ends one of two ways:

- ``done``: it was undone (rollback, ``remove()``, the end of a ``with`` block);
- ``keep``: it was kept on purpose (an explicit ``create()`` outside any transaction, or a
  ``Transaction(keep=True)`` that committed). Kept changes are never touched by recovery.

A change kept as soon as it is made (outside any transaction) needs no confirmation: its intent
is followed by ``keep`` alone, two lines per change; inside an atomic step the confirmations of
namespaces and interfaces are written with the step's end (:data:`DEFERRABLE_OPS`, see
:func:`netns_kit._journal.atomic_step`). Each call writes its lines with one ``write(2)``.

A process that dies with entries neither done nor kept (SIGKILL, OOM, power cut of the
process) leaves them in its journal; :func:`netns_kit._recovery.recover` (run by any later process) undoes them,
newest first, and removes the journal. A journal belongs to a process identified by PID *and*
start time, so a reused PID never makes a dead owner look alive.

Ownership marks
---------------
What recovery deletes must carry the dead owner's mark, so a same-named object made later by
someone else is never touched: interfaces carry ``IFLA_IFALIAS = "netns-kit:<pid>.<start>"``.
The kernel ignores an alias in a creating request, so the creating request sets the interface
group (``IFLA_GROUP``, a 31-bit hash of the owner) and the next request swaps it for the alias
(group back to 0): an interface is marked from its first instant. A named namespace carries the mark on its ``lo``
(set before the namespace is bind-mounted under /run/netns, so it never appears unmarked).
Addresses, routes and sysctls cannot carry a mark: they are undone only when their change was
confirmed, and they mostly vanish with the owned interface or namespace that holds them.

Locking model
-------------
Locks live in ``/run/netns-kit/locks/``: a lock taken by another process *or thread* blocks;
the same thread may nest it.

- ``run-netns``: preparing /run/netns as a shared mount point (once per process), ``recover``
  (one recovery at a time) and a few others: ``fcntl.flock`` on a file per key (:func:`lock`);
- per named namespace: creating, removing and recovering it (:func:`name_lock`), and per host
  namespace: address allocation (IPAM: the shared allocation file of each network,
  :func:`network_file`) and firewall changes made in it (:func:`host_lock`). These are taken for
  every namespace and every published port, so they are byte-range locks on one file,
  ``slots.lock``, that a process opens once (no file to open per acquisition).

Locks are always taken in that order (name before host) and held only around the change.
The kernel releases them when a process dies, so a crash never leaves a lock held.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import json
import logging
import os
import stat
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from . import _sys
from .errors import PermissionDeniedError, StateError

__all__ = ["JournalEntry", "dead_journals", "host_lock", "lock", "owner_id", "read_journal"]

log = logging.getLogger("netns_kit")

STATE_DIR = _sys.STATE_DIR
MARK_PREFIX = "netns-kit:"

JsonDict = dict[str, Any]


# -- owner identity -------------------------------------------------------------------------------

def _start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat), None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # the command name (field 2) may contain spaces and ')': split after the last ')'
    rest = data[data.rindex(b")") + 2:].split()
    if rest[0] in (b"Z", b"X"):  # a zombie has exited: it will never undo anything
        return None
    return int(rest[19])


_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()
    _held.slots = {}  # the parent's slot locks are the parent's (see _SlotFile)
    _slots.forked()


# this process's PID, kept up to date across os.fork() (read on every journal line and mark: a
# getpid() system call each time would be ~30 per endpoint)
os.register_at_fork(after_in_child=_forked)

_owner_cache: tuple[int, str] | None = None


def owner_id() -> str:
    """``"<pid>.<start time>"`` of this process: unique on this boot, even when PIDs are reused."""
    global _owner_cache
    pid = _pid
    if _owner_cache is None or _owner_cache[0] != pid:
        _owner_cache = (pid, f"{pid}.{_start_time(pid)}")
    return _owner_cache[1]


def owner_of(pid: int) -> str | None:
    """``"<pid>.<start time>"`` of process ``pid`` (None if it is gone): its identity as an owner."""
    start = _start_time(pid)
    return None if start is None else f"{pid}.{start}"


_mark_cache: tuple[str, str, int] = ("", "", 0)  # (owner, its mark, its tag)


def _marks() -> tuple[str, str, int]:
    global _mark_cache
    owner = owner_id()
    if _mark_cache[0] != owner:
        _mark_cache = (owner, MARK_PREFIX + owner, _tag_of(owner))
    return _mark_cache


def mark() -> str:
    """The ownership mark this process puts on what it creates."""
    return _marks()[1]


def _tag_of(owner: str) -> int:
    return (zlib.crc32(owner.encode()) & 0x7FFFFFFF) | 0x40000000


def tag(owner: str | None = None) -> int:
    """The interface group (IFLA_GROUP) that marks a link between its creation and its alias."""
    return _tag_of(owner) if owner else _marks()[2]


def owner_alive(owner: str) -> bool:
    """True if the process ``owner`` (``"<pid>.<start>"``) is still running."""
    try:
        pid_s, start_s = owner.split(".", 1)
        pid, start = int(pid_s), int(start_s)
    except ValueError:
        return False
    return _start_time(pid) == start


# -- the state directory ----------------------------------------------------------------------------

_dir_ready: set[str] = set()
_dir_lock = threading.Lock()


def _ensure_dir(path: str) -> None:
    """Make ``path`` (and parents under STATE_DIR) root-only: mode 0700, owned by us."""
    if path in _dir_ready:
        return
    with _dir_lock:
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
        except PermissionError as exc:
            raise PermissionDeniedError(f"cannot create state directory {path}", step="prepare state") from exc
        p = path
        while True:
            st = os.lstat(p)
            if st.st_uid != os.geteuid():
                raise PermissionDeniedError(
                    f"state directory {p} belongs to uid {st.st_uid}, not to us; refusing to use it",
                    step="prepare state")
            if st.st_mode & 0o077:
                os.chmod(p, 0o700)
            if p == STATE_DIR or os.path.dirname(p) == p:
                break
            p = os.path.dirname(p)
        _dir_ready.add(path)


def ensure_dir(path: str) -> None:
    """Make ``path`` under :data:`STATE_DIR` (root-only, see :func:`_ensure_dir`), also when another
    process removed it since this one last made it."""
    if path in _dir_ready and not os.path.isdir(path):
        _dir_ready.discard(path)
    _ensure_dir(path)


def journal_dir() -> str:
    return os.path.join(STATE_DIR, "journal")


def locks_dir() -> str:
    return os.path.join(STATE_DIR, "locks")


def network_file(ns_identity: tuple[int, int], name: str) -> str:
    """Where a network's shared state lives: ``/run/netns-kit/networks/<dev>-<ino>/<name>.json``."""
    return os.path.join(networks_dir(), f"{ns_identity[0]}-{ns_identity[1]}", name + ".json")


def open_regular(path: str, flags: int, mode: int = 0o600) -> int:
    """``os.open`` that never follows a symlink (``O_NOFOLLOW``) and accepts only a regular file:
    a link or other file planted at one of netns_kit's paths is a StateError naming it, and the
    link's target is never opened."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StateError(f"{path} is a symbolic link; netns_kit does not follow links in its state",
                             obj=path, step="open state file") from exc
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StateError(f"{path} is not a regular file", obj=path, step="open state file")
    return fd


def read_json(path: str) -> JsonDict | None:
    """The JSON object in ``path`` (None if there is no such file)."""
    try:
        with os.fdopen(open_regular(path, os.O_RDONLY), encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    return data if isinstance(data, dict) else None


def write_json(path: str, data: JsonDict) -> None:
    """Replace ``path`` with ``data`` atomically (write a 0600 temporary file, then rename it)."""
    directory = os.path.dirname(path)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    for attempt in range(3):
        _ensure_dir(directory)
        with contextlib.suppress(FileNotFoundError):  # a stale one (or a planted link: only the link goes)
            os.unlink(tmp)
        try:
            fd = open_regular(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            break
        except FileNotFoundError:  # another process pruned the (then empty) directory meanwhile
            _dir_ready.discard(directory)
            if attempt == 2:
                raise
    try:
        os.write(fd, json.dumps(data, separators=(",", ":"), sort_keys=True).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def prune_dirs(directory: str) -> None:
    """Remove ``directory`` and then its parents below :data:`STATE_DIR` while they are empty."""
    root = STATE_DIR.rstrip("/")
    d = directory.rstrip("/")
    while d.startswith(root + "/"):
        _dir_ready.discard(d)
        try:
            os.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError:  # other files are still there
            return
        d = os.path.dirname(d)


def delete_json(path: str) -> None:
    """Delete ``path`` (and its directories below the state root that are now empty)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    prune_dirs(os.path.dirname(path))


def networks_dir() -> str:
    return os.path.join(STATE_DIR, "networks")


def dns_dir() -> str:
    """Where the name service of each host namespace records itself (``<dev>-<ino>.json``, its log)."""
    return os.path.join(STATE_DIR, "dns")


# -- locks ----------------------------------------------------------------------------------------

_held = threading.local()


@contextlib.contextmanager
def lock(key: str, *, blocking: bool = True) -> Iterator[None]:
    """Hold the inter-process lock ``key`` for the body (blocking; with ``blocking=False``,
    BlockingIOError if another holds it). Re-entrant within a thread.

    ``flock`` on ``/run/netns-kit/locks/<key>.lock``; each acquisition opens its own file
    description, so other threads of this process are excluded too. Released on exit or death.
    """
    if not key or "/" in key or key.startswith("."):
        raise ValueError(f"bad lock key {key!r}")
    held: dict[str, int] = getattr(_held, "counts", None) or {}
    _held.counts = held
    if held.get(key):
        held[key] += 1
        try:
            yield
        finally:
            held[key] -= 1
        return
    _locks_dir = locks_dir()
    _ensure_dir(_locks_dir)
    fd = open_regular(os.path.join(_locks_dir, key + ".lock"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        held[key] = 1
        try:
            yield
        finally:
            held[key] = 0
    finally:
        os.close(fd)  # releases the lock: the file description is this acquisition's own


class _SlotFile:
    """The one file of the slot locks (``locks/slots.lock``), opened once per process.

    Each slot is one byte of it, locked with an open file description lock (``F_OFD_SETLKW``):
    held by this process's description, excluded against every other description (other
    processes), and released with it or when the process dies. Threads of this process share the
    description, so each slot also has a thread lock. A forked child opens a description of its own.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._fd: int | None = None
        self._pid = 0
        self._threads: dict[int, threading.Lock] = {}

    def fd(self) -> int:
        fd = self._fd
        if fd is not None and self._pid == _pid:
            return fd
        with self._guard:
            if self._fd is None or self._pid != _pid:
                if self._fd is not None:  # the parent's description: the child must not share it
                    os.close(self._fd)
                directory = locks_dir()
                _ensure_dir(directory)
                self._fd = open_regular(os.path.join(directory, "slots.lock"), os.O_RDWR | os.O_CREAT)
                self._pid = _pid
            return self._fd

    def forked(self) -> None:
        """In a forked child: fresh thread locks (a parent's thread may have held one at the fork);
        the inherited description is closed by the next :meth:`fd`."""
        self._guard = threading.Lock()
        self._threads = {}

    def reopen(self, stale: int) -> None:
        """The file was deleted under a held description (a state directory wiped by hand): the
        next :meth:`fd` opens the file that is there now."""
        with self._guard:
            if self._fd == stale:
                os.close(stale)
                self._fd = None

    def thread_lock(self, slot: int) -> threading.Lock:
        tl = self._threads.get(slot)
        if tl is None:
            with self._guard:
                tl = self._threads.setdefault(slot, threading.Lock())
        return tl


_slots = _SlotFile()
_FLOCK = struct.Struct("hhqqi4x")  # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks)


class _SlotLock:
    """The ``with`` block of a slot lock (see :func:`name_lock`): blocking, re-entrant within a thread."""

    __slots__ = ("slot",)

    def __init__(self, slot: int) -> None:
        self.slot = slot

    def __enter__(self) -> None:
        slot = self.slot
        held: dict[int, int] | None = getattr(_held, "slots", None)
        if held is None:
            held = _held.slots = {}
        if held.get(slot):
            held[slot] += 1
            return
        tl = _slots.thread_lock(slot)
        tl.acquire()
        try:
            while True:
                fd = _slots.fd()
                fcntl.fcntl(fd, fcntl.F_OFD_SETLKW, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, slot, 1, 0))
                if os.fstat(fd).st_nlink:
                    break
                _slots.reopen(fd)
        except BaseException:
            tl.release()
            raise
        held[slot] = 1

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        slot = self.slot
        held: dict[int, int] = getattr(_held, "slots", {})
        count = held.get(slot, 0) - 1
        if count > 0:
            held[slot] = count
            return
        if count < 0:  # entered before a fork, left in the child: the parent holds it
            return
        del held[slot]
        try:
            fd = _slots.fd()
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _FLOCK.pack(fcntl.F_UNLCK, os.SEEK_SET, slot, 1, 0))
        finally:
            _slots.thread_lock(slot).release()


SLOTS = 1024
"""Slots per kind of slot lock: names (and host namespaces) share them by hash."""


def name_lock(name: str) -> contextlib.AbstractContextManager[None]:
    """The lock for creating, removing and recovering the named namespace ``name``.

    Names share :data:`SLOTS` slots of one lock file by hash (see :class:`_SlotFile`), so the lock
    directory stays small and a process holds one descriptor for all of them, however many names
    are ever used; two names in one slot merely wait for each other's (short) creation.
    """
    return _SlotLock(zlib.crc32(name.encode("utf-8", "surrogateescape")) % SLOTS)


def host_lock(ns_identity: tuple[int, int]) -> contextlib.AbstractContextManager[None]:
    """The lock for IPAM and firewall changes in the namespace with identity ``(dev, inode)``: a
    slot of the same file as :func:`name_lock`'s, after the names' slots."""
    return _SlotLock(SLOTS + zlib.crc32(f"{ns_identity[0]}-{ns_identity[1]}".encode()) % SLOTS)


_run_dir_done = False


def ensure_run_dir() -> None:
    """Prepare /run/netns once per process, under the ``run-netns`` lock (no stacked bind mounts)."""
    global _run_dir_done
    if _run_dir_done:
        return
    with lock("run-netns"):
        _sys.ensure_run_dir()
    _run_dir_done = True


# -- the on-disk journal ----------------------------------------------------------------------------

def _unencodable(o: object) -> object:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def _make_compact() -> Callable[[object], str]:
    """The journal's JSON encoder: compact, made once. The C encoder itself when the json module
    has it (``JSONEncoder.encode`` builds one per call), else the pure-Python one."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has it
        return json.JSONEncoder(separators=(",", ":")).encode
    enc = make(None, _unencodable, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True)
    return lambda o: "".join(enc(o, 0))


_compact = _make_compact()
dumps_compact = _compact
"""``json.dumps(obj, separators=(",", ":"))`` with the encoder made once (for small records on hot paths)."""
_op_json: dict[str, str] = {}  # op -> its JSON string (a handful of names, encoded once)


class _DiskJournal:
    """This process's journal file. Lines: intent {i, op, a}, ok {ok, a?}, done {done}, keep {keep}.

    A confirmation may be *deferred* (``ok(..., lazy=True)``): it is written together with the
    next line in one ``write(2)``, or dropped when that line settles the same change (a settled
    change needs no confirmation). Only a caller that writes or flushes before it returns to user
    code defers (see :func:`netns_kit._journal.atomic_step`), so nothing stays unwritten longer
    than the one call that made the change.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0
        self._next = 0
        self._open_ids: set[int] = set()
        self._lines = 0
        self._pending: dict[int, str] = {}  # deferred confirmations, by change id

    def _file(self) -> int:
        pid = _pid
        if self._fd is None or self._pid != pid:
            if self._pid != pid:  # forked: the parent's entries are the parent's
                self._fd = None
                self._open_ids = set()
                self._next = 0
                self._lines = 0
                self._pending = {}
            _ensure_dir(journal_dir())
            path = os.path.join(journal_dir(), owner_id() + ".jsonl")
            self._fd = open_regular(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            self._pid = pid
            self._path = path
        return self._fd

    def _emit(self, text: str, lines: int) -> None:
        # one write(2) per call on an O_APPEND file: lines from threads never interleave, and a
        # killed process loses nothing it wrote (the page cache outlives the process).
        fd = self._file()
        if self._pending:
            lines += len(self._pending)
            text = "".join(self._pending.values()) + text
            self._pending.clear()
        os.write(fd, text.encode())
        self._lines += lines

    def _write(self, obj: JsonDict) -> None:
        self._emit(json.dumps(obj, separators=(",", ":")) + "\n", 1)

    def intend(self, op: str, args: JsonDict) -> int:
        with self._lock:
            self._file()
            self._next += 1
            i = self._next
            op_json = _op_json.get(op)
            if op_json is None:
                op_json = _op_json[op] = json.dumps(op)
            self._emit(f'{{"i":{i},"op":{op_json},"a":{_compact(args)}}}\n', 1)
            self._open_ids.add(i)
            return i

    def ok(self, i: int, extra: JsonDict | None = None, *, lazy: bool = False) -> None:
        with self._lock:
            if i in self._open_ids and self._pid == _pid:
                line = f'{{"ok":{i},"a":{_compact(extra) if extra else "{}"}}}\n'
                if lazy:
                    self._pending[i] = line
                else:
                    self._emit(line, 1)

    def is_open(self, i: int) -> bool:
        return self._pid == _pid and i in self._open_ids

    def flush(self) -> None:
        """Write the deferred confirmations now."""
        with self._lock:
            if self._pending and self._pid == _pid:
                self._emit("", 0)

    def settle(self, ids: list[int], how: str) -> None:
        with self._lock:
            if self._pid != _pid:
                return
            text = []
            for i in ids:
                if i in self._open_ids:
                    self._open_ids.discard(i)
                    self._pending.pop(i, None)
                    text.append(f'{{"{how}":{i}}}\n')
            if text:
                self._emit("".join(text), len(text))
            if not self._open_ids and self._lines > 4096:
                self._truncate()

    def _truncate(self) -> None:
        assert self._fd is not None
        os.ftruncate(self._fd, 0)
        self._lines = 0

    def close_if_settled(self) -> None:
        with self._lock:
            if self._fd is not None and self._pid == _pid:
                if self._open_ids:
                    if self._pending:
                        self._emit("", 0)
                    return
                os.close(self._fd)
                self._fd = None
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._path)


_disk = _DiskJournal()
atexit.register(_disk.close_if_settled)


OPS: set[str] = {"netns", "link", "address", "route", "sysctl", "nft", "nft_table", "link_up", "qdisc"}
"""The kinds of change the on-disk journal records (each one :mod:`netns_kit._recovery` can undo)."""


DEFERRABLE_OPS: frozenset[str] = frozenset({"netns", "link"})
"""Kinds of change whose confirmation may wait for the end of the atomic step that makes them:
recovery of these reads the ownership mark in the kernel (the ``lo`` alias of a namespace, the
alias or group of an interface) and treats a confirmed and an unconfirmed entry alike when the
object exists. Addresses, routes, sysctls and nft elements depend on the confirmation (on kernels
without address marks, or for the values to put back): theirs is written at once."""


def register_op(op: str) -> None:
    """Accept ``op`` in the journal (:func:`netns_kit._recovery.register_recoverer` calls it)."""
    OPS.add(op)


def intend(op: str, **args: Any) -> int:
    """Write the intent of a change (before making it); returns its id. ``op`` names a recovery action."""
    if op not in OPS:
        raise ValueError(f"unknown recovery op {op!r}")
    return _disk.intend(op, args)


def check_op(op: str) -> None:
    """ValueError unless ``op`` names a recovery action."""
    if op not in OPS:
        raise ValueError(f"unknown recovery op {op!r}")


def confirm(i: int, *, lazy: bool = False, **extra: Any) -> None:
    """The change ``i`` was made (the kernel acknowledged it). ``lazy``: written with the next line
    (or dropped if that line settles ``i``); the caller then writes or calls :func:`flush` before it
    returns to user code."""
    _disk.ok(i, extra, lazy=lazy)


def flush() -> None:
    """Write the confirmations deferred with ``confirm(lazy=True)``."""
    _disk.flush()


def is_open(i: int) -> bool:
    """True while the change ``i`` of this process is neither undone nor kept: a crash now would
    have recovery undo it."""
    return _disk.is_open(i)


def done(ids: list[int]) -> None:
    """The changes were undone (or never happened): recovery must not touch them."""
    if ids:
        _disk.settle(ids, "done")


def keep(ids: list[int]) -> None:
    """The changes are kept on purpose (persistent): recovery must not touch them."""
    if ids:
        _disk.settle(ids, "keep")


def ns_ref(path: str | None, identity: tuple[int, int]) -> JsonDict:
    """How the journal names a namespace: its /run/netns path (if named) and (dev, inode)."""
    return {"path": path, "id": list(identity)}


# -- reading journals (for recovery) -----------------------------------------------------------

@dataclass
class JournalEntry:
    """A change a journal records that was neither undone nor kept: the change ``id`` of process
    ``owner``, its ``op`` and ``args`` as intended; ``confirmed`` if the kernel acknowledged it
    (with ``extra``, what the confirmation added)."""

    owner: str
    id: int
    op: str
    args: JsonDict
    confirmed: bool = False
    extra: JsonDict = field(default_factory=dict)


def read_journal(path: str, owner: str) -> list[JournalEntry]:
    """The changes the journal file ``path`` of ``owner`` left open, oldest first.

    A line cut short by a crash is skipped (its change was never attempted).
    """
    entries: dict[int, JournalEntry] = {}
    with os.fdopen(open_regular(path, os.O_RDONLY), encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut short by the crash: its change was never attempted
            if "i" in rec:
                entries[int(rec["i"])] = JournalEntry(owner, int(rec["i"]), str(rec["op"]), dict(rec["a"]))
            elif "ok" in rec and int(rec["ok"]) in entries:
                ent = entries[int(rec["ok"])]
                ent.confirmed = True
                ent.extra = dict(rec.get("a") or {})
            elif "done" in rec:
                entries.pop(int(rec["done"]), None)
            elif "keep" in rec:
                entries.pop(int(rec["keep"]), None)
    return sorted(entries.values(), key=lambda e: e.id)


def dead_journals() -> list[tuple[str, str]]:
    """``(owner, path)`` of every journal whose owner process is gone (never this process's own)."""
    jdir = journal_dir()
    try:
        names = sorted(os.listdir(jdir))
    except OSError:
        return []
    out = []
    for fname in names:
        if not fname.endswith(".jsonl"):
            continue
        owner = fname[: -len(".jsonl")]
        if owner == owner_id() or owner_alive(owner):
            continue
        out.append((owner, os.path.join(jdir, fname)))
    return out
