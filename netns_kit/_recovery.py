"""Crash recovery: undo what dead netns_kit processes left behind, and nothing else.

The top of the package: recovery knows every kind of object netns_kit makes (namespaces,
links, addresses, routes, sysctls, firewall changes), so it sits above them all and reads the
on-disk journals through :mod:`netns_kit._state` (the durable base, which knows none of them).
See :mod:`netns_kit._state` for what the journal records and how ownership marks work.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from . import _dns, _nft, _state, _sys
from ._hostsfile import release_etc_netns
from ._leases import LeaseBook
from ._netlink import RTPROT_STATIC, RtnlSocket
from ._state import MARK_PREFIX, JournalEntry, JsonDict
from .errors import NetnsKitError, NotFoundError
from .firewall import Firewall, recover_change
from .model import Route, check_args
from .namespace import Namespace

__all__ = ["RecoveryReport", "recover", "register_recoverer"]

log = logging.getLogger("netns_kit")

TC_H_ROOT = 0xFFFFFFFF  # a root qdisc's parent


@dataclass
class RecoveryReport:
    """What :func:`recover` did: the undone changes, those it left alone, and the failures."""

    undone: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    journals: int = 0

    def __bool__(self) -> bool:
        return bool(self.undone)


class _NsFinder:
    """Reach a namespace named in a journal: current thread's, /run/netns/*, or any process's."""

    def __init__(self) -> None:
        self._socks: dict[tuple[int, int], RtnlSocket] = {}
        self._cache: dict[tuple[int, int], str | None] = {}

    def path_of(self, ref: JsonDict) -> str | None:
        ident = (int(ref["id"][0]), int(ref["id"][1]))
        if ident in self._cache:
            return self._cache[ident]
        found: str | None = None
        candidates: list[str] = [_sys.current_netns_path()]
        if ref.get("path"):
            candidates.append(str(ref["path"]))
        with contextlib.suppress(OSError):
            candidates += [os.path.join(_sys.NETNS_RUN_DIR, n) for n in sorted(os.listdir(_sys.NETNS_RUN_DIR))]
        for c in candidates:
            with contextlib.suppress(OSError):
                if _sys.stat_identity(c) == ident:
                    found = c
                    break
        if found is None:
            with contextlib.suppress(OSError):
                for pid in os.listdir("/proc"):
                    if pid.isdigit():
                        with contextlib.suppress(OSError):
                            if _sys.stat_identity(f"/proc/{pid}/ns/net") == ident:
                                found = f"/proc/{pid}/ns/net"
                                break
        self._cache[ident] = found
        return found

    def sock(self, ref: JsonDict) -> RtnlSocket | None:
        """A socket in the namespace, or None if the namespace is gone (so is everything in it)."""
        ident = (int(ref["id"][0]), int(ref["id"][1]))
        if ident in self._socks:
            return self._socks[ident]
        path = self.path_of(ref)
        if path is None:
            return None
        try:
            with _sys.netns_fd(path, label=path) as fd:
                if _sys.stat_identity(fd) != ident:
                    return None
                s = RtnlSocket.open(fd, label=path)
        except NotFoundError:
            return None
        self._socks[ident] = s
        return s

    def close(self) -> None:
        for s in self._socks.values():
            s.close()
        self._socks.clear()


Recoverer = Callable[[JournalEntry, _NsFinder], str | None]


def _recover_netns(e: JournalEntry, f: _NsFinder) -> str | None:
    path = str(e.args["path"])
    name = str(e.args["name"])
    want = MARK_PREFIX + e.owner
    with _state.name_lock(name):
        if not os.path.lexists(path):
            return None
        if _sys.is_netns_file(path):
            fd = _sys.open_netns(path, label=name)
            try:
                if "id" in e.extra and list(_sys.stat_identity(fd)) != list(e.extra["id"]):
                    raise _Skip(f"namespace {name!r} was replaced by another")
                sock = RtnlSocket.open(fd, label=name)
            finally:
                os.close(fd)
            try:
                lo = sock.get_link(index=1)
            finally:
                sock.close()
            if lo is None or lo.alias != want:
                raise _Skip(f"namespace {name!r} does not carry the mark {want!r}")
            _sys.remove_named_netns(path)
            hosts = " and its hosts file" if _sys.drop_stale_hosts(name) else ""
            return f"removed namespace {name}{hosts}"
        # an empty placeholder left between O_EXCL create and the bind mount
        st = os.lstat(path)
        if not e.confirmed and st.st_size == 0 and os.path.isfile(path) and not os.path.ismount(path):
            os.unlink(path)
            return f"removed placeholder {path}"
        raise _Skip(f"{path} is neither our namespace nor our placeholder")


def _delete_marked(sock: RtnlSocket, name: str, owner: str) -> bool:
    info = sock.get_link(name=name)
    if info is None:
        return False
    want = MARK_PREFIX + owner
    if info.alias != want and not (not info.alias and info.group == _state.tag(owner)):
        raise _Skip(f"interface {name!r} does not carry the mark {want!r}")
    return sock.delete_link(info.index, obj=name)


def _recover_link(e: JournalEntry, f: _NsFinder) -> str | None:
    name = str(e.args["name"])
    sock = f.sock(e.args["ns"])
    if sock is not None and _delete_marked(sock, name, e.owner):
        return f"deleted {e.args.get('kind', 'link')} {name}"
    peer = e.args.get("peer")
    if peer:
        psock = f.sock(e.args["peer_ns"])
        if psock is not None and _delete_marked(psock, str(peer), e.owner):
            return f"deleted {e.args.get('kind', 'link')} {name} (by its peer {peer})"
    return None


def _recover_address(e: JournalEntry, f: _NsFinder) -> str | None:
    """An address is ours if it carries the owner mark the journal recorded (IFA_PROTO), confirmed or
    not: the mark closes the window between the kernel's acknowledgement and the confirmation. One
    without the mark never is. A journal without a mark (a kernel before 6.1 keeps none) falls back
    to the confirmation."""
    proto = e.args.get("proto")
    if proto is None and not e.confirmed:
        raise _Skip("unconfirmed address without an owner mark (cannot tell it from someone else's)")
    sock = f.sock(e.args["ns"])
    if sock is None:
        return None
    info = sock.get_link(index=int(e.args["index"]))
    if info is None or info.name != e.args["ifname"]:
        return None
    iface = ipaddress.ip_interface(str(e.args["address"]))
    if proto is not None:
        have = sock.address_protocol(info.index, iface)
        if have is None:
            return None
        if have != int(proto):
            raise _Skip(f"address {iface} on {info.name} does not carry the owner mark proto {proto} "
                        f"(it has proto {have}: someone else's)")
    if sock.delete_address(info.index, iface, obj=str(iface)):
        return f"deleted address {iface} from {info.name}"
    return None


def _recover_route(e: JournalEntry, f: _NsFinder) -> str | None:
    """A route is ours if it carries the owner mark the journal recorded as its protocol, confirmed
    or not; the kernel deletes only a route with that protocol, so a same-looking route of someone
    else's is never touched."""
    a = e.args
    proto = a.get("proto")
    if proto is None and not e.confirmed:
        raise _Skip("unconfirmed route without an owner mark (cannot tell it from someone else's)")
    sock = f.sock(a["ns"])
    if sock is None:
        return None
    oif = a.get("oif")
    if oif is not None:
        info = sock.get_link(index=int(oif))
        if info is None or info.name != a.get("oif_name"):
            return None
    route = Route(dst=a["dst"], gateway=a.get("gateway"), metric=a.get("metric"), table=int(a.get("table", 254)),
                  dev=a.get("oif_name"))
    if proto is None:  # a journal from before routes carried the mark: what netns_kit used then
        proto = RTPROT_STATIC
    same = [r for r in sock.routes(route.family, table=route.table)
            if r.dst == route.network and r.gateway == route.gateway_ip
            and (oif is None or r.oif == int(oif)) and (route.metric is None or r.metric == route.metric)]
    if same and not any(r.protocol == int(proto) for r in same):
        raise _Skip(f"route {a['dst']} does not carry the owner mark proto {proto} "
                    f"(it has proto {same[0].protocol}: someone else's)")
    if sock.delete_route(route, oif, proto=int(proto)):
        return f"deleted route {a['dst']}"
    return None


