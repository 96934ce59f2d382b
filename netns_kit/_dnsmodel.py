"""What the name service of user-defined networks answers (internal, pure: no kernel, no root).

:class:`NameTable` holds the networks of one host namespace and their endpoints' names (what the
lease files say, see :mod:`netns_kit._leases`); :func:`respond` turns one DNS query into the
answer, or says that it must be forwarded upstream. The wire format is dnspython's. The rules:

- the *scope* of a query is every network the asking namespace is attached to (found from the
  source address: each endpoint address is leased to one namespace, and subnets of one host never
  overlap); a query from the host itself (source: a gateway) sees the network whose gateway it asked;
  a query from anywhere else is REFUSED;
- a name (``db``, an alias, or ``db.NETWORK``) of an endpoint on a network in scope: its A / AAAA
  records (an empty answer if it has no address of that family), authoritative, TTL 0 (nothing
  caches a name that may go away);
- a name known only on networks out of scope: NXDOMAIN at once (never forwarded);
- PTR of an endpoint address in scope: its names; of any other address in a subnet of this host's
  networks: NXDOMAIN;
- anything else is forwarded to the host's resolvers, unless every network in scope is internal
  (then REFUSED: an internal network has no way out, so neither has its name service).

An answer too large for UDP (512 bytes, or the client's EDNS size) is sent truncated (TC) and the
client asks again over TCP.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename
from dns.rdtypes.ANY.PTR import PTR
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA

from .model import IPNet

__all__ = ["Entry", "NameTable", "NetInfo", "ResolvConf", "respond", "udp_limit", "wire"]

Identity = tuple[int, int]
TTL = 0
FORWARD = None  # what respond() returns for a query to send upstream


@dataclass(frozen=True)
class NetInfo:
    """One network as the name service sees it."""

    name: str
    gateway: str
    subnets: tuple[IPNet, ...]
    internal: bool = False


@dataclass(frozen=True)
class Entry:
    """One leased address: its names, the namespace it belongs to, its owner process and veth."""

    ip: str
    names: tuple[str, ...]
    ns: Identity | None = None
    owner: str = ""
    link: str | None = None


@dataclass
class NameTable:
    """The networks of one host and the names on them, kept up to date entry by entry (every
    change costs the same however many endpoints there are)."""

    networks: dict[str, NetInfo] = field(default_factory=dict)
    _entries: dict[str, dict[str, Entry]] = field(default_factory=dict)  # network -> ip -> entry
    _names: dict[str, dict[str, dict[str, None]]] = field(default_factory=dict)  # network -> name -> ips
    _by_ip: dict[str, tuple[str, Entry]] = field(default_factory=dict)
    _ns_nets: dict[Identity, dict[str, int]] = field(default_factory=dict)  # namespace -> network -> count
    _gateways: dict[str, str] = field(default_factory=dict)  # gateway address -> network
    generation: int = 0  # bumped by every change (answers cached by the service are dropped)

    # -- changes ----------------------------------------------------------------------------------

    def set_network(self, info: NetInfo) -> None:
        self.generation += 1
        old = self.networks.get(info.name)
        if old is not None and old.gateway != info.gateway:
            self._gateways.pop(old.gateway, None)
        self.networks[info.name] = info
        self._gateways[info.gateway] = info.name
        self._entries.setdefault(info.name, {})
        self._names.setdefault(info.name, {})

    def drop_network(self, name: str) -> None:
        self.generation += 1
        for ip in list(self._entries.get(name, {})):
            self.remove(name, ip)
        info = self.networks.pop(name, None)
        if info is not None and self._gateways.get(info.gateway) == name:
            del self._gateways[info.gateway]
        self._entries.pop(name, None)
        self._names.pop(name, None)

    def add(self, network: str, entry: Entry) -> None:
        """Record ``entry`` on ``network`` (replacing what that address had)."""
        if network not in self.networks:
            return
        self.generation += 1
        self.remove(network, entry.ip)
        ip = _norm(entry.ip)
        if ip is None:
            return
        entry = Entry(ip, entry.names, entry.ns, entry.owner, entry.link)
        self._entries[network][ip] = entry
        self._by_ip[ip] = (network, entry)
        names = self._names[network]
        for key in _keys(entry.names, network):
            names.setdefault(key, {})[ip] = None
        if entry.ns is not None:
            nets = self._ns_nets.setdefault(entry.ns, {})
            nets[network] = nets.get(network, 0) + 1

    def remove(self, network: str, ip: str) -> None:
        norm = _norm(ip)
        entries = self._entries.get(network)
        if norm is None or entries is None:
            return
        entry = entries.pop(norm, None)
        if entry is None:
            return
        self.generation += 1
        if self._by_ip.get(norm, (None,))[0] == network:
            del self._by_ip[norm]
        names = self._names[network]
        for key in _keys(entry.names, network):
            ips = names.get(key)
            if ips is not None:
                ips.pop(norm, None)
                if not ips:
                    del names[key]
        if entry.ns is not None:
            nets = self._ns_nets.get(entry.ns, {})
            left = nets.get(network, 0) - 1
            if left > 0:
                nets[network] = left
            else:
                nets.pop(network, None)
                if not nets:
                    self._ns_nets.pop(entry.ns, None)

    # -- reading ----------------------------------------------------------------------------------

    def entries(self, network: str) -> dict[str, Entry]:
        return dict(self._entries.get(network, {}))

    def all_entries(self) -> Iterable[tuple[str, Entry]]:
        for network, entries in self._entries.items():
            for entry in entries.values():
                yield network, entry

    def network_of_gateway(self, ip: str) -> str | None:
        return self._gateways.get(ip)

    def scope(self, client: str, local: str | None = None) -> frozenset[str] | None:
        """The networks a query from ``client`` (to local address ``local``) may see; None: refuse."""
        norm = _norm(client)
        if norm is None:
            return None
        hit = self._by_ip.get(norm)
        if hit is not None:
            network, entry = hit
            if entry.ns is not None and entry.ns in self._ns_nets:
                return frozenset(self._ns_nets[entry.ns])
            return frozenset((network,))
        if norm in self._gateways or ipaddress.ip_address(norm).is_loopback:  # the host itself
            net = self._gateways.get(local or norm)
            return frozenset((net,)) if net is not None else frozenset()
        return None

    def lookup(self, name: str, scope: frozenset[str]) -> tuple[list[str], bool]:
        """The addresses of ``name`` (lower case, no final dot) on the networks in ``scope``, and
        whether the name is known on any network at all."""
        out: dict[str, None] = {}
        known = False
        for network, names in self._names.items():
            ips = names.get(name)
            if ips:
                known = True
                if network in scope:
                    out.update(ips)
        return list(out), known

    def reverse(self, ip: str, scope: frozenset[str]) -> tuple[list[str], bool]:
        """The names of address ``ip`` if it is an endpoint on a network in ``scope``, and whether
        the address is in the subnet of any network of this host."""
        norm = _norm(ip)
        if norm is None:
            return [], False
        hit = self._by_ip.get(norm)
        if hit is not None and hit[0] in scope:
            return list(hit[1].names), True
        addr = ipaddress.ip_address(norm)
        return [], any(addr in net for info in self.networks.values() for net in info.subnets)

    def forwards(self, scope: frozenset[str]) -> bool:
        """True if a query with this scope may be forwarded (one network in it has a way out)."""
        return any(not self.networks[n].internal for n in scope if n in self.networks)


def _norm(ip: str) -> str | None:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return None


def _keys(names: tuple[str, ...], network: str) -> list[str]:
    out: list[str] = []
    for n in names:
        low = n.lower().rstrip(".")
        out += [low, f"{low}.{network.lower()}"]
    return out


# -- answering -------------------------------------------------------------------------------------

def udp_limit(query: dns.message.Message) -> int:
    """The largest UDP answer the client takes: 512 bytes, or its EDNS size (at most 4096)."""
    if query.edns >= 0:
        return max(512, min(int(query.payload), 4096))
    return 512


def wire(response: dns.message.Message, limit: int | None) -> bytes:
    """``response`` on the wire; over ``limit`` bytes: truncated (TC set, no records)."""
    try:
        return response.to_wire(max_size=limit or 65535)
    except dns.exception.TooBig:
        response.answer.clear()
        response.authority.clear()
        response.additional.clear()
        response.flags |= dns.flags.TC
        return response.to_wire(max_size=limit or 65535)


def _reply(query: dns.message.Message, rcode: dns.rcode.Rcode, *, authoritative: bool = False,
           forwards: bool = False) -> dns.message.Message:
    resp = dns.message.make_response(query)
    resp.set_rcode(rcode)
    if authoritative:
        resp.flags |= dns.flags.AA
    if forwards:
        resp.flags |= dns.flags.RA
    else:
        resp.flags &= ~dns.flags.RA
    return resp


_ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)


def _address_rdata(rtype: dns.rdatatype.RdataType, ip: str) -> A | AAAA:
    if rtype == dns.rdatatype.A:
        return A(dns.rdataclass.IN, rtype, ip)  # type: ignore[no-untyped-call]
    return AAAA(dns.rdataclass.IN, rtype, ip)  # type: ignore[no-untyped-call]


def respond(query: dns.message.Message, table: NameTable, client: str,
            local: str | None = None) -> dns.message.Message | None:
    """The answer to ``query`` from ``client`` (received on local address ``local``), or None
    when it must be forwarded to the host's resolvers (see the module for the rules)."""
    if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
        return _reply(query, dns.rcode.NOTIMP if query.opcode() != dns.opcode.QUERY else dns.rcode.FORMERR)
    scope = table.scope(client, local)
    if scope is None:
        return _reply(query, dns.rcode.REFUSED)
    forwards = table.forwards(scope)
    q = query.question[0]
    qname: dns.name.Name = q.name
    rdtype = q.rdtype
    if q.rdclass != dns.rdataclass.IN:
        return None if forwards else _reply(query, dns.rcode.REFUSED)
    text = qname.to_text(omit_final_dot=True).lower()
    if rdtype == dns.rdatatype.PTR and (text.endswith(".in-addr.arpa") or text.endswith(".ip6.arpa")):
        try:
            ip = dns.reversename.to_address(qname)
        except (dns.exception.SyntaxError, ValueError):
            ip = ""
        names, ours = table.reverse(ip, scope) if ip else ([], False)
        if names:
            resp = _reply(query, dns.rcode.NOERROR, authoritative=True, forwards=forwards)
            rrset = resp.find_rrset(resp.answer, qname, dns.rdataclass.IN, dns.rdatatype.PTR, create=True)
            for n in names:
                ptr = PTR(dns.rdataclass.IN, dns.rdatatype.PTR, dns.name.from_text(n))  # type: ignore[no-untyped-call]
                rrset.add(ptr, TTL)
            return resp
        if ours:
            return _reply(query, dns.rcode.NXDOMAIN, authoritative=True, forwards=forwards)
        return None if forwards else _reply(query, dns.rcode.REFUSED)
    ips, known = table.lookup(text, scope)
    if ips:
        resp = _reply(query, dns.rcode.NOERROR, authoritative=True, forwards=forwards)
        types = [rdtype] if rdtype in _ADDRESS_TYPES else list(_ADDRESS_TYPES) if rdtype == dns.rdatatype.ANY else []
        for rtype in types:
            mine = [ip for ip in ips if (":" in ip) == (rtype == dns.rdatatype.AAAA)]
            if mine:
                rrset = resp.find_rrset(resp.answer, qname, dns.rdataclass.IN, rtype, create=True)
                for ip in mine:
                    rrset.add(_address_rdata(rtype, ip), TTL)
        return resp  # no address of that family (or another type): an empty answer, NOERROR
    if known:
        return _reply(query, dns.rcode.NXDOMAIN, authoritative=True, forwards=forwards)
    return None if forwards else _reply(query, dns.rcode.REFUSED)


