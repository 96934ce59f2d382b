"""What the on-disk journal holds at each point: the lines recovery relies on are there before
netns_kit returns to the caller, however few it writes."""

from __future__ import annotations

import ipaddress
import json
import os

from netns_kit import Bridge, Namespace, Transaction, VethPair, _state


def _lines() -> list[dict[str, object]]:
    path = os.path.join(_state.journal_dir(), _state.owner_id() + ".jsonl")
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _open_entries() -> dict[int, _state.JournalEntry]:
    path = os.path.join(_state.journal_dir(), _state.owner_id() + ".jsonl")
    return {e.id: e for e in _state.read_journal(path, _state.owner_id())}


def test_a_change_kept_at_once_is_an_intent_and_a_keep_line(host: Namespace) -> None:
    """Outside any transaction: a change of several requests (a namespace, a veth pair) is an intent
    and a keep line; a change of one request (an address, a route) writes nothing (all or nothing by
    itself, and kept)."""
    from netns_kit import Route

    ns = Namespace("t-jl1").create()
    try:
        veth = VethPair("v-jl1", "eth0", peer_namespace=ns, ipv6_link_local=False).create()
        before = len(_lines())
        ns.add_address("eth0", "10.61.0.2/24")
        ns.add_route(Route(dst="10.9.0.0/24", dev="eth0"))
        lines = _lines()
        assert len(lines) == before  # one request each, kept at once: nothing to journal
        assert [str(a.interface) for a in ns.addresses("eth0")] == ["10.61.0.2/24"]  # made all the same
        ids = [int(str(rec["i"])) for rec in lines
               if "i" in rec and isinstance(rec["a"], dict) and rec["a"].get("name") in ("t-jl1", "v-jl1")]
        assert len(ids) == 2
        for i in ids:
            about = [rec for rec in lines if i in (rec.get("i"), rec.get("ok"), rec.get("keep"), rec.get("done"))]
            assert about == [next(r for r in about if "i" in r), {"keep": i}], about  # no separate ok
        assert not set(ids) & set(_open_entries())
        veth.remove()
    finally:
        ns.remove()


def test_inside_a_transaction_every_change_is_confirmed_before_the_call_returns(host: Namespace) -> None:
    with Transaction(keep=False):
        br = Bridge("br-jl2").create()
        ns = Namespace("t-jl2").create()
        VethPair("v-jl2", "eth0", peer_namespace=ns, master=br).create()
        host.add_address("br-jl2", "10.62.0.1/24")  # the host was not made here: journaled
        ns.write_sysctl("net.ipv4.ip_forward", "1")
        mine = [e for e in _open_entries().values()
                if e.args.get("name") in ("br-jl2", "t-jl2", "v-jl2") or e.op in ("address", "sysctl")]
        assert {e.op for e in mine} == {"link", "netns", "address", "sysctl"}
        # recovery after a SIGKILL here would find each of them confirmed, as before the fewer writes
        assert all(e.confirmed for e in mine), [(e.op, e.confirmed) for e in mine]
    assert not {e.id for e in mine} & set(_open_entries())


def test_inside_a_step_values_to_put_back_are_confirmed_at_once(host: Namespace) -> None:
    """An atomic step may write the confirmations of namespaces and interfaces with its end (their
    recovery reads the ownership mark), never those whose recovery needs them: an nft change with
    the sysctls to put back is confirmed as soon as it is made, inside the step."""
    from netns_kit import Firewall, NetworkPolicy
    from netns_kit._journal import atomic_step

    with Transaction(keep=False):
        with atomic_step():
            br = Bridge("br-jl3").create()
            policy = NetworkPolicy(bridge="br-jl3", subnets=(ipaddress.ip_network("10.63.0.0/24"),))
            Firewall.for_namespace(host).attach_network(policy)
            inside = {e.op: e for e in _open_entries().values()
                      if e.op == "nft" or e.args.get("name") == "br-jl3"}
            assert inside["nft"].confirmed
        after = {e.op: e for e in _open_entries().values() if e.op == "nft" or e.args.get("name") == br.name}
        assert after["link"].confirmed and after["nft"].confirmed


def test_a_published_port_kept_at_once_writes_nothing_and_inside_a_transaction_is_journaled(
        host: Namespace) -> None:
    from netns_kit import Firewall, NetworkPolicy, PublishedPort

    with Bridge("br-jl4", addresses=["10.64.0.1/24"]):
        fw = Firewall.for_namespace(host)
        fw.attach_network(NetworkPolicy(bridge="br-jl4", subnets=("10.64.0.0/24",)))  # type: ignore[arg-type]
        try:
            port = PublishedPort(host_port=20001, container_ip="10.64.0.2", container_port=80, bridge="br-jl4")
            before = len(_lines())
            fw.publish(port)  # one nft batch, no hairpin mode, forwarding already on for the bridge
            assert len(_lines()) == before and port in fw.published
            fw.unpublish(port)
            with Transaction(keep=False):
                fw.publish(port)
                assert [e.op for e in _open_entries().values() if e.op == "nft"] == ["nft"]
            assert port not in fw.published and not [e for e in _open_entries().values() if e.op == "nft"]
        finally:
            fw.detach_network("br-jl4")


def test_a_change_inside_a_namespace_made_in_the_same_transaction_needs_no_line_of_its_own(
        host: Namespace) -> None:
    """Recovery removes a namespace whose creation is still open, and everything in it goes along:
    an address or route added inside it is not journaled on its own (the rollback still undoes it);
    in a namespace kept before the transaction it is."""
    from netns_kit import Route

    kept = Namespace("t-jl5k").create()
    try:
        with Transaction(keep=False):
            ns = Namespace("t-jl5").create()
            VethPair("v-jl5", "eth0", peer_namespace=ns, ipv6_link_local=False).create()
            VethPair("v-jl5k", "eth0", peer_namespace=kept, ipv6_link_local=False).create()
            before = len(_lines())
            ns.add_address("eth0", "10.65.0.2/24")
            ns.add_route(Route(dst="10.9.0.0/24", dev="eth0"))
            assert len(_lines()) == before
            kept.add_address("eth0", "10.65.1.2/24")
            kept.add_route(Route(dst="10.9.0.0/24", dev="eth0"))
            ops = [rec["op"] for rec in _lines()[before:] if "i" in rec]
            assert ops == ["address", "route"]
        assert [link.name for link in kept.links()] == ["lo"]  # rolled back, address and route with it
        assert not Namespace("t-jl5").exists
    finally:
        kept.remove()


def test_an_endpoint_kept_at_once_writes_its_intents_and_one_keep_line(host: Namespace) -> None:
    """Endpoint.create outside any transaction is one step made of steps (its namespace, its veth
    pair, its published port): each change is written ahead, no confirmation is written (the end of
    the outermost step keeps them all), and one line keeps them."""
    from netns_kit import CustomMode, Endpoint, Network

    with Network("jl-net", subnet="10.66.0.0/24") as net:
        before = len(_lines())
        ep = Endpoint("jl-ep", CustomMode(net), publish=["18080:80"]).create()
        try:
            lines = _lines()[before:]
            intents = [rec for rec in lines if "i" in rec]
            assert sorted(str(rec["op"]) for rec in intents) == ["link", "netns", "nft"]
            assert not [rec for rec in lines if "ok" in rec]
            assert sorted(int(str(rec["keep"])) for rec in lines if "keep" in rec) == \
                sorted(int(str(rec["i"])) for rec in intents)
            assert not {int(str(rec["i"])) for rec in intents} & set(_open_entries())
            assert ep.namespace.exists and net.resolve("jl-ep") is not None
        finally:
            ep.remove()
