"""Plan before applying: a topology described, planned (no root), read as ip/nft commands, built, viewed.

The plan is data: each step names what will change, where, the iproute2/nft command it replaces
and how it is undone. The build then runs the same steps through netlink and libnftables (no
command is ever started) in one transaction, and the view reads back what the kernel holds.
"""

from __future__ import annotations

import shutil

import netns_kit as nk
import netns_kit.testing
from netns_kit.topology import Topology


def main() -> None:
    topo = Topology("web and db")
    topo.bridge("br-topo", addresses=["10.41.0.1/24"], nat=True)
    topo.endpoint("web", bridge="br-topo", address="10.41.0.2/24", gateway="10.41.0.1",
                  publish=["8080:80/tcp"])
    topo.endpoint("db", bridge="br-topo", address="10.41.0.3/24", gateway="10.41.0.1")

    print(topo.plan())
    print("\nas a shell script (for reading; netns_kit runs none of it):")
    print(topo.plan().script())

    try:
        Topology().bridge("br0", addresses=["192.168.0.1/24"]).endpoint(
            "c1", bridge="br0", address="192.168.0.123/24", gateway="192.168.1.1")
    except nk.ValidationError as exc:
        print("the classic recipe's typo, refused while planning:", exc)

    with topo:
        db = topo.namespaces()["db"]
        ok = db.run(["ping", "-c1", "-W2", "10.41.0.2"]).returncode == 0
        print("\nbuilt. db pings web:", "ok" if ok else "FAILED")
        view = topo.view()
        print(view)
        print("veth pairs found in the kernel:", [f"{v.a[1]}@{v.a[0]} <-> {v.b[1]}@{v.b[0]}" for v in view.veths])
        print("HTML table:", len(view.to_html()), "characters; Graphviz source:", len(view.to_dot()), "characters")
        if shutil.which("dot"):
            print("SVG diagram:", len(view.to_svg()), "characters")
    print("torn down: namespaces left:", sorted(nk.testing.named_namespaces()) or "none")


if __name__ == "__main__":
    main()
