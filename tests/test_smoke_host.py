from netns_kit import Bridge, Namespace


def test_host_fixture_is_fresh(host: Namespace) -> None:
    assert [link.name for link in host.links()] == ["lo"]
    with Bridge("br-smoke", addresses=["10.1.0.1/24"]) as br:
        assert host.link("br-smoke").kind == "bridge"
        assert br.index == host.link("br-smoke").index
    assert not host.has_link("br-smoke")
