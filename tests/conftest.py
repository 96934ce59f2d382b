"""Shared fixtures. Kernel tests take ``host`` (a fresh throwaway host namespace per test,
from netns_kit's own pytest plugin); pure tests take nothing and need no root."""

from __future__ import annotations

import os

import pytest

from netns_kit import Namespace

if os.environ.get("NETNS_KIT_SANDBOXED") != "1" and os.geteuid() == 0:
    raise pytest.UsageError(
        "run the suite through scripts/test.sh (or scripts/sandbox.sh), which isolates /run and /etc")


@pytest.fixture
def host(netns_host: Namespace) -> Namespace:
    return netns_host
