"""pytest plugin (entry point ``netns_kit``): fixtures that give each test a throwaway host.

- ``netns_host``: the test runs with its thread inside a fresh network namespace that plays
  the host; whatever the test builds there disappears afterwards, even when it fails. Named
  namespaces left in /run/netns fail the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .namespace import Namespace
from .testing import isolated_host


@pytest.fixture
def netns_host() -> Iterator[Namespace]:
    """A fresh, empty host namespace for this test (the calling thread is switched into it)."""
    with isolated_host() as host:
        yield host
