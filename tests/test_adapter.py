"""The adapter API: a subclass that sets only ``name`` is valid, discovery finds
adapters without package changes, and the conformance check names every problem."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any
from unittest import mock

import anyio
import pytest
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Route

from runtime_adapter import ConfigError, Health, apply_plan, fingerprint
from runtime_adapter import adapter as adapter_module
from runtime_adapter.adapter import (
    AdapterContext,
    BaseAdapter,
    discover_adapter,
    load_adapter_class,
)
from runtime_adapter.errors import Redactor
from runtime_adapter.heartbeat import heartbeat_body
from runtime_adapter.settings import Settings
from runtime_adapter.testing import EchoAdapter, FakeLLM, check_adapter, serve_in_thread

from .helpers import config, plan

pytestmark = pytest.mark.anyio


class NameOnly(BaseAdapter):
    name = "name-only"


async def test_a_subclass_that_sets_only_name_conforms() -> None:
    await check_adapter(NameOnly)
    await check_adapter(EchoAdapter)


class Broken(BaseAdapter):
    name = "broken"
    stop_timeout = 0.2

    async def start(self, ctx: AdapterContext) -> None:
        raise RuntimeError("no agent")

    def routes(self, ctx: AdapterContext) -> list[BaseRoute]:
        return [Route("/health", lambda request: PlainTextResponse("mine"))]

    async def stop(self) -> None:
        await anyio.sleep(5)


async def test_conformance_lists_every_problem() -> None:
    with pytest.raises(AssertionError) as caught:
        await check_adapter(Broken)
    assert str(caught.value).splitlines() == [
        "Broken does not conform:",
        "- start() raised RuntimeError('no agent')",
        "- route /health shadows the runtime's own endpoint",
        "- stop() took longer than stop_timeout (0.2 s)",
    ]


@pytest.fixture
def template_package(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "pkgs"
    package = root / "acme_templates"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "one.py").write_text(
        "from runtime_adapter import BaseAdapter\nclass Acme(BaseAdapter):\n    name = 'acme'\n"
    )
    (package / "named.py").write_text(
        "from runtime_adapter import BaseAdapter\n"
        "class A(BaseAdapter):\n    name = 'a'\n"
        "class B(BaseAdapter):\n    name = 'b'\n"
        "Adapter = B\n"
    )
    (package / "two.py").write_text(
        "from runtime_adapter import BaseAdapter\n"
        "class A(BaseAdapter):\n    name = 'a'\n"
        "class B(BaseAdapter):\n    name = 'b'\n"
    )
    (package / "none.py").write_text("X = 1\n")
    # a package that re-exports its adapter from a submodule (the claude-code template)
    (package / "reexport").mkdir()
    (package / "reexport" / "__init__.py").write_text(
        "from .impl import Acme\nfrom .helpers import Helper\n__all__ = ['Acme', 'Helper']\n"
    )
    (package / "reexport" / "impl.py").write_text(
        "from runtime_adapter import BaseAdapter\nclass Acme(BaseAdapter):\n    name = 'acme'\n"
    )
    (package / "reexport" / "helpers.py").write_text("class Helper:\n    pass\n")
    # the same without __all__: imported to the top is exported
    (package / "bare").mkdir()
    (package / "bare" / "__init__.py").write_text("from ..reexport.impl import Acme\n")
    # a subclass of an imported adapter: the one defined here is the one
    (package / "derived.py").write_text(
        "from runtime_adapter.testing.echo import EchoAdapter\n"
        "class Loud(EchoAdapter):\n    name = 'loud'\n"
    )
    (package / "pair").mkdir()
    (package / "pair" / "__init__.py").write_text(
        "from ..two import A\nfrom ..one import Acme\n__all__ = ['A', 'Acme']\n"
    )
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
    for name in [m for m in sys.modules if m.startswith("acme_templates")]:
        del sys.modules[name]


def test_adapter_module_forms(template_package: Path) -> None:
    assert load_adapter_class("acme_templates.one").name == "acme"
    assert load_adapter_class("acme_templates.named").name == "b"
    assert load_adapter_class("acme_templates.two:A").name == "a"
    assert load_adapter_class("runtime_adapter.testing.echo") is EchoAdapter
    assert load_adapter_class("acme_templates.reexport").name == "acme"
    assert load_adapter_class("acme_templates.reexport:Acme").name == "acme"
    assert load_adapter_class("acme_templates.bare").name == "acme"
    assert load_adapter_class("acme_templates.derived").name == "loud"


def test_the_templates_package_form_loads_the_class_it_re_exports() -> None:
    """ADAPTER_MODULE=claude_code_adapter, as README and DESIGN document it."""
    pytest.importorskip("claude_agent_sdk")
    from claude_code_adapter import ClaudeCodeAdapter

    assert load_adapter_class("claude_code_adapter") is ClaudeCodeAdapter
    assert load_adapter_class("claude_code_adapter:ClaudeCodeAdapter") is ClaudeCodeAdapter


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("acme_templates.two", "found acme_templates.two.A, acme_templates.two.B"),
        ("acme_templates.pair", "found acme_templates.one.Acme, acme_templates.two.A"),
        ("acme_templates.none", "found none"),
        ("acme_templates.missing", "cannot be imported"),
        ("acme_templates.none:X", "is not a BaseAdapter subclass"),
    ],
)
def test_adapter_module_errors_name_the_variable(
    template_package: Path, spec: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_adapter_class(spec)
    assert message in caught.value.message
    assert caught.value.variable == "ADAPTER_MODULE"


def test_entry_point_named_after_runtime(
    template_package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    points = [
        EntryPoint("acme", "acme_templates.one:Acme", "runtime_adapter.adapters"),
        EntryPoint("echo", "runtime_adapter.testing.echo:EchoAdapter", "runtime_adapter.adapters"),
    ]

    def fake_entry_points(*, group: str, name: str | None = None) -> list[EntryPoint]:
        return [p for p in points if p.group == group and (name is None or p.name == name)]

    monkeypatch.setattr(adapter_module, "entry_points", fake_entry_points)
    settings = Settings()
    assert discover_adapter(settings, config("runtime: acme\n")).name == "acme"
    with pytest.raises(ConfigError) as caught:
        discover_adapter(settings, config("runtime: nope\n"))
    assert "no adapter is installed for runtime 'nope'" in caught.value.message
    assert "acme, echo" in caught.value.message
    with pytest.raises(ConfigError, match="no runtime:"):
        discover_adapter(settings, config(""))


def context(plan_: Any) -> AdapterContext:
    return AdapterContext(settings=Settings(), config=config(""), plan=plan_, health=Health())


def test_reporter_and_task_counting() -> None:
    ctx = context(plan({"model": "MiniMax-M2"}, {"MINIMAX_API_KEY": "mm-k-123456"}))
    with ctx.task("fix the parser"):
        assert (ctx.status.active_tasks, ctx.status.current_task) == (1, "fix the parser")
        ctx.report_error(TimeoutError("slow"))
    assert (ctx.status.active_tasks, ctx.status.current_task) == (0, "")
    error = ctx.health.current()
    assert error is not None
    assert (error.kind, error.source, error.provider, error.credential_env) == (
        "timeout",
        "llm_call",
        "minimax",
        "MINIMAX_API_KEY",
    )
    ctx.report_success()
    assert ctx.health.current() is None


@pytest.mark.parametrize(
    ("model", "env_key", "probe_model"),
    [
        ("sonnet", "ANTHROPIC_API_KEY", "claude-haiku-4-5"),
        ("claude-opus-5", "ANTHROPIC_API_KEY", "claude-opus-5"),
        ("MiniMax-M2", "MINIMAX_API_KEY", "MiniMax-M2.7-highspeed"),
        ("sonnet", "CLAUDE_CODE_OAUTH_TOKEN", "claude-haiku-4-5"),
    ],
)
async def test_default_probe_through_the_sdk(model: str, env_key: str, probe_model: str) -> None:
    fake = FakeLLM()
    with serve_in_thread(fake.app) as url:
        base = "MINIMAX_BASE_URL" if env_key == "MINIMAX_API_KEY" else "ANTHROPIC_BASE_URL"
        the_plan = plan({"model": model}, {env_key: "probe-key-123456", base: url})
        with mock.patch.dict(os.environ, {}):
            apply_plan(the_plan, os.environ)
            ctx = context(the_plan)
            assert await NameOnly().run_probe(ctx) is True
            fake.refuse_key = True
            assert await NameOnly().run_probe(ctx) is False
    assert [r.model for r in fake.requests] == [probe_model, probe_model]
    # every arm's credential as Authorization: Bearer (this SDK sends API keys so too);
    # the OAuth token with the beta header the API needs for it
    assert {r.authorization for r in fake.requests} == {f"Bearer {fingerprint('probe-key-123456')}"}
    oauth = env_key == "CLAUDE_CODE_OAUTH_TOKEN"
    assert ("oauth-2025-04-20" in fake.requests[0].headers.get("anthropic-beta", "")) is oauth
    error = ctx.health.current()
    assert error is not None
    assert (error.kind, error.source, error.credential_fingerprint) == (
        "auth_failed",
        "llm_probe",
        fingerprint("probe-key-123456"),
    )


async def test_probe_is_skipped_without_a_provider() -> None:
    ctx = context(plan({}, {}))
    assert await NameOnly().run_probe(ctx) is True


def test_overlapping_tasks_finishing_in_start_order_keep_current_task_right() -> None:
    ctx = context(plan({}, {}))
    first, second = ctx.task("first"), ctx.task("second")
    first.__enter__()
    second.__enter__()
    assert (ctx.status.active_tasks, ctx.status.current_task) == (2, "second")
    first.__exit__(None, None, None)  # the older one ends first
    assert (ctx.status.active_tasks, ctx.status.current_task) == (1, "second")
    second.__exit__(None, None, None)
    assert (ctx.status.active_tasks, ctx.status.current_task) == (0, "")


async def test_start_soon_runs_work_beside_and_reports_its_crash() -> None:
    ran = anyio.Event()

    async def work() -> None:
        ran.set()

    async def crash() -> None:
        raise ValueError("background work broke")

    async with anyio.create_task_group() as group:
        ctx = AdapterContext(
            settings=Settings(),
            config=config(""),
            plan=plan({}, {}),
            health=Health(),
            spawn=group.start_soon,
        )
        ctx.start_soon(work)
        ctx.start_soon(crash)
        await ran.wait()
        await anyio.sleep(0.05)
    error = ctx.health.current()
    assert error is not None
    assert (error.kind, error.source) == ("runtime_crash", "runtime")
    assert "background work broke" in error.message


def test_start_soon_outside_a_runtime_says_so() -> None:
    async def work() -> None: ...

    with pytest.raises(RuntimeError, match="once the runtime runs the adapter"):
        context(plan({}, {})).start_soon(work)


def test_a_key_quoted_in_a_task_never_reaches_the_heartbeat() -> None:
    key = "mm-secret-key-0123456789"
    ctx = AdapterContext(
        settings=Settings(),
        config=config(""),
        plan=plan({"model": "MiniMax-M2"}, {"MINIMAX_API_KEY": key}),
        health=Health(),
        redact=Redactor([key]),
    )
    with ctx.task(f"{'x' * 180} use {key} for the call"):  # the key straddles the cut
        body = heartbeat_body("ws", {}, ctx.health, ctx.status, 1.0)
    assert key[:12] not in json.dumps(body)
    assert body["current_task"].startswith("x" * 180)
