"""netns_kit: typed, transactional Linux container networking.

Namespaces, bridges, veth pairs, NAT and Docker's five network modes on the real kernel,
through netlink (pyroute2's message classes) and libnftables. Every change can be undone:
explicitly (``remove()``), by a ``with`` block, or by a :class:`Transaction` that rolls back.

The public surface, in the order a user meets it (everything is imported from ``netns_kit``):

- Docker's vocabulary: :class:`Network` (``docker network create``), :class:`Endpoint` (a
  container's network side, ``docker run --network``), its :class:`Connection` to each network
  (Docker's endpoint settings), the modes :class:`BridgeMode`, :class:`HostMode`,
  :class:`NoneMode`, :class:`ContainerMode`, :class:`CustomMode` (base :class:`NetworkMode`),
  :func:`default_network`, :class:`PortSpec` (a ``-p`` spec), :class:`PublishedPort` (one
  published port), :class:`PortBinding` (``docker port``'s answer), :func:`endpoints` /
  :class:`EndpointInfo` (``docker ps``), :class:`RemovalReport` (what a removal did and left).
- Across hosts: :class:`OverlayNetwork` (one host's side of a VXLAN overlay), :class:`OverlayPeer`.
- Many endpoints at once: :class:`Topology` (plan, equivalent commands, build; loaded from and saved
  to YAML as a :class:`TopologySpec`, containerlab topologies too, :class:`TopologyFileError`);
  :func:`removal_batch`.
- pipework: :func:`attach` / :class:`Attachment`, :class:`Container` / :class:`Engine`.
- Undo and recovery: :class:`Transaction`, :func:`recover`.
- Primitives the modes are built from: :class:`Namespace`, :class:`Bridge`, :class:`VethPair`,
  :class:`Route`, :class:`Firewall`, :class:`NetworkPolicy`, :class:`NatRule`, :class:`Masquerade`,
  and what inspection returns (:class:`LinkInfo`, :class:`AddressInfo`, :class:`RouteInfo`,
  :func:`observe`).
- Errors: :class:`NetnsKitError` and its subclasses (:mod:`netns_kit.errors`).

Public modules beside the package itself: :mod:`netns_kit.errors`, :mod:`netns_kit.ipam` (pure
IPAM), :mod:`netns_kit.views` (pure rendering), :mod:`netns_kit.topofile` (topology files), and the test-harness helpers
:mod:`netns_kit.testing`, :mod:`netns_kit.harness`, :mod:`netns_kit.chaos` and the pytest plugin.
Modules whose names start with ``_`` are internal; the other modules hold the public classes
(documented under their module in the API reference), and their other names may change.

``import netns_kit`` is cheap: it loads no submodule, no pyroute2 and no libnftables. Each public
name is imported on first use (``netns_kit.Network`` or ``from netns_kit import Network`` loads
``netns_kit.network`` and what it needs), and so is a submodule named as an attribute
(``netns_kit.testing``), so the pytest plugin and tools that only sometimes build networks pay
for the library only when they do.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name is loaded on first use
    from ._batch import RemovalBatch, removal_batch
    from ._dns import NameService
    from ._inspection import observe
    from ._journal import Transaction
    from ._recovery import RecoveryReport, recover
    from .attach import Attachment, attach, mac_from_seed
    from .connection import Connection
    from .engines import Container, Engine
    from .errors import (
        AlreadyExistsError,
        ExhaustedError,
        KernelError,
        LeakError,
        NetnsKitError,
        NotFoundError,
        OwnershipError,
        PermissionDeniedError,
        RootlessError,
        StateError,
        TopologyFileError,
        UnsupportedError,
        ValidationError,
        rollback_failures,
    )
    from .firewall import Firewall, NetworkPolicy
    from .links import Bridge, VethPair
    from .model import AddressInfo, LinkInfo, Route, RouteInfo
    from .modes import (
        BridgeMode,
        ContainerMode,
        CustomMode,
        Endpoint,
        EndpointInfo,
        HostMode,
        NetworkMode,
        NoneMode,
        default_network,
        endpoints,
    )
    from .namespace import Namespace
    from .nat import Masquerade, NatRule, PublishedPort
    from .network import Network, NetworkConfig, RemovalReport
    from .overlay import OverlayNetwork, OverlayPeer
    from .ports import PortBinding, PortSpec
    from .topofile import TopologySpec
    from .topology import Topology

__version__ = "0.1.0"

__all__ = [
    "AddressInfo",
    "AlreadyExistsError",
    "Attachment",
    "Bridge",
    "BridgeMode",
    "Connection",
    "Container",
    "ContainerMode",
    "CustomMode",
    "Endpoint",
    "EndpointInfo",
    "Engine",
    "ExhaustedError",
    "Firewall",
    "HostMode",
    "KernelError",
    "LeakError",
    "LinkInfo",
    "Masquerade",
    "NameService",
    "Namespace",
    "NatRule",
    "NetnsKitError",
    "Network",
    "NetworkConfig",
    "NetworkMode",
    "NetworkPolicy",
    "NoneMode",
    "NotFoundError",
    "OverlayNetwork",
    "OverlayPeer",
    "OwnershipError",
    "PermissionDeniedError",
    "PortBinding",
    "PortSpec",
    "PublishedPort",
    "RecoveryReport",
    "RemovalBatch",
    "RemovalReport",
    "RootlessError",
    "Route",
    "RouteInfo",
    "StateError",
    "Topology",
    "TopologyFileError",
    "TopologySpec",
    "Transaction",
    "UnsupportedError",
    "ValidationError",
    "VethPair",
    "attach",
    "default_network",
    "endpoints",
    "mac_from_seed",
    "observe",
    "recover",
    "removal_batch",
    "rollback_failures",
]

# Where each public name lives. ``import netns_kit`` imports none of these modules (nor pyroute2,
# nor libnftables): the first ``netns_kit.X`` (or ``from netns_kit import X``) imports X's module.
# A new public name goes into ``__all__``, this table and the TYPE_CHECKING block above
# (tests/test_lazy_imports.py checks that the three agree).
_EXPORTS: dict[str, str] = {
    "AddressInfo": ".model",
    "AlreadyExistsError": ".errors",
    "Attachment": ".attach",
    "Bridge": ".links",
    "BridgeMode": ".modes",
    "Connection": ".connection",
    "Container": ".engines",
    "ContainerMode": ".modes",
    "CustomMode": ".modes",
    "Endpoint": ".modes",
    "EndpointInfo": ".modes",
    "Engine": ".engines",
    "ExhaustedError": ".errors",
    "Firewall": ".firewall",
    "HostMode": ".modes",
    "KernelError": ".errors",
    "LeakError": ".errors",
    "LinkInfo": ".model",
    "Masquerade": ".nat",
    "NameService": "._dns",
    "Namespace": ".namespace",
    "NatRule": ".nat",
    "NetnsKitError": ".errors",
    "Network": ".network",
    "NetworkConfig": ".network",
    "NetworkMode": ".modes",
    "NetworkPolicy": ".firewall",
    "NoneMode": ".modes",
    "NotFoundError": ".errors",
    "OverlayNetwork": ".overlay",
    "OverlayPeer": ".overlay",
    "OwnershipError": ".errors",
    "PermissionDeniedError": ".errors",
    "PortBinding": ".ports",
    "PortSpec": ".ports",
    "PublishedPort": ".nat",
    "RecoveryReport": "._recovery",
    "RemovalBatch": "._batch",
    "RemovalReport": ".network",
    "RootlessError": ".errors",
    "Route": ".model",
    "RouteInfo": ".model",
    "StateError": ".errors",
    "Topology": ".topology",
    "TopologyFileError": ".errors",
    "TopologySpec": ".topofile",
    "Transaction": "._journal",
    "UnsupportedError": ".errors",
    "ValidationError": ".errors",
    "VethPair": ".links",
    "attach": ".attach",
    "default_network": ".modes",
    "endpoints": ".modes",
    "mac_from_seed": ".attach",
    "observe": "._inspection",
    "recover": "._recovery",
    "removal_batch": "._batch",
    "rollback_failures": ".errors",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        if name.isidentifier() and not name.startswith("__"):  # a submodule: netns_kit.errors, .testing, ...
            try:
                return importlib.import_module(f"{__name__}.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{__name__}.{name}":
                    raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """``netns_kit.attach`` is the function, also once the submodule of the same name is imported
    (the import system then sets the package's attribute to the submodule; this keeps the function)."""

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == "." + name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
