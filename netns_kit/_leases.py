"""Address leases of one network, shared by every process that uses it (internal).

A network created by :meth:`netns_kit.Network.create` keeps, next to its state file, a directory
with one small file per address handed out: ``/run/netns-kit/networks/<host>/<name>.leases/<ip>``,
holding the owner (``"<pid>.<start time>"``), the host end of the endpoint's veth, and the
endpoint's names and namespace identity (what the network's name service, :mod:`netns_kit._dnsd`,
answers from: it watches these directories). Taking an
address is one ``open(O_CREAT | O_EXCL)``: atomic across processes without a lock and without
reading what the others hold, so a connect costs the same with 10 or 10,000 endpoints. The
in-process :class:`~netns_kit.ipam.AddressAllocator` proposes candidates (round-robin from its
cursor); a candidate another process holds is skipped and remembered. Only when the allocator
believes the range is full is the directory read again (another process may have given addresses
back) and addresses of dead processes whose interface is gone are reclaimed.

Files are opened with ``O_NOFOLLOW`` in a root-only directory: a planted symlink is refused.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from . import _state
from .errors import AlreadyExistsError, StateError
from .ipam import AddressAllocator, ExhaustedError
from .model import IPAddr, parse_ip

__all__ = ["Lease", "LeaseBook", "NetworkAddresses"]

log = logging.getLogger("netns_kit")


@dataclass(frozen=True)
class Lease:
    """Who holds one address: the owning process, the host end of its veth (if known), the names
    other endpoints resolve to it and the ``(dev, inode)`` identity of its namespace."""

    ip: str
    owner: str
    link: str | None
    names: tuple[str, ...] = ()
    ns: tuple[int, int] | None = None


class LeaseBook:
    """The lease directory of one network (``None``: a network of this process only)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def create_directory(self) -> None:
        with contextlib.suppress(FileExistsError):
            os.mkdir(self.directory, 0o700)

    def _path(self, ip: str) -> str:
        return f"{self.directory}/{ip}"  # an address has no "/": os.path.join's result

    def claim(self, ip: IPAddr, link: str | None, names: tuple[str, ...] = (),
              ns: tuple[int, int] | None = None) -> bool:
        """Take ``ip`` for this process (False if some process holds it already)."""
        record: dict[str, object] = {"owner": _state.owner_id(), "link": link}
        if names:
            record["names"] = list(names)
        if ns is not None:
            record["ns"] = list(ns)
        data = _state.dumps_compact(record).encode()
        try:
            fd = os.open(self._path(str(ip)), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600)
        except FileExistsError:
            return False
        except FileNotFoundError as exc:
            raise StateError(f"the lease directory {self.directory} is gone (the network was removed)",
                             obj=str(ip), step="allocate address") from exc
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        return True

    def release(self, ip: IPAddr | str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(str(ip)))

    def held(self, ip: IPAddr | str) -> bool:
        return os.path.lexists(self._path(str(ip)))

    def read(self) -> Iterator[Lease]:
        """Every lease now in the directory (a file that vanishes while read is skipped)."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return
        for name in names:
            lease = self.get(name)
            if lease is not None:
                yield lease

    def get(self, ip: str) -> Lease | None:
        """The lease of ``ip`` (None if there is none)."""
        try:
            fd = os.open(self._path(ip), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP):
                return None
            raise
        try:
            raw = os.read(fd, 65536)
        finally:
            os.close(fd)
        try:
            data = json.loads(raw)
            ns = data.get("ns")
            return Lease(ip, str(data["owner"]), data.get("link"), tuple(str(n) for n in data.get("names", ())),
                         (int(ns[0]), int(ns[1])) if ns else None)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return Lease(ip, "", None)  # half-written by a process that died: held, owner unknown

    def remove_directory(self) -> None:
        """Delete every lease and the directory (the network is gone)."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return
        for name in names:
            self.release(name)
        with contextlib.suppress(OSError):
            os.rmdir(self.directory)


