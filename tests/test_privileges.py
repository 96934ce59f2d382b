"""Missing capabilities give one clear PermissionDeniedError at the first call, not a netlink errno."""

from __future__ import annotations

import os
import subprocess
import sys

from netns_kit import Namespace

SCRIPT = """
import netns_kit as nk
try:
    nk.Namespace("nopriv").create()
except nk.PermissionDeniedError as e:
    print("PermissionDeniedError:", e)
    print("is PermissionError:", isinstance(e, PermissionError))
"""


def test_without_net_admin_the_first_call_says_so(host: Namespace) -> None:
    res = subprocess.run(
        ["setpriv", "--bounding-set", "-net_admin,-sys_admin", "--inh-caps", "-all", "--",
         sys.executable, "-c", SCRIPT],
        capture_output=True, text=True, timeout=60,
    )
    assert "PermissionDeniedError: netns_kit needs CAP_NET_ADMIN and CAP_SYS_ADMIN" in res.stdout, res.stderr
    assert "is PermissionError: True" in res.stdout
    assert not os.path.exists("/run/netns/nopriv")
