"""One overlay network across three hosts, checked by traffic; a host cut off and taken back.

On real machines each host runs its own netns_kit process and creates its own side with
``OverlayNetwork(...)`` (default ``host``: the machine's namespace). Here the three hosts are
namespaces h1, h2, h3 on one underlay bridge (192.168.77.0/24), and one process builds every
side with ``host=``; the calls are the same. Everything is built inside one
Transaction(keep=False) and torn down at the end.
"""

from __future__ import annotations

import netns_kit as nk

UNDERLAY = {"h1": "192.168.77.1", "h2": "192.168.77.2", "h3": "192.168.77.3"}
SHARES = {"h1": "10.60.1.0/24", "h2": "10.60.2.0/24", "h3": "10.60.3.0/24"}  # each host's part of the subnet


def ping(ns: nk.Namespace, ip: object) -> bool:
    return ns.run(["ping", "-q", "-c", "1", "-W", "1", str(ip)]).returncode == 0


def main() -> None:
    with nk.Transaction(keep=False):
        underlay = nk.Bridge("ul0").create()
        hosts = {name: nk.Namespace(name).create() for name in UNDERLAY}
        for name, host in hosts.items():
            nk.VethPair(f"ul-{name}", "eth0", peer_namespace=host, master=underlay).create()
            host.add_address("eth0", f"{UNDERLAY[name]}/24")

        # each host's side: the same VNI and subnet, its own share and underlay address, the others as peers
        sides: dict[str, nk.OverlayNetwork] = {}
        for name, host in hosts.items():
            peers = {UNDERLAY[o]: SHARES[o] for o in hosts if o != name}
            sides[name] = nk.OverlayNetwork("demo", vni=42, subnet="10.60.0.0/16", share=SHARES[name],
                                            local=UNDERLAY[name], peers=peers, host=host).create()

        # one endpoint per host, each given an address from its own host's share
        web = {name: nk.Namespace(f"web{name[-1]}").create() for name in hosts}
        ips = {name: sides[name].connect(web[name]).ip for name in hosts}
        for name in hosts:
            print(f"web{name[-1]} on {name}: {ips[name]}")
        print(sides["h1"].describe())
        print("MTU inside the overlay:", web["h1"].link("eth0").mtu, "(underlay 1500 minus the 50-byte VXLAN header)")
        assert ping(web["h1"], ips["h2"]) and ping(web["h1"], ips["h3"]) and ping(web["h3"], ips["h2"])
        print("web1 reaches web2 and web3 across hosts; web3 reaches web2")

        # cut h3 off: each remaining host removes it from its peers (both directions at once)
        for name in ("h1", "h2"):
            sides[name].remove_peer(UNDERLAY["h3"])
        assert not ping(web["h1"], ips["h3"]) and not ping(web["h3"], ips["h2"])
        assert ping(web["h1"], ips["h2"])
        print("h3 removed: web3 is cut off both ways, web1 and web2 still talk")
        for name in ("h1", "h2"):
            sides[name].add_peer(UNDERLAY["h3"], SHARES["h3"])
        assert ping(web["h1"], ips["h3"])
        print("h3 added back: web1 reaches web3 again")

        # a newcomer whose share overlaps another host's is refused before anything changes
        try:
            nk.OverlayNetwork("demo2", vni=43, subnet="10.60.0.0/16", share="10.60.2.128/25", local=UNDERLAY["h1"],
                              peers={UNDERLAY["h2"]: SHARES["h2"]})
        except nk.ValidationError as exc:
            print("refused:", str(exc).split(" [", 1)[0])
    print("everything was torn down")


if __name__ == "__main__":
    main()
