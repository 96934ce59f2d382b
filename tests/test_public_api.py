"""The public surface: ``__all__`` is sorted, complete and importable; the exception tree holds."""

from __future__ import annotations

import netns_kit
from netns_kit import errors


def test_all_is_sorted_and_importable() -> None:
    assert list(netns_kit.__all__) == sorted(netns_kit.__all__)
    for name in netns_kit.__all__:
        assert hasattr(netns_kit, name), name


def test_every_public_error_is_exported_and_rooted() -> None:
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, errors.NetnsKitError)
            assert name in netns_kit.__all__


def test_builtin_bases() -> None:
    assert issubclass(errors.ValidationError, ValueError)
    assert issubclass(errors.PermissionDeniedError, PermissionError)
    assert issubclass(errors.NotFoundError, LookupError)
    assert issubclass(errors.AlreadyExistsError, FileExistsError)


def test_error_names_object_namespace_and_step() -> None:
    e = errors.KernelError("refused", obj="br0", namespace="web", step="create bridge", errno=1)
    assert "br0" in str(e) and "web" in str(e) and "create bridge" in str(e)
    assert e.errno == 1


def test_py_typed_is_shipped() -> None:
    import pathlib

    assert (pathlib.Path(netns_kit.__file__).parent / "py.typed").exists()


def test_errno_survives_oserror_bases() -> None:
    assert errors.AlreadyExistsError("taken", errno=17).errno == 17
    assert errors.PermissionDeniedError("no", errno=1).errno == 1
    assert errors.NotFoundError("gone", errno=19).errno == 19


def test_name_service_is_public() -> None:
    assert "NameService" in netns_kit.__all__
    assert callable(netns_kit.NameService.of) and callable(netns_kit.Network.dns_flags)
