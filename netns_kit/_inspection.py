"""Read what is really there into a :class:`~netns_kit.views.TopologyView` (changes nothing).

Sits above the objects it reads (:class:`~netns_kit.Namespace`, :class:`~netns_kit.Firewall`);
:mod:`netns_kit.views` below it only renders.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import NetnsKitError
from .firewall import Firewall
from .model import check_args, check_items
from .namespace import Namespace
from .views import PortView, TopologyView, pair_veths, port_target

__all__ = ["observe"]


def observe(namespaces: Iterable[Namespace] = (), *, host: Namespace | None = None,
            title: str = "topology") -> TopologyView:
    """Read the topology as it is now: ``host`` (default: the current namespace) and ``namespaces``.

    Veth pairs are matched by their peer ifindex (an end whose peer is in a namespace not listed
    shows no peer). Published ports come from netns_kit's own firewall table, if there is one.
    Nothing is changed.
    """
    check_args("observe", host=(host, Namespace, None), title=(title, str))
    namespaces = check_items(namespaces, "namespaces", Namespace, owner="observe")
    host = host if host is not None else Namespace.current()
    spaces = [host] + [ns for ns in namespaces if not ns.same_as(host)]
    views = [ns.view(is_host=(ns is host)) for ns in spaces]
    veths = pair_veths([(ns.label, ns.links()) for ns in spaces])
    ports: list[PortView] = []
    notes: list[str] = []
    try:
        for p in Firewall.for_namespace(host).published:
            ports.append(PortView(spec=str(getattr(p, "spec", p)), target=port_target(p, views)))
    except NetnsKitError as exc:
        notes.append(f"published ports not shown: {exc}")
    return TopologyView(title=title, namespaces=tuple(views), veths=tuple(veths), ports=tuple(ports),
                        notes=tuple(notes))