def _recover_sysctl(e: JournalEntry, f: _NsFinder) -> str | None:
    if not e.confirmed:
        raise _Skip("unconfirmed sysctl change")
    path = f.path_of(e.args["ns"])
    if path is None:
        return None
    key_path = str(e.args["path"])
    with _sys.netns_fd(path, label=path) as fd, _sys.entered(fd, label=path):
        now = _sys.write_sysctl(key_path, str(e.args["old"]), expect=str(e.args["new"]))
    if now is None:
        return None  # the key went with its interface
    if now != e.args["new"]:
        raise _Skip(f"{key_path} was changed again since (now {now!r})")
    return f"restored {key_path}={e.args['old']}"


def _recover_nft(e: JournalEntry, f: _NsFinder) -> str | None:
    """A firewall change (nft elements, sysctls): undone by the firewall's :func:`recover_change`."""
    path = f.path_of(e.args["ns"])
    if path is None:
        return None
    # elements carry their owner's mark from the batch that adds them, so even an unconfirmed
    # change (crash between the batch and the "ok") is undone safely; its sysctls are not
    args = e.args if e.confirmed else {**e.args, "sysctls": []}
    with _sys.netns_fd(path, label=path) as fd, _sys.entered(fd, label=path):
        return recover_change(path, MARK_PREFIX + e.owner, args)


