"""Seam for the namespace system calls (unshare, setns, mount) through libc.

Only this module calls libc directly. Functions act on the *calling thread*:
``setns``/``unshare(CLONE_NEWNET)`` change the network namespace of that thread
alone, which is how netns_kit avoids forking (pyroute2's ``netns=`` path forks
a child per call). No decisions live here.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as _errno
import fcntl
import os
import re
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import (
    AlreadyExistsError,
    NotFoundError,
    PermissionDeniedError,
    RootlessError,
    ValidationError,
    error_for_errno,
)

CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_BIND = 4096
MS_REC = 16384
MS_SHARED = 1 << 20
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
NETNS_RUN_DIR = "/run/netns"
CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21

# by soname: ctypes.util.find_library would start `ldconfig -p` (importing netns_kit starts no process)
_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]

_caps_checked = False
_caps_lock = threading.Lock()


def _oserror(step: str, path: str | None = None) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{step}: {os.strerror(err)}", path)


def missing_capabilities() -> list[str]:
    """The capabilities netns_kit needs (CAP_NET_ADMIN, CAP_SYS_ADMIN) that the calling thread's
    effective set lacks, in its own user namespace."""
    cap_eff = 0
    with open(f"/proc/self/task/{threading.get_native_id()}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("CapEff:"):
                cap_eff = int(line.split()[1], 16)
    return [name for bit, name in ((CAP_NET_ADMIN, "CAP_NET_ADMIN"), (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"))
            if not cap_eff >> bit & 1]


def check_privileges() -> None:
    """Raise PermissionDeniedError once, at the first kernel call, if CAP_NET_ADMIN/CAP_SYS_ADMIN are missing."""
    global _caps_checked
    if _caps_checked:
        return
    with _caps_lock:
        if _caps_checked:
            return
        missing = missing_capabilities()
        if missing:
            raise PermissionDeniedError(
                f"netns_kit needs {' and '.join(missing)} (run as root, grant the capabilities, or use "
                "rootless mode: netns_kit.testing.isolated_host() enters a user namespace of its own)",
                step="privilege check",
            )
        _caps_checked = True


def current_netns_path() -> str:
    """The namespace file of the calling thread (a path that names this thread, to keep)."""
    return f"/proc/self/task/{threading.get_native_id()}/ns/net"


THREAD_NETNS = "/proc/thread-self/ns/net"
"""The calling thread's namespace file, for a look made at once by the same thread (no thread id to
ask for; never to be kept: another thread reading it finds its own namespace)."""
_THREAD_NETNS_B = THREAD_NETNS.encode()


def open_netns(path: str, *, label: str) -> int:
    """Open a namespace file read-only; NotFoundError if it is gone, ValidationError-free."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise NotFoundError(f"network namespace file {path} does not exist", obj=label, step="open namespace") from exc
    except ProcessLookupError as exc:
        raise NotFoundError(f"process behind {path} has exited", obj=label, step="open namespace") from exc
    except PermissionError as exc:
        if not in_initial_userns():
            raise RootlessError(f"cannot open {path}: it lies outside this process's user namespace (rootless "
                                "mode), with the machine's own processes", obj=label, step="open namespace") from exc
        raise PermissionDeniedError(f"cannot open {path}", obj=label, step="open namespace") from exc


