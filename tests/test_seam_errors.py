"""The one errno -> error mapping of the three seams, and the one sysctl reader/writer."""

from __future__ import annotations

import errno

import pytest

import netns_kit as nk
from netns_kit import _sys
from netns_kit.errors import error_for_errno


@pytest.mark.parametrize(("err", "cls"), [
    (errno.EEXIST, nk.AlreadyExistsError),
    (errno.ENOENT, nk.NotFoundError),
    (errno.ENODEV, nk.NotFoundError),
    (errno.ESRCH, nk.NotFoundError),
    (errno.EADDRNOTAVAIL, nk.NotFoundError),
    (errno.EPERM, nk.PermissionDeniedError),
    (errno.EACCES, nk.PermissionDeniedError),
    (errno.EOPNOTSUPP, nk.UnsupportedError),
    (errno.EPROTONOSUPPORT, nk.UnsupportedError),
    (errno.EAFNOSUPPORT, nk.UnsupportedError),
    (errno.EINVAL, nk.KernelError),
    (errno.EBUSY, nk.KernelError),
    (None, nk.KernelError),
])
def test_one_errno_table(err: int | None, cls: type[nk.NetnsKitError]) -> None:
    exc = error_for_errno(err, "add link", obj="br0", namespace="web", step="create bridge")
    assert type(exc) is cls and exc.errno == err
    assert "br0" in str(exc) and "web" in str(exc) and "create bridge" in str(exc)


def test_sysctl_keys_and_values_are_validated_without_the_kernel() -> None:
    assert _sys.sysctl_path("net.ipv4.ip_forward") == "/proc/sys/net/ipv4/ip_forward"
    assert _sys.sysctl_path("/proc/sys/net/ipv4/conf/br.1/route_localnet") == \
        "/proc/sys/net/ipv4/conf/br.1/route_localnet"
    for bad in ("kernel.hostname", "net.../../x", "/proc/sys/kernel/panic", "/proc/sys/net/../kernel/x", "net.ipv4"):
        with pytest.raises(nk.ValidationError, match="net"):
            _sys.sysctl_path(bad)
    _sys.check_sysctl_value("net.ipv4.ip_forward", "1", "0")
    _sys.check_sysctl_value("net.ipv4.tcp_rmem", "4096 131072 6291456", "4096\t131072\t6291456")
    for bad in ("1\n", "1\nnet.ipv4.x=1", "", "a;b", "$(x)"):
        with pytest.raises(nk.ValidationError, match=r"net\.ipv4\.ip_forward"):
            _sys.check_sysctl_value("net.ipv4.ip_forward", bad)
    with pytest.raises(nk.ValidationError, match=r"net\.ipv4\.ip_forward"):
        _sys.check_sysctl_value("net.ipv4.ip_forward", "yes", "0")


def test_sysctl_writer_refusals_name_the_key(host: nk.Namespace) -> None:
    with pytest.raises(nk.ValidationError, match=r"net\.ipv4\.ip_forward"):
        host.write_sysctl("net.ipv4.ip_forward", "1\n")
    with pytest.raises(nk.ValidationError, match=r"net\.ipv4\.ip_forward"):
        host.write_sysctl("net.ipv4.ip_forward", "on")
    before = host.read_sysctl("net.ipv4.ip_local_port_range")
    with pytest.raises(nk.KernelError, match=r"net\.ipv4\.ip_local_port_range"):
        host.write_sysctl("net.ipv4.ip_local_port_range", "60000 1000")  # low above high: EINVAL
    assert host.read_sysctl("net.ipv4.ip_local_port_range") == before
    with pytest.raises(nk.NotFoundError, match=r"net\.ipv4\.no_such_key"):
        host.read_sysctl("net.ipv4.no_such_key")
    assert host.read_sysctl("net.ipv4.ip_forward") == "0"
    with host.enter():
        assert _sys.write_sysctl("net.ipv4.ip_forward", "0", expect="1") == "0"  # already 0: nothing written
        assert _sys.write_sysctl("net.ipv4.no_such_key", "1") is None