def _recover_nft_table(e: JournalEntry, f: _NsFinder) -> str | None:
    """A table of its own a fault made (a partition, packet loss): deleted if its rules carry the owner's
    mark as their comment."""
    path = f.path_of(e.args["ns"])
    if path is None:
        return None
    family, table = str(e.args["family"]), str(e.args["table"])
    want = MARK_PREFIX + e.owner
    with _sys.netns_fd(path, label=path) as fd, _sys.entered(fd, label=path):
        ctx = _nft.NftContext(None, label=path)
        text = ctx.table_text(family, table, step="recover table")
        if text is None:
            return None
        if f'comment "{want}"' not in text:
            raise _Skip(f"table {family} {table} does not carry the mark {want!r}")
        ctx.run_json([{"delete": {"table": {"family": family, "name": table}}}], obj=f"table {family} {table}",
                     step="recover table")
    return f"deleted nft table {family} {table}"


def _recover_link_up(e: JournalEntry, f: _NsFinder) -> str | None:
    """A link a flap left down (the process died while it was down): set up again."""
    sock = f.sock(e.args["ns"])
    if sock is None:
        return None
    info = sock.get_link(index=int(e.args["index"]))
    if info is None or info.name != e.args["ifname"] or info.up:
        return None
    sock.set_link(info.index, up=True, obj=info.name)
    return f"set {info.name} up again"


def _recover_qdisc(e: JournalEntry, f: _NsFinder) -> str | None:
    """A root qdisc of a bandwidth limit or netem: deleted if the interface's root qdisc is still that kind."""
    sock = f.sock(e.args["ns"])
    if sock is None:
        return None
    index = int(e.args["index"])
    info = sock.get_link(index=index)
    if info is None or info.name != e.args["ifname"]:
        return None
    kind = str(e.args["kind"])
    if not any(k == kind and parent == TC_H_ROOT for _i, k, _h, parent in sock.qdiscs(index)):
        return None
    if sock.delete_qdisc(index, obj=info.name):
        return f"deleted the {kind} root qdisc of {info.name}"
    return None


class _Skip(Exception):
    """Recovery leaves this entry alone (not provably ours)."""


_RECOVERERS: dict[str, Recoverer] = {
    "netns": _recover_netns,
    "link": _recover_link,
    "address": _recover_address,
    "route": _recover_route,
    "sysctl": _recover_sysctl,
    "nft": _recover_nft,
    "nft_table": _recover_nft_table,
    "link_up": _recover_link_up,
    "qdisc": _recover_qdisc,
}


def register_recoverer(op: str, fn: Recoverer) -> None:
    """Let another module teach recovery how to undo its own ``op`` (and the journal to accept it)."""
    _RECOVERERS[op] = fn
    _state.register_op(op)


def recover(*, firewall: bool = True) -> RecoveryReport:
    """Undo what dead netns_kit processes left behind, and nothing else.

    For each journal in /run/netns-kit/journal/ whose owner process is gone (PID and start
    time), the changes neither undone nor kept are undone newest first, each only if the
    object still carries that owner's mark. Journals of live processes are left alone.
    A journal fully handled is deleted; one with failures stays for a later try.
    Safe to call at any time, from any number of processes (one recovery runs at a time).
    With ``firewall``, the calling thread's namespace's nft table is cleaned too (elements
    whose owner mark names a dead process).
    """
    check_args("recover", firewall=(firewall, bool))
    _sys.check_privileges()
    report = RecoveryReport()
    if not os.path.isdir(_state.STATE_DIR):
        return report
    finder = _NsFinder()
    try:
        with _state.lock("recover"):
            for owner, path in (_state.dead_journals() if os.path.isdir(_state.journal_dir()) else []):
                report.journals += 1
                failed = False
                for e in reversed(_state.read_journal(path, owner)):
                    desc = f"{e.op} {json.dumps(e.args, sort_keys=True)} of {owner}"
                    try:
                        what = _RECOVERERS[e.op](e, finder) if e.op in _RECOVERERS else None
                        if e.op not in _RECOVERERS:
                            raise _Skip(f"unknown op {e.op!r}")
                    except _Skip as skip:
                        report.skipped.append(f"{desc}: {skip}")
                        log.info("recover: left alone %s: %s", desc, skip)
                        continue
                    except NotFoundError:
                        continue
                    except (NetnsKitError, OSError) as exc:
                        exc.add_note(f"while recovering: {desc}")
                        report.failures.append(exc)
                        failed = True
                        continue
                    if what:
                        report.undone.append(f"{what} (left by {owner})")
                        log.info("recover: %s (left by %s)", what, owner)
                if not failed:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
            if firewall:
                _recover_firewall(report)
            _recover_files(report, finder)
            for what in _dns.recover_services():  # a name service whose networks are all gone
                report.undone.append(what)
                log.info("recover: %s", what)
    finally:
        finder.close()
    return report