class NetworkAddresses:
    """The IPv4 (and optional IPv6) addresses of one network: allocator plus, when the network is
    shared through the state directory, its :class:`LeaseBook`. Callers serialise calls (the
    network's host lock in this process)."""

    def __init__(self, alloc: AddressAllocator, alloc6: AddressAllocator | None, book: LeaseBook | None) -> None:
        self.alloc = alloc
        self.alloc6 = alloc6
        self.book = book
        self._mine: set[IPAddr] = set()  # what this process took (the allocators also hold others')

    def allocators(self) -> Iterator[AddressAllocator]:
        yield self.alloc
        if self.alloc6 is not None:
            yield self.alloc6

    def check(self, ip: IPAddr | None, ip6: IPAddr | None, *, fixed_only: bool = False) -> None:
        """Refuse (typed error, nothing taken) unless ``ip``/``ip6`` or a free address can be had
        (``fixed_only``: check only the addresses given)."""
        for a, want in ((self.alloc, ip), (self.alloc6, ip6)):
            if a is None or (want is None and fixed_only):
                continue
            if want is not None:
                a.check(want)
                if self.book is not None and self.book.held(want):
                    raise AlreadyExistsError(f"address {want} is already in use in {a.subnet} (by another "
                                             "process)", obj=str(want), step="check address")
            elif a.available <= 0 and not self._refresh(a):
                raise ExhaustedError(f"no free address left in {a.plan.range} (subnet {a.subnet})",
                                     obj=str(a.subnet), step="allocate address")

    def _refresh(self, a: AddressAllocator) -> bool:
        """Forget what other processes gave back since we last looked; True if any is free now."""
        if self.book is None:
            return False
        held = {parse_ip(lease.ip, what="leased address") for lease in self.book.read()}
        a.load({ip for ip in held | self._mine if ip.version == a.subnet.version}, a.cursor)
        return a.available > 0

    def _take(self, a: AddressAllocator, want: IPAddr | None, link: str | None, names: tuple[str, ...],
              ns: tuple[int, int] | None) -> IPAddr:
        if want is not None:
            ip = a.allocate(want)
            if self.book is not None and not self.book.claim(ip, link, names, ns):
                a.release(ip)
                raise AlreadyExistsError(f"address {ip} is already in use in {a.subnet} (by another process)",
                                         obj=str(ip), step="allocate address")
            return ip
        for _ in range(2):
            while a.available > 0:
                ip = a.allocate()
                if self.book is None or self.book.claim(ip, link, names, ns):
                    return ip
                # another process holds it: it stays "taken" in our view, try the next one
            if not self._refresh(a):
                break
        raise ExhaustedError(f"no free address left in {a.plan.range} (subnet {a.subnet})", obj=str(a.subnet),
                             step="allocate address")

    def take(self, ip: IPAddr | None, ip6: IPAddr | None, link: str | None, names: tuple[str, ...] = (),
             ns: tuple[int, int] | None = None) -> tuple[IPAddr, IPAddr | None]:
        """Allocate the IPv4 address (and the IPv6 one on a dual-stack network), each lease recording
        ``names`` and the namespace identity ``ns``. Undo: :meth:`give_back`."""
        addr = self._take(self.alloc, ip, link, names, ns)
        try:
            addr6 = self._take(self.alloc6, ip6, link, names, ns) if self.alloc6 is not None else None
        except BaseException:
            self.give_back(addr, None)
            raise
        self._mine.add(addr)
        if addr6 is not None:
            self._mine.add(addr6)
        return addr, addr6

    def give_back(self, addr: IPAddr, addr6: IPAddr | None) -> None:
        for a, ip in ((self.alloc, addr), (self.alloc6, addr6)):
            if a is not None and ip is not None:
                self._mine.discard(ip)
                a.release(ip)
                if self.book is not None:
                    self.book.release(ip)

    def reclaim_dead(self, has_link: Callable[[str], bool]) -> bool:
        """Give back addresses of netns_kit processes that died once their host-side interface is
        gone (``has_link(name)`` False); True if any. An address of a dead owner whose interface is
        still there (an endpoint kept on purpose) stays taken, as does one without a recorded link."""
        if self.book is None:
            return False
        me = _state.owner_id()
        alive: dict[str, bool] = {}
        reclaimed = False
        for lease in self.book.read():
            if lease.owner == me or not lease.owner or lease.link is None:
                continue
            if lease.owner not in alive:
                alive[lease.owner] = _state.owner_alive(lease.owner)
            if alive[lease.owner] or has_link(lease.link):
                continue
            log.info("address %s of dead process %s is free again", lease.ip, lease.owner)
            self.book.release(lease.ip)
            reclaimed = True
        if reclaimed:
            for a in self.allocators():
                self._refresh(a)
        return reclaimed

    def foreign(self, mine: set[str]) -> list[str]:
        """Leases not in ``mine``, as ``"IP of process OWNER"``."""
        if self.book is None:
            return []
        return [f"{lease.ip} of process {lease.owner or 'unknown'}" for lease in self.book.read()
                if lease.ip not in mine]