def setns(fd: int, *, label: str) -> None:
    """Move the calling thread into the network namespace ``fd`` refers to."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        exc = OSError(err, os.strerror(err))
        if err == _errno.EINVAL:  # setns's own meaning of EINVAL: fd is not a network namespace
            raise NotFoundError("not a network namespace", obj=label, step="enter namespace", errno=err) from exc
        raise error_for_errno(err, "setns failed", obj=label, step="enter namespace") from exc


@contextmanager
def entered(fd: int, *, label: str) -> Iterator[None]:
    """Run the body with the calling thread inside namespace ``fd``; restore the previous one after."""
    saved = os.open(THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)  # this thread's, opened at once
    try:
        setns(fd, label=label)
        try:
            yield
        finally:
            setns(saved, label="previous namespace")
    finally:
        os.close(saved)


def unshare_netns() -> int:
    """Move the calling thread into a brand-new anonymous network namespace; return an fd of it."""
    if _libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise error_for_errno(err, "cannot create a network namespace", step="unshare")
    return os.open(current_netns_path(), os.O_RDONLY | os.O_CLOEXEC)


def stat_identity(path_or_fd: str | int) -> tuple[int, int]:
    st = os.stat(path_or_fd)
    return (st.st_dev, st.st_ino)


def ensure_run_dir() -> None:
    """Make /run/netns a shared mount point, as iproute2 does, so bind mounts propagate."""
    os.makedirs(NETNS_RUN_DIR, mode=0o755, exist_ok=True)
    d = NETNS_RUN_DIR.encode()
    if _libc.mount(b"none", d, None, MS_SHARED | MS_REC, None) == 0:
        return
    if ctypes.get_errno() != _errno.EINVAL:
        raise error_for_errno(ctypes.get_errno(), "cannot make /run/netns shared", step="prepare /run/netns")
    if _libc.mount(d, d, b"none", MS_BIND | MS_REC, None) != 0:
        raise error_for_errno(ctypes.get_errno(), "cannot bind /run/netns", step="prepare /run/netns")
    if _libc.mount(b"none", d, None, MS_SHARED | MS_REC, None) != 0:
        raise error_for_errno(ctypes.get_errno(), "cannot make /run/netns shared", step="prepare /run/netns")


def create_named_netns(path: str, *, label: str, prepare: Callable[[], object] | None = None) -> tuple[int, int]:
    """Create a new network namespace and pin it at ``path`` (a bind mount), without forking.

    Returns the new namespace's identity, (device, inode) of its file. The calling thread briefly
    enters the new namespace (``unshare``) and goes back. ``prepare`` runs inside the new
    namespace before it is pinned (netns_kit marks it there, so it never appears unmarked).
    The caller has made /run/netns a shared mount (:func:`ensure_run_dir`, once per process:
    its recursive propagation change walks every namespace mounted there, so doing it per
    namespace, as ``ip netns add`` does, makes creation slower the more namespaces exist).
    Undo: :func:`remove_named_netns`.
    """
    try:
        fd0 = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    except FileExistsError as exc:
        raise AlreadyExistsError(f"namespace {label!r} already exists ({path})", obj=label, namespace=label,
                                 step="create namespace") from exc
    os.close(fd0)
    saved = os.open(THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)  # this thread's, opened at once
    try:
        try:
            if _libc.unshare(CLONE_NEWNET) != 0:
                raise _oserror("unshare(CLONE_NEWNET)")
            try:
                if prepare is not None:
                    try:
                        prepare()
                    except BaseException as exc:
                        if not isinstance(exc, OSError):  # an OSError is handled below
                            os.unlink(path)
                        raise
                # the new namespace: /proc/thread-self is resolved by this thread, inside it
                if _libc.mount(_THREAD_NETNS_B, path.encode(), b"none", MS_BIND, None) != 0:
                    raise _oserror("bind mount", path)
                identity = stat_identity(path)  # under the name's lock: the mount just made
            finally:
                setns(saved, label="previous namespace")
        except OSError as exc:
            os.unlink(path)
            raise error_for_errno(exc.errno, f"cannot create a network namespace ({exc.strerror})", obj=label,
                                  step="create namespace", strerror=False) from exc
    finally:
        os.close(saved)
    return identity


def remove_named_netns(path: str) -> bool:
    """Unmount and delete a pinned namespace file. Returns False if it was already gone."""
    if _libc.umount2(path.encode(), MNT_DETACH) != 0 and ctypes.get_errno() not in (_errno.EINVAL, _errno.ENOENT):
        raise error_for_errno(ctypes.get_errno(), f"cannot unmount {path}", step="remove namespace")
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


NS_GET_NSTYPE = 0xB703
NS_GET_USERNS = 0xB701


def userns_reaches(fd: int) -> bool:
    """True if the namespace ``fd`` belongs to the calling process's user namespace or one made
    inside it (where the process's capabilities count); False if it belongs to an outer one (the
    machine's own namespaces, seen from a user namespace). ioctl NS_GET_USERNS: EPERM means outer."""
    try:
        owner = fcntl.ioctl(fd, NS_GET_USERNS)
    except PermissionError:
        return False
    except OSError:  # an older kernel without the ioctl: the kernel itself will answer
        return True
    os.close(owner)
    return True


def is_netns_fd(fd: int) -> bool:
    """True if ``fd`` refers to a network namespace (ioctl NS_GET_NSTYPE == CLONE_NEWNET)."""
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE) == CLONE_NEWNET
    except OSError:
        return False


