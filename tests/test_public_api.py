"""``__all__`` is exactly the public surface of the package, without duplicates."""

from __future__ import annotations

import types

import runtime_adapter
import runtime_adapter.testing


def public_names(module: types.ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }


def test_package_all_is_exactly_what_it_exposes() -> None:
    assert len(runtime_adapter.__all__) == len(set(runtime_adapter.__all__))
    assert set(runtime_adapter.__all__) - {"__version__"} == public_names(runtime_adapter)


def test_testing_all_is_exactly_what_it_exposes() -> None:
    assert set(runtime_adapter.testing.__all__) == public_names(runtime_adapter.testing)


def test_version_is_a_string() -> None:
    assert runtime_adapter.__version__.count(".") == 2
