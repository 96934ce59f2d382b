"""NAT value objects and :class:`NatRule`: masquerade of a subnet, DNAT of a published port.

:class:`~netns_kit.ports.PublishedPort` (a pure value, defined in :mod:`netns_kit.ports` and
re-exported here) reads Docker's ``-p`` syntax and validates everything before anything is
changed.

:class:`NatRule` is the user-facing object for one NAT entry. It does no nft work itself: it
asks the :class:`~netns_kit.firewall.Firewall` of its host namespace, which keeps every entry
as an element of a set or map in the one table netns_kit owns (``table inet netns_kit``), so
adding the 1,000th rule costs what the first did. Use it three ways:

- ``rule.create()`` / ``rule.remove()`` (persistent until removed; ``remove`` is idempotent);
- ``with NatRule.dnat(port): ...`` (created on enter, removed on exit);
- inside a :class:`~netns_kit.Transaction`: ``create`` records ``remove`` as its undo.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from ._journal import EphemeralScope
from .errors import StateError, ValidationError
from .firewall import Firewall
from .model import NET_TYPES, IPNet, check_args, parse_network, validate_ifname
from .namespace import Namespace
from .ports import PROTOCOLS, PublishedPort

__all__ = ["PROTOCOLS", "Masquerade", "NatRule", "PublishedPort"]  # PublishedPort and PROTOCOLS live in netns_kit.ports

@dataclass(frozen=True)
class Masquerade:
    """Source NAT of ``subnet`` to the address of the outgoing interface, except towards ``bridge``."""

    subnet: IPNet
    bridge: str | None = None

    def __post_init__(self) -> None:
        check_args("Masquerade", subnet=(self.subnet, str, *NET_TYPES), bridge=(self.bridge, str, None))
        object.__setattr__(self, "subnet", parse_network(self.subnet))
        if self.bridge is not None:
            validate_ifname(self.bridge, what="bridge name")

    def __str__(self) -> str:
        return f"masquerade {self.subnet}" + (f" (not towards {self.bridge})" if self.bridge else "")


class NatRule(EphemeralScope):
    """One NAT entry in a host namespace: masquerade of a subnet, or DNAT of a published port.

    Build with :meth:`masquerade` or :meth:`dnat`; nothing changes until :meth:`create` (or ``with``).
    The kernel side is an element in a set or map of ``table inet netns_kit``, added and removed
    in one atomic nft batch each; :meth:`remove` deletes exactly that element.
    """

    def __init__(self, entry: PublishedPort | Masquerade, *, namespace: Namespace | None = None) -> None:
        check_args("NatRule", entry=(entry, PublishedPort, Masquerade), namespace=(namespace, Namespace, None))
        self.entry = entry
        self._namespace = namespace
        self._firewall: Firewall | None = None
        self._active = False

    @classmethod
    def masquerade(cls, subnet: str | IPNet, *, bridge: str | None = None,
                   namespace: Namespace | None = None) -> NatRule:
        """Source-NAT traffic from ``subnet`` leaving through any interface other than ``bridge``."""
        check_args("NatRule.masquerade", subnet=(subnet, str, *NET_TYPES), bridge=(bridge, str, None),
                   namespace=(namespace, Namespace, None))
        return cls(Masquerade(parse_network(subnet), bridge), namespace=namespace)

    @classmethod
    def dnat(cls, port: PublishedPort | str, *, container_ip: str | None = None, bridge: str | None = None,
             bridge_port: str | None = None, namespace: Namespace | None = None) -> NatRule:
        """Publish a container port: a :class:`PublishedPort`, or a ``-p`` spec plus container_ip and bridge."""
        check_args("NatRule.dnat", port=(port, PublishedPort, str), container_ip=(container_ip, str, None),
                   bridge=(bridge, str, None), bridge_port=(bridge_port, str, None),
                   namespace=(namespace, Namespace, None))
        if isinstance(port, str):
            if container_ip is None or bridge is None:
                raise ValidationError("a port spec needs container_ip= and bridge=", obj=port)
            port = PublishedPort.parse(port, container_ip=container_ip, bridge=bridge, bridge_port=bridge_port)
        return cls(port, namespace=namespace)

    @property
    def kind(self) -> str:
        return "dnat" if isinstance(self.entry, PublishedPort) else "masquerade"

    @property
    def active(self) -> bool:
        return self._active

    def _fw(self) -> Firewall:
        if self._firewall is None:
            ns = self._namespace if self._namespace is not None else Namespace.current()
            self._firewall = Firewall.for_namespace(ns)
        return self._firewall

    def create(self) -> NatRule:
        """Install the entry (one nft batch). Undo (journaled): :meth:`remove`."""
        if self._active:
            raise StateError(f"{self.entry} is already installed by this object", obj=str(self.entry),
                             step="create NAT rule")
        fw = self._fw()
        if isinstance(self.entry, PublishedPort):
            fw.publish(self.entry)
        else:
            fw.add_masquerade(self.entry.subnet, bridge=self.entry.bridge)
        self._active = True
        return self

    def remove(self) -> None:
        """Delete the entry (one nft batch). Idempotent."""
        if not self._active:
            return
        fw = self._fw()
        if isinstance(self.entry, PublishedPort):
            fw.unpublish(self.entry)
        else:
            fw.remove_masquerade(self.entry.subnet)
        self._active = False

    def __enter__(self) -> NatRule:
        self._enter_ephemeral(self.create)  # ephemeral: recover() undoes it after a crash
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.remove()
        self._settle_ephemeral()

    def __repr__(self) -> str:
        return f"NatRule({self.entry}, active={self._active})"

