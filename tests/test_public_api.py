"""``__all__`` is exactly the public surface of the package, without duplicates, and
every name in it resolves (the package imports its parts on first use)."""

from __future__ import annotations

import subprocess
import sys
import types

import runtime_adapter
import runtime_adapter.testing

PLUMBING = {"annotations", "importlib", "TYPE_CHECKING", "Any"}


def public_names(module: types.ModuleType) -> set[str]:
    return {
        name
        for name in dir(module)
        if not name.startswith("_")
        and name not in PLUMBING
        and not isinstance(getattr(module, name), types.ModuleType)
    }


def test_package_all_is_exactly_what_it_exposes() -> None:
    assert len(runtime_adapter.__all__) == len(set(runtime_adapter.__all__))
    assert set(runtime_adapter.__all__) - {"__version__"} == public_names(runtime_adapter)
    for name in runtime_adapter.__all__:
        assert getattr(runtime_adapter, name) is not None


def test_testing_all_is_exactly_what_it_exposes() -> None:
    assert set(runtime_adapter.testing.__all__) == public_names(runtime_adapter.testing)


def test_importing_the_package_loads_no_server_client_or_sdk() -> None:
    code = (
        "import sys, runtime_adapter, runtime_adapter.cli; "
        "print(sorted(m for m in ('httpx', 'uvicorn', 'starlette', 'anthropic', "
        "'claude_agent_sdk', 'a2a', 'tenacity') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_version_is_a_string() -> None:
    assert runtime_adapter.__version__.count(".") == 2
