"""errors.Failures: the teardown helper that keeps going past errors and raises the first."""

from __future__ import annotations

import pytest

from netns_kit.errors import Failures, NotFoundError, rollback_failures

pytestmark = pytest.mark.pure


def test_every_step_runs_and_the_first_error_carries_the_others() -> None:
    ran: list[str] = []
    first = NotFoundError("gone", obj="veth0")
    second = OSError(5, "I/O error")
    failures = Failures()
    with failures.step():
        ran.append("a")
        raise first
    with failures.step(OSError):
        ran.append("b")
        raise second
    with failures.step():
        ran.append("c")
    failures.extend([RuntimeError("late")])
    with pytest.raises(NotFoundError) as info:
        failures.raise_first()
    assert ran == ["a", "b", "c"]
    assert info.value is first
    kept = rollback_failures(info.value)
    assert kept[0] is second and isinstance(kept[1], RuntimeError) and len(kept) == 2
    assert any("I/O error" in note for note in info.value.__notes__)


def test_an_error_outside_catch_passes_through() -> None:
    failures = Failures()
    with pytest.raises(ValueError), failures.step(OSError):
        raise ValueError("not an OSError")
    with pytest.raises(KeyboardInterrupt), failures.step():
        raise KeyboardInterrupt
    assert failures.errors == []


def test_nothing_kept_raises_nothing() -> None:
    failures = Failures()
    with failures.step():
        pass
    failures.raise_first()
    assert failures.errors == []
