"""Shared fixtures: a clean environment for every test, and volume builders."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import AliasChoices

from runtime_adapter import MANAGED_VARIABLES, Settings, builtin_arms

# runtime_adapter.testing.fixtures arrives through its pytest11 entry point
pytest_plugins = ["anyio"]


def _variables_the_package_reads() -> set[str]:
    names = set(MANAGED_VARIABLES)
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        names.update(str(choice) for choice in choices)
    for arm in builtin_arms().values():
        names.update(arm.key_env)
        names.update(arm.env)
        if arm.base_url_env:
            names.add(arm.base_url_env)
    return {str(name) for name in names}


READ_VARIABLES = frozenset(_variables_the_package_reads())


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in READ_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _coverage_of_subprocesses(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test marked ``unmeasured`` starts its processes without coverage.

    Coverage (``patch = ["subprocess"]``) starts in every child whose environment holds
    ``COVERAGE_PROCESS_CONFIG``; its tracer makes a runtime's boot (mostly imports of
    anthropic, a2a-sdk and claude-agent-sdk) cost 1.5 to 2 times the CPU. The mark goes
    on a test whose processes run no line of ``runtime_adapter`` that other tests do not
    also run measured (found per process, see the ``unmeasured`` marker in pyproject),
    so the report is the same and the suite spends its CPU on tests, not on tracing.
    ``measured`` on a test (or a parameter) undoes its module's ``unmeasured``.
    """
    node = request.node
    if node.get_closest_marker("unmeasured") and not node.get_closest_marker("measured"):
        monkeypatch.setenv("COVERAGE_PROCESS_CONFIG", "")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


WriteVolume = Callable[..., Path]


@pytest.fixture
def volume(tmp_path: Path) -> WriteVolume:
    """Write a config volume: ``volume(config_text, token=..., providers=...)``."""
    root = tmp_path / "configs"

    def write(config: str | None = "model: MiniMax-M2\n", **files: str) -> Path:
        root.mkdir(exist_ok=True)
        if config is not None:
            (root / "config.yaml").write_text(config)
        names = {"token": ".auth_token", "providers": "providers.yaml"}
        for key, text in files.items():
            (root / names.get(key, key)).write_text(text)
        return root

    return write


def clean_env() -> dict[str, str]:
    """``os.environ`` without the variables the package reads, for subprocesses."""
    return {name: value for name, value in os.environ.items() if name not in READ_VARIABLES}
