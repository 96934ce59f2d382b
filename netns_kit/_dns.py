"""The name service of user-defined networks, from the library's side (see docs/dns.md).

One resolver process per host namespace (:mod:`netns_kit._dnsd`) answers for every network with
``resolve_names`` in it, whoever made them. This module starts it, finds it, stops it, and writes
the endpoints' resolv.conf:

- :func:`reserve_port` (at :meth:`Network.create`): the host's service port, picked once (the
  highest port below the ephemeral range free for UDP and TCP) and recorded in
  ``/run/netns-kit/dns/<dev>-<ino>.json``; the
  network records it too and its firewall policy DNATs ``<gateway>:53`` (UDP and TCP) to
  ``<gateway>:<port>``. The service never binds port 53, so a resolver the host runs there
  (systemd-resolved, dnsmasq, named) is never in its way, nor it in theirs.
- :func:`serve` (end of :meth:`Network.create`): starts the process if none runs for the host
  (a session of its own, through :mod:`netns_kit._procs`; it outlives the process that started
  it), then waits until it listens on the new network's gateway (it says so in
  ``dns/<dev>-<ino>.serving``).
- :func:`release` (end of :meth:`Network.remove`): when no network with name resolution is left
  in the host, the process is stopped (by its recorded PID and start time) and its record goes.
- :func:`on_connect` / :func:`on_disconnect`: ``/etc/netns/NAME/resolv.conf`` of a named
  namespace, pointing at its network's gateway, with the host's search domains and ``ndots:0``.
  Written only where no resolv.conf was (one netns_kit did not write is left alone), removed when
  the namespace leaves its last network with name resolution.
- :func:`recover_services` (from :func:`netns_kit.recover`): stops a service whose host has no
  network left (its owner was killed before removing them) and drops records of dead services.

Locks: ``dns-<dev>-<ino>`` (see :mod:`netns_kit._state`) serialises starting and stopping one
host's service across processes; it is taken inside the host lock, never around it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import _procs, _state, _sys
from ._dnsmodel import ResolvConf
from .errors import StateError
from .model import check_args
from .namespace import Namespace

if TYPE_CHECKING:
    from ._registry import HostRegistry
    from .connection import Connection
    from .network import Network

__all__ = ["NameService", "engine_flags", "on_connect", "on_disconnect", "recover_services", "release",
           "reserve_port", "serve"]

log = logging.getLogger("netns_kit")

READY_TIMEOUT = 15.0  # seconds for a new service process to answer (it imports netns_kit first)
RESOLV_CONF = "/etc/resolv.conf"
HEADER = f"{_sys.HOSTS_HEADER}network %s: its name service (see netns_kit docs/dns.md)"

_owned: dict[str, str] = {}  # /etc/netns/NAME/resolv.conf linked by this process -> the shared file it names
_shared: dict[str, tuple[str, tuple[int, int, int] | None]] = {}  # shared file -> (gateway, host resolv.conf key)
_owned_lock = threading.Lock()
CHECK_EVERY = 1.0  # seconds: how often a connect looks whether the host's service still runs
_checked: dict[tuple[int, int], float] = {}  # host namespace identity -> when its service was last seen alive
_host_resolv: tuple[tuple[int, int, int], ResolvConf] | None = None  # the host's resolv.conf by (ino, mtime, size)


def _key(identity: tuple[int, int]) -> str:
    return f"{identity[0]}-{identity[1]}"


def _record_path(identity: tuple[int, int]) -> str:
    return os.path.join(_state.dns_dir(), _key(identity) + ".json")


def _log_path(identity: tuple[int, int]) -> str:
    return os.path.join(_state.dns_dir(), _key(identity) + ".log")


def _lock(identity: tuple[int, int]) -> contextlib.AbstractContextManager[None]:
    return _state.lock(f"dns-{_key(identity)}")


# -- the service process -----------------------------------------------------------------------------

@dataclass(frozen=True)
class NameService:
    """The name service of one host namespace, as recorded and found running now (read-only view).

    ``NameService.of()`` (the calling thread's namespace) or ``NameService.of(host)``.
    ``running`` is True while its process (``pid``) is alive; ``port`` is the service port each
    network's gateway port 53 is redirected to; ``log`` is the file its messages go to.
    """

    host: str
    pid: int | None
    port: int | None
    running: bool
    log: str

    @classmethod
    def of(cls, host: Namespace | None = None) -> NameService:
        check_args("NameService.of", host=(host, Namespace, None))
        host = host if host is not None else Namespace.current()
        data = _state.read_json(_record_path(host.identity)) or {}
        owner = str(data.get("owner") or "")
        pid = int(data["pid"]) if data.get("pid") else None
        port = int(data["port"]) if data.get("port") else None
        return cls(host.label, pid, port, bool(owner) and _state.owner_alive(owner), _log_path(host.identity))


def _pick_port(host: Namespace) -> int:
    """The highest port below ``host``'s ephemeral range (``net.ipv4.ip_local_port_range``) that no
    socket holds for UDP or TCP on any address: outside the range, it never competes with the
    host ports picked for ``-p 80`` nor with outgoing connections."""
    with host.enter():
        text = _sys.read_sysctl("net.ipv4.ip_local_port_range") or ""
        try:
            low = int(text.split()[0])
        except (ValueError, IndexError):
            low = 32768
        for port in range(min(low, 65536) - 1, 1023, -1):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    udp.bind(("0.0.0.0", port))
                    tcp.bind(("0.0.0.0", port))
                except OSError:
                    continue
                return port
    raise StateError("no port free for both UDP and TCP for the name service", namespace=host.label,
                     step="pick name service port")


def reserve_port(host: Namespace) -> int:
    """The host's service port: the running service's, else one a network of the host already
    uses, else a new one (:func:`_pick_port`). Nothing is written: the network's state file and
    the service's record keep it."""
    ident = host.identity
    with _lock(ident):
        data = _state.read_json(_record_path(ident)) or {}
        if data.get("port"):
            return int(data["port"])
        for port in _networks_left(ident).values():
            return port
        return _pick_port(host)


# The service process imports only the modules it needs (not the package's __init__, which loads
# pyroute2 and libnftables): the package is given to it as a bare namespace of its directory.
_BOOT = ("import sys, types; pkg = types.ModuleType('netns_kit'); pkg.__path__ = [sys.argv[1]]; "
         "sys.modules['netns_kit'] = pkg; from netns_kit._dnsd import main; sys.exit(main(sys.argv[2:]))")


def _start(host: Namespace, data: dict[str, object]) -> None:
    """Start the service process of ``host`` and record it (caller holds the host's dns lock)."""
    ident = host.identity
    pkg_dir = os.path.dirname(os.path.abspath(__file__))
    _state.ensure_dir(_state.dns_dir())
    with host.enter():
        pid = _procs.start_service([sys.executable, "-c", _BOOT, pkg_dir, _key(ident)], env=dict(os.environ),
                                   log_path=_log_path(ident))
    owner = _state.owner_of(pid) or f"{pid}.0"
    _state.write_json(_record_path(ident), {**data, "pid": pid, "owner": owner, "started_by": _state.owner_id()})
    log.info("started the name service of %s (pid %d)", host.label, pid)


def _serving_path(identity: tuple[int, int]) -> str:
    return os.path.join(_state.dns_dir(), _key(identity) + ".serving")


def _answers(identity: tuple[int, int], pid: int, network: str, port: int) -> bool:
    """True if the service ``pid`` says it listens for ``network`` on ``port``: it writes
    ``dns/<host>.serving`` once both sockets of a network are bound (a file, not a probe query:
    the host's ``lo`` may be down, and local traffic to the gateway goes through it)."""
    try:
        data = _state.read_json(_serving_path(identity)) or {}
    except (OSError, ValueError):
        return False
    return data.get("pid") == pid and (data.get("networks") or {}).get(network) == port


def serve(network: Network, port: int) -> None:
    """Make sure the service of ``network``'s host runs and answers on the network's gateway.
    StateError (naming the service's log) if it does not within :data:`READY_TIMEOUT` seconds."""
    host = network.host
    ident = host.identity
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        with _lock(ident):
            data = _state.read_json(_record_path(ident)) or {}
            owner = str(data.get("owner") or "")
            if not owner or not _state.owner_alive(owner):
                _start(host, {**data, "port": data.get("port") or port})
                data = _state.read_json(_record_path(ident)) or {}
                owner = str(data.get("owner") or "")
        pid = int(str(data.get("pid") or 0))
        while time.monotonic() < deadline and _state.owner_alive(owner):
            if _answers(ident, pid, network.name, port):
                return
            time.sleep(0.002)
        if time.monotonic() > deadline:
            raise StateError(f"the name service does not answer on {network.gateway}:{port} (see "
                             f"{_log_path(ident)})", obj=network.name, namespace=host.label,
                             step="start name service")


def _networks_left(identity: tuple[int, int]) -> dict[str, int]:
    """Networks with name resolution recorded for the host (any process's), with their port."""
    directory = os.path.join(_state.networks_dir(), _key(identity))
    try:
        entries = sorted(os.listdir(directory))
    except FileNotFoundError:
        return {}
    out = {}
    for e in entries:
        if e.endswith(".json"):
            try:
                data = _state.read_json(os.path.join(directory, e)) or {}
            except (OSError, ValueError):
                continue
            if data.get("resolve_names", True) and data.get("dns_port"):
                out[e[: -len(".json")]] = int(str(data["dns_port"]))
    return out


def _stop(identity: tuple[int, int], data: dict[str, object]) -> bool:
    """Stop the recorded service and delete its record and log; True if it was running."""
    _checked.pop(identity, None)
    owner = str(data.get("owner") or "")
    stopped = False
    if owner and data.get("pid"):
        stopped = _procs.stop_service(int(str(data["pid"])), lambda: _state.owner_alive(owner))
    for path in (_log_path(identity), _serving_path(identity)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    _state.delete_json(_record_path(identity))
    return stopped


def release(host: Namespace) -> None:
    """After a network of ``host`` went: stop the service if no network with name resolution is left."""
    ident = host.identity
    with _lock(ident):
        data = _state.read_json(_record_path(ident))
        if data is None or _networks_left(ident):
            return
        if _stop(ident, data):
            log.info("stopped the name service of %s (no network left)", host.label)


def recover_services() -> list[str]:
    """Stop services whose host has no network with name resolution left, and drop the records
    of services that are gone; returns what was done (for :func:`netns_kit.recover`)."""
    out: list[str] = []
    try:
        entries = sorted(os.listdir(_state.dns_dir()))
    except FileNotFoundError:
        return out
    for entry in entries:
        if not entry.endswith(".json"):
            continue
        try:
            ident = tuple(int(x) for x in entry[: -len(".json")].split("-", 1))
        except ValueError:
            continue
        identity = (ident[0], ident[1])
        with _lock(identity):
            data = _state.read_json(_record_path(identity))
            if data is None:
                continue
            owner = str(data.get("owner") or "")
            alive = bool(owner) and _state.owner_alive(owner)
            if _networks_left(identity) and alive:
                continue
            if _networks_left(identity):  # dead, networks left: the next connect or create restarts it
                if owner:
                    _state.write_json(_record_path(identity), {k: v for k, v in data.items()
                                                               if k not in ("pid", "owner")})
                continue
            if _stop(identity, data):
                out.append(f"stopped the name service of host namespace {_key(identity)} (pid {data.get('pid')}; "
                           "no network left)")
            else:
                out.append(f"removed the record of the name service of host namespace {_key(identity)}")
    return out


def check_running(network: Network, port: int) -> None:
    """Restart the host's service if its process died. Looked at most every :data:`CHECK_EVERY`
    seconds per host (one file read and one /proc read), so a burst of connects pays it once."""
    ident = network.host.identity
    now = time.monotonic()
    if now - _checked.get(ident, -CHECK_EVERY) < CHECK_EVERY:
        return
    data = _state.read_json(_record_path(ident)) or {}
    owner = str(data.get("owner") or "")
    if not (owner and _state.owner_alive(owner)):
        serve(network, port)
    _checked[ident] = time.monotonic()


# -- resolv.conf of the endpoints --------------------------------------------------------------------

def host_resolv() -> ResolvConf:
    """The host's resolv.conf (search domains and options are copied to the endpoints): parsed
    again only when the file changed (one stat otherwise)."""
    return _host_resolv_keyed()[1]


def _host_resolv_keyed() -> tuple[tuple[int, int, int] | None, ResolvConf]:
    """:func:`host_resolv` with the (inode, mtime, size) it was read at (None: no file)."""
    global _host_resolv
    try:
        st = os.stat(RESOLV_CONF)
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = _host_resolv
        if cached is not None and cached[0] == key:
            return cached
        with open(RESOLV_CONF, encoding="utf-8", errors="replace") as f:
            conf = ResolvConf.parse(f.read())
    except OSError:
        return None, ResolvConf()
    _host_resolv = (key, conf)
    return _host_resolv


def shared_resolv_path(hosts_path: str) -> str:
    """Where a network's endpoints' resolv.conf lives: next to its shared hosts file ``hosts_path``
    (the same writer, so :func:`netns_kit.recover` treats both alike)."""
    directory, name = os.path.split(hosts_path)
    return f"{directory}/resolv.{name}"


def _shared_resolv(network: Network) -> str | None:
    """The resolv.conf of ``network``'s endpoints (one file for all of them; theirs are symlinks
    to it), written when missing and rewritten in place when the host's changed. None if the
    network keeps no shared hosts file (no name resolution)."""
    hosts = network.hosts_file
    if hosts is None:
        return None
    path = shared_resolv_path(hosts.path)
    key, conf = _host_resolv_keyed()
    gateway = str(network.gateway)
    if _shared.get(path) != (gateway, key):
        _state.ensure_dir(_sys.HOSTS_RUN_DIR)
        _write(path, conf.for_endpoint(gateway, HEADER % network.name))
        _shared[path] = (gateway, key)
    return path


def forget_network(network: Network) -> None:
    """Delete ``network``'s shared resolv.conf (the network is removed, or this process's last
    endpoint left a network it opened)."""
    hosts = network.hosts_file
    if hosts is None:
        return
    path = shared_resolv_path(hosts.path)
    with _owned_lock:
        _shared.pop(path, None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def resolv_path(ns_name: str) -> str:
    return f"{_sys.ETC_NETNS_DIR}/{ns_name}/resolv.conf"  # a namespace name has no "/"


def _write(path: str, text: str) -> None:
    """Write ``text`` into ``path`` in place (same inode: a bind mount of it sees the change)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _sync_resolv(st: HostRegistry, conn: Connection) -> None:
    ns = conn.namespace
    if ns.name is None:
        return
    path = resolv_path(ns.name)
    serving = [c for c in st.connections_of(conn.identity)
               if c.network.config.resolve_names and c.network.dns_port is not None and c.connected]
    with _owned_lock:
        mine = _owned.get(path)
        if not serving:
            if mine is not None:
                del _owned[path]
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            return
        shared = _shared_resolv(serving[0].network)
        if shared is None or mine == shared:
            return
        if mine is not None:  # another network of the namespace serves it now
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        try:  # a new link only: a file that is there was not written by netns_kit
            os.symlink(shared, path)
        except FileExistsError:
            _owned.pop(path, None)
            log.info("%s exists and was not written by netns_kit: left alone", path)
            return
        except (FileNotFoundError, NotADirectoryError):
            _owned.pop(path, None)
            return  # no directory: no hosts file could be written either (see the hosts file's warning)
        _owned[path] = shared


def on_connect(st: HostRegistry, conn: Connection) -> None:
    """After ``conn`` joined a network: its namespace's resolv.conf (see the module)."""
    net = conn.network
    if net.config.resolve_names and net.dns_port is not None:
        try:
            check_running(net, net.dns_port)
        except StateError as exc:
            log.warning("%s", exc)
    _sync_resolv(st, conn)


def on_disconnect(st: HostRegistry, conn: Connection) -> None:
    """After ``conn`` left its network: the resolv.conf follows the namespace's remaining networks."""
    _sync_resolv(st, conn)


def engine_flags(gateway: str) -> list[str]:
    """The container engine options for a name service on ``gateway`` (see :meth:`Network.dns_flags`)."""
    out = ["--dns", gateway, "--dns-option", "ndots:0"]
    for domain in host_resolv().search:
        out += ["--dns-search", domain]
    return out
