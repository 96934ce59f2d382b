"""netns_kit: typed, transactional Linux container networking.

Namespaces, bridges, veth pairs, NAT and Docker's five network modes on the real kernel,
through netlink (pyroute2's message classes) and libnftables. Every change can be undone:
explicitly (``remove()``), by a ``with`` block, or by a :class:`Transaction` that rolls back.
"""

from .attach import Attachment, attach, mac_from_seed
from .batch import RemovalBatch, removal_batch
from .engines import Container, Engine
from .errors import (
    AlreadyExistsError,
    KernelError,
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
from .ipam import ExhaustedError
from .journal import Transaction
from .links import Bridge, VethPair
from .model import AddressInfo, LinkInfo, Route, RouteInfo
from .modes import (
    BridgeMode,
    ContainerMode,
    CustomMode,
    Endpoint,
    HostMode,
    NetworkMode,
    NoneMode,
    default_network,
)
from .namespace import Namespace
from .nat import NatRule, PublishedPort
from .network import Connection, Network, NetworkConfig
from .recovery import RecoveryReport, recover

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
    "Engine",
    "ExhaustedError",
    "Firewall",
    "HostMode",
    "KernelError",
    "LinkInfo",
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
    "PublishedPort",
    "RecoveryReport",
    "RemovalBatch",
    "Route",
    "RouteInfo",
    "StateError",
    "Transaction",
    "UnsupportedError",
    "ValidationError",
    "VethPair",
    "attach",
    "default_network",
    "mac_from_seed",
    "recover",
    "removal_batch",
    "rollback_failures",
]