def is_netns_file(path: str) -> bool:
    """True if ``path`` is a network namespace (a mounted nsfs file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return is_netns_fd(fd)
    finally:
        os.close(fd)


@contextmanager
def netns_fd(path: str, *, label: str) -> Iterator[int]:
    fd = open_netns(path, label=label)
    try:
        yield fd
    finally:
        os.close(fd)


# -- sysctls: the one reader and writer ---------------------------------------------------------------

PROC_SYS = "/proc/sys/"
_SYSCTL_TOKEN = re.compile(r"[A-Za-z0-9_.:+-]+(?:[ \t][A-Za-z0-9_.:+-]+)*")
_SYSCTL_NUMBERS = re.compile(r"-?[0-9]+(?:[ \t]+-?[0-9]+)*")


def sysctl_path(key: str) -> str:
    """The /proc/sys file of a ``net.*`` sysctl: a dotted key (``net.ipv4.ip_forward``) or a path
    under /proc/sys/net (``/proc/sys/net/ipv4/conf/br.1/route_localnet``, for names with dots).
    ValidationError for anything else (other subtrees, ``..``, empty parts)."""
    if not isinstance(key, str):
        raise ValidationError(f"sysctl key must be a str, got {type(key).__name__}", obj=repr(key))
    parts = key[len(PROC_SYS):].split("/") if key.startswith(PROC_SYS) else key.split(".")
    if len(parts) < 3 or parts[0] != "net" or any(
            not p or p in (".", "..") or "/" in p or "\0" in p or "\n" in p for p in parts):
        raise ValidationError(f"sysctl key {key!r} must be a net.* key like net.ipv4.ip_forward", obj=key)
    return PROC_SYS + "/".join(parts)


def read_sysctl(key: str) -> str | None:
    """The value of sysctl ``key`` (see :func:`sysctl_path`) in the calling thread's network
    namespace, stripped; None if the kernel has no such key."""
    path = sysctl_path(key)
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise error_for_errno(exc.errno, f"cannot read sysctl {key}", obj=key, step="read sysctl") from exc


def check_sysctl_value(key: str, value: str, old: str | None = None) -> None:
    """ValidationError (naming ``key``) unless ``value`` is simple tokens (digits, letters, ``._:+-``,
    single spaces; no newline), and numbers if ``old`` (the current value) is numbers."""
    if not isinstance(value, str) or not _SYSCTL_TOKEN.fullmatch(value):
        raise ValidationError(f"sysctl value {value!r} for {key} must be plain digits or words (no newline)",
                              obj=key, step="write sysctl")
    if old is not None and _SYSCTL_NUMBERS.fullmatch(old) and not _SYSCTL_NUMBERS.fullmatch(value):
        raise ValidationError(f"sysctl {key} holds numbers ({old!r}); {value!r} is not one",
                              obj=key, step="write sysctl")


def write_sysctl(key: str, value: str, *, expect: str | None = None) -> str | None:
    """Set sysctl ``key`` to ``value`` in the calling thread's network namespace; return the old
    value (None, and nothing written, if the kernel has no such key).

    Nothing is written when the value is already ``value``, nor, with ``expect``, when the
    current value is not ``expect`` (crash recovery puts a value back only if nobody changed it
    since). ``value`` must be simple tokens (digits, letters, ``._:+-``, single spaces): a newline
    or other character is refused, and so is a non-numeric value where the key holds numbers
    (ValidationError naming the key). A refusal by the kernel is a KernelError naming the key.
    """
    path = sysctl_path(key)
    check_sysctl_value(key, value)
    old = read_sysctl(path)
    if old is None:
        return None
    check_sysctl_value(key, value, old)
    if old == value or (expect is not None and old != expect):
        return old
    try:
        with open(path, "w", encoding="ascii") as f:
            f.write(value)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise error_for_errno(exc.errno, f"the kernel refused {key}={value}", obj=key, step="write sysctl") from exc
    return old


# -- /etc/netns/NAME (the iproute2 convention) ------------------------------------------------------

ETC_NETNS_DIR = "/etc/netns"
STATE_DIR = "/run/netns-kit"  # the one root of everything netns_kit keeps on disk (root-only, 0700)
HOSTS_RUN_DIR = os.path.join(STATE_DIR, "hosts")  # the shared hosts file of each network with name resolution
HOSTS_HEADER = "# written by netns_kit for "  # first line of every hosts file netns_kit writes
MS_SLAVE = 1 << 19


def drop_stale_hosts(name: str) -> bool:
    """Delete /etc/netns/NAME/hosts and /etc/netns/NAME/resolv.conf if netns_kit wrote them (a link
    into HOSTS_RUN_DIR, or a file starting with HOSTS_HEADER), then the directory if that leaves it
    empty. True if the hosts file was deleted.
    For crash recovery: a process that dies cannot delete the hosts files of its namespaces."""
    directory = os.path.join(ETC_NETNS_DIR, name)
    resolv = os.path.join(directory, "resolv.conf")
    if os.path.islink(resolv):  # a link to its network's resolv.conf in the state root
        with contextlib.suppress(OSError):
            if os.path.dirname(os.readlink(resolv)) == HOSTS_RUN_DIR:
                os.unlink(resolv)
    else:  # a file of its own (earlier versions wrote one per namespace)
        with contextlib.suppress(OSError), open(resolv, "rb") as f:
            if f.readline().startswith(HOSTS_HEADER.encode()):
                os.unlink(resolv)
    path = os.path.join(directory, "hosts")
    if os.path.islink(path):
        ours = os.path.dirname(os.readlink(path)) == HOSTS_RUN_DIR
    else:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                ours = f.readline().startswith(HOSTS_HEADER)
        except (FileNotFoundError, IsADirectoryError):
            with contextlib.suppress(OSError):  # only a resolv.conf of ours was there
                os.rmdir(directory)
            return False
    if not ours:
        return False
    os.unlink(path)
    with contextlib.suppress(OSError):  # someone else's files are there: leave it
        os.rmdir(directory)
    return True


def etc_netns_binds(name: str) -> list[tuple[bytes, bytes]]:
    """What ``ip netns exec NAME`` binds: each /etc/netns/NAME/X over /etc/X (where /etc/X exists)."""
    directory = os.path.join(ETC_NETNS_DIR, name)
    try:
        entries = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for entry in entries:
        target = os.path.join("/etc", entry)
        if os.path.lexists(target):
            out.append((os.path.join(directory, entry).encode(), target.encode()))
    return out


def enter_etc_view(binds: list[tuple[bytes, bytes]]) -> None:
    """In a freshly forked child (``preexec_fn``): a mount namespace of its own, in which each
    (source, target) of ``binds`` is bind-mounted, as ``ip netns exec`` does. Never call it in
    the library's own process: it changes the calling thread's mount namespace.
    """
    if _libc.unshare(CLONE_NEWNS) != 0:
        raise _oserror("unshare(CLONE_NEWNS)")
    if _libc.mount(b"", b"/", b"none", MS_SLAVE | MS_REC, None) != 0:
        raise _oserror("make / a slave mount")
    for src, dst in binds:
        if _libc.mount(src, dst, b"none", MS_BIND, None) != 0:
            raise _oserror(f"bind {src.decode()} over", dst.decode())


# -- inotify (the name service watches the networks' state and lease files) ---------------------------

IN_MODIFY = 0x2
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")


def inotify_init() -> int:
    """A new non-blocking inotify descriptor (close it with ``os.close``)."""
    fd = int(_libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC))
    if fd < 0:
        raise _oserror("inotify_init1")
    return fd


def inotify_watch(fd: int, path: str, mask: int) -> int:
    """Watch ``path`` for the events in ``mask``; returns the watch descriptor."""
    wd = int(_libc.inotify_add_watch(fd, path.encode(), mask))
    if wd < 0:
        raise _oserror("inotify_add_watch", path)
    return wd


def inotify_rm_watch(fd: int, wd: int) -> None:
    """Stop the watch ``wd``."""
    if _libc.inotify_rm_watch(fd, wd) != 0:
        raise _oserror("inotify_rm_watch")


def inotify_read(fd: int) -> list[tuple[int, int, str]]:
    """The queued events as ``(watch descriptor, mask, name)``; [] if none (never blocks)."""
    out: list[tuple[int, int, str]] = []
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return out
        pos = 0
        while pos + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, pos)
            pos += _EVENT.size
            name = data[pos:pos + length].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            pos += length
            out.append((wd, mask, name))


# -- rootless: a user namespace and private /run and /etc ------------------------------------------

def in_initial_userns() -> bool:
    """True if the process runs in the machine's initial user namespace (its uid map is the identity
    over every uid), False inside a user namespace (rootless mode, ``unshare -U``)."""
    with open("/proc/self/uid_map", encoding="ascii") as f:
        return f.read().split() == ["0", "0", "4294967295"]


def enter_user_namespace() -> tuple[int, int]:
    """Move the whole process into a new user namespace in which its uid and gid are 0 (with every
    capability there), with a new mount namespace and a new, empty network namespace owned by it;
    every mount is made private. Returns the (uid, gid) the process had. Cannot be undone; the
    kernel refuses it (EINVAL) in a process that runs more than one thread. Files of other users
    show as ``nobody`` inside."""
    uid, gid = os.getuid(), os.getgid()
    if _libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET) != 0:
        raise _oserror("unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET)")
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w", encoding="ascii") as f:
            f.write(text)
    if _libc.mount(b"none", b"/", None, MS_PRIVATE | MS_REC, None) != 0:
        raise _oserror("make / private")
    return uid, gid


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                   data.encode() if data is not None else None) != 0:
        raise _oserror(f"mount {fstype or 'bind'} {source}", target)


PRIVATE_DIRS = {"/run": ("netns", os.path.basename(STATE_DIR)), "/etc": ("netns",)}
"""What :func:`private_run_and_etc` makes private: under each directory, these entries."""


def _shadow(top: str, private: tuple[str, ...]) -> list[str]:
    """Cover ``top`` with a tmpfs that shows every entry of the old ``top`` again (a directory or file
    bound back with its mounts, a symlink copied), except ``private``, which are new and empty.
    Returns the paths that could not be bound back (missing inside)."""
    old = os.open(top, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        below = f"/proc/self/fd/{old}"
        entries = sorted(os.listdir(below))
        _mount("netns-kit-rootless", top, "tmpfs", 0, f"mode={os.stat(below).st_mode & 0o7777:o}")
        lost: list[str] = []
        for name in entries:
            if name in private:
                continue
            src, dst = f"{below}/{name}", os.path.join(top, name)
            try:
                if os.path.islink(src):
                    os.symlink(os.readlink(src), dst)
                    continue
                if os.path.isdir(src):
                    os.mkdir(dst)
                else:
                    os.close(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
                _mount(src, dst, None, MS_BIND | MS_REC)
            except OSError:
                lost.append(dst)
        for name in private:
            os.mkdir(os.path.join(top, name), 0o755)
    finally:
        os.close(old)
    return lost


def private_run_and_etc() -> list[str]:
    """In the calling process's own mount namespace (see :func:`enter_user_namespace`), give it new,
    empty, in-memory ``/run/netns``, ``/run/netns-kit`` and ``/etc/netns`` (the machine's own, if
    any, are hidden); everything else reads as before. Where those directories exist, a tmpfs is
    mounted on each; otherwise /run (or /etc) is covered by a tmpfs that binds back each of its
    entries (with the mounts below them) and holds the new directories. Nothing is written to the
    machine's files; it all goes with the mount namespace. Returns the entries of /run and /etc
    that could not be bound back (they are missing inside)."""
    lost: list[str] = []
    for top, entries in PRIVATE_DIRS.items():
        if all(os.path.isdir(os.path.join(top, e)) for e in entries):
            for entry in entries:
                _mount("netns-kit-rootless", os.path.join(top, entry), "tmpfs", 0, "mode=0755")
        else:
            lost += _shadow(top, entries)
    return lost