# -- resolv.conf -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ResolvConf:
    """The parts of a resolv.conf the name service uses: nameservers, search domains, options."""

    nameservers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> ResolvConf:
        """Read resolv.conf text as the C library does (later ``search``/``domain`` lines win)."""
        servers: list[str] = []
        search: list[str] = []
        options: list[str] = []
        for line in text.splitlines():
            words = line.split("#", 1)[0].split(";", 1)[0].split()
            if not words:
                continue
            key, args = words[0], words[1:]
            if key == "nameserver" and args:
                addr = args[0].split("%", 1)[0]
                if _norm(addr) is not None:
                    servers.append(_norm(addr) or addr)
            elif key in ("search", "domain"):
                search = args
            elif key == "options":
                options += args
        return cls(tuple(servers), tuple(search), tuple(options))

    def for_endpoint(self, nameserver: str, header: str) -> str:
        """The resolv.conf of an endpoint: ``nameserver`` (its network's service), the host's search
        domains and options, with ``ndots:0`` (as Docker writes it for user-defined networks)."""
        opts = [o for o in self.options if not o.startswith("ndots:")]
        lines = [header, f"nameserver {nameserver}"]
        if self.search:
            lines.append("search " + " ".join(self.search))
        lines.append("options " + " ".join(["ndots:0", *opts]))
        return "\n".join(lines) + "\n"