def _bridge_alive(sock: RtnlSocket | None, data: JsonDict) -> bool:
    """True if the bridge a network state file names is still there (same name and index)."""
    if sock is None:
        return False
    try:
        info = sock.get_link(index=int(str(data["bridge_index"])))
    except (KeyError, ValueError):
        return False
    return info is not None and info.name == data.get("bridge") and info.kind == "bridge"


def _recover_files(report: RecoveryReport, finder: _NsFinder) -> None:
    """The files dead processes left in the state root, and nothing a live one (or a namespace) uses:

    - a network's state file and lease directory, once its creator is dead and its bridge gone
      (a persistent network, whose bridge stays, keeps them: another process may open it);
    - a shared hosts file or resolv.conf whose writer is dead and that no /etc/netns/NAME links to;
    - /etc/netns, if netns_kit made it and it is empty now.
    """
    base = _state.networks_dir()
    with contextlib.suppress(FileNotFoundError):
        for hdir in sorted(os.listdir(base)):
            try:
                dev, ino = (int(x) for x in hdir.split("-", 1))
            except ValueError:
                continue
            directory = os.path.join(base, hdir)
            with _state.host_lock((dev, ino)):
                sock = finder.sock({"id": [dev, ino]})
                try:
                    entries = sorted(os.listdir(directory))
                except FileNotFoundError:
                    continue
                for entry in entries:
                    path = os.path.join(directory, entry)
                    if entry.endswith(".json"):
                        data = _state.read_json(path) or {}
                        owner = str(data.get("owner", ""))
                        if _state.owner_alive(owner) or _bridge_alive(sock, data):
                            continue
                        LeaseBook(path[: -len(".json")] + ".leases").remove_directory()
                        _state.delete_json(path)
                        what = f"removed the state file and leases of network {entry[: -len('.json')]}"
                    elif entry.endswith(".leases") and not os.path.exists(path[: -len(".leases")] + ".json"):
                        LeaseBook(path).remove_directory()  # a network's leases without its settings
                        what = f"removed the leases of network {entry[: -len('.leases')]}"
                        owner = "a dead process"
                    else:
                        continue
                    report.undone.append(f"{what} (left by {owner})")
                    log.info("recover: %s (left by %s)", what, owner)
                _state.prune_dirs(directory)
    linked: set[str] = set()
    with contextlib.suppress(OSError):
        for name in os.listdir(_sys.ETC_NETNS_DIR):
            for entry in ("hosts", "resolv.conf"):  # links to shared hosts and resolv.conf files
                with contextlib.suppress(OSError):
                    linked.add(os.readlink(os.path.join(_sys.ETC_NETNS_DIR, name, entry)))
    with contextlib.suppress(FileNotFoundError):
        for entry in sorted(os.listdir(_sys.HOSTS_RUN_DIR)):
            path = os.path.join(_sys.HOSTS_RUN_DIR, entry)
            owner = entry.rpartition("@")[2]
            if "@" not in entry or _state.owner_alive(owner) or path in linked:
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            what = "resolv.conf" if entry.startswith("resolv.") else "hosts file"
            report.undone.append(f"removed the shared {what} {path} (left by {owner})")
        _state.prune_dirs(_sys.HOSTS_RUN_DIR)
    if release_etc_netns():
        report.undone.append(f"removed {_sys.ETC_NETNS_DIR} (made by netns_kit, empty now)")


def _recover_firewall(report: RecoveryReport) -> None:
    """nft elements carry their owner's mark as a comment; the firewall deletes those of dead owners."""
    try:
        n = Firewall.for_namespace(Namespace.current()).recover_leftovers()
    except NetnsKitError as exc:
        report.failures.append(exc)
        return
    if n:
        report.undone.append(f"deleted {n} nft element(s) left by dead processes")
