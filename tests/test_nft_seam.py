"""The libnftables seam on the real kernel: one context per namespace, bound to it; errors mapped."""

from __future__ import annotations

import gc
import time

import pytest

from netns_kit import AlreadyExistsError, Namespace, NotFoundError, VethPair, _nft


def test_context_changes_the_namespace_it_was_made_for(host: Namespace) -> None:
    with Namespace("nk-seam-a") as a:
        ctx = _nft.context_for(a)
        assert _nft.context_for(a) is ctx  # cached by identity
        ctx.run_json([{"add": {"table": {"family": "inet", "name": "seamtest"}}}], obj="t", step="test")
        assert a.run(["nft", "list", "table", "inet", "seamtest"]).returncode == 0
        assert host.run(["nft", "list", "table", "inet", "seamtest"]).returncode != 0
        with pytest.raises(AlreadyExistsError) as info:
            ctx.run_json([{"create": {"table": {"family": "inet", "name": "seamtest"}}}], obj="table seamtest",
                         step="create table")
        assert info.value.namespace == "nk-seam-a" and info.value.step == "create table"
        assert "table seamtest" in str(info.value)
        with pytest.raises(NotFoundError):
            ctx.run_json([{"delete": {"table": {"family": "inet", "name": "nosuch"}}}], obj="t", step="delete")
        assert ctx.list_table("inet", "nosuch", step="list") is None


def test_context_of_a_removed_namespace_does_not_keep_it_alive(host: Namespace) -> None:
    a = Namespace("nk-seam-b").create()
    VethPair("vseamb", "eth0", peer_namespace=a).create()
    _nft.context_for(a).run_json([{"list": {"tables": None}}], obj="tables", step="list")
    a.remove()
    _nft.context_for(host)  # any later use drops contexts of namespaces that are gone
    gc.collect()
    deadline = time.monotonic() + 5
    while host.has_link("vseamb") and time.monotonic() < deadline:  # the kernel frees a netns asynchronously
        time.sleep(0.05)
    assert not host.has_link("vseamb")
    _nft.drop_context(host.identity)
