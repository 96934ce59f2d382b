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
- Many endpoints at once: :class:`Topology` (plan, equivalent commands, build);
  :func:`removal_batch`.
- pipework: :func:`attach` / :class:`Attachment`, :class:`Container` / :class:`Engine`.
- Undo and recovery: :class:`Transaction`, :func:`recover`.
- Primitives the modes are built from: :class:`Namespace`, :class:`Bridge`, :class:`VethPair`,
  :class:`Route`, :class:`Firewall`, :class:`NetworkPolicy`, :class:`NatRule`, :class:`Masquerade`,
  and what inspection returns (:class:`LinkInfo`, :class:`AddressInfo`, :class:`RouteInfo`,
  :func:`observe`).
- Errors: :class:`NetnsKitError` and its subclasses (:mod:`netns_kit.errors`).

Public modules beside the package itself: :mod:`netns_kit.errors`, :mod:`netns_kit.ipam` (pure
IPAM), :mod:`netns_kit.views` (pure rendering), and the test-harness helpers
:mod:`netns_kit.testing`, :mod:`netns_kit.harness`, :mod:`netns_kit.chaos` and the pytest plugin.
Modules whose names start with ``_`` are internal; the other modules hold the public classes
(documented under their module in the API reference), and their other names may change.
"""

from ._batch import RemovalBatch, removal_batch
from ._dns import NameService
from ._inspection import observe
from ._journal import Transaction
from ._recovery import RecoveryReport, recover
from .attach import Attachment, attach, mac_from_seed
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
    StateError,
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
from .network import Connection, Network, NetworkConfig, RemovalReport
from .ports import PortBinding, PortSpec
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
    "OwnershipError",
    "PermissionDeniedError",
    "PortBinding",
    "PortSpec",
    "PublishedPort",
    "RecoveryReport",
    "RemovalBatch",
    "RemovalReport",
    "Route",
    "RouteInfo",
    "StateError",
    "Topology",
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
