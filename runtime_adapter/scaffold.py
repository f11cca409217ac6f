"""``runtime-adapter new PATH``: a template package that passes its own tests and runs
under ``runtime-adapter dev`` as generated.

It writes files only into a new (or empty) directory and never overwrites one.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from .errors import ConfigError

__all__ = ["new_template"]

_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}\Z")

_PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[project]
name = "{name}-template"
version = "0.1.0"
description = "The {name} template for runtime-adapter."
requires-python = ">=3.11"
dependencies = ["runtime-adapter"]

[project.optional-dependencies]
test = ["pytest>=8", "anyio>=4", "respx>=0.21"]

# runtime: {name} in a workspace's config.yaml finds this adapter
[project.entry-points."runtime_adapter.adapters"]
{name} = "{package}:Adapter"

[tool.hatch.build.targets.wheel]
packages = ["{package}"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

_ADAPTER = '''\
"""The {name} template: what a workspace running it does.

Start from here: ``start`` prepares the agent, ``routes`` serves its HTTP (A2A)
routes, ``stop`` releases what ``start`` took. Everything else (the card, the
credential probe, registration, heartbeats) comes from ``BaseAdapter``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from runtime_adapter import AdapterContext, BaseAdapter

__all__ = ["Adapter"]


class Adapter(BaseAdapter):
    """Answers ``GET /hello``; replace it with your agent."""

    name = "{name}"

    async def start(self, ctx: AdapterContext) -> None:
        self.ctx = ctx

    def routes(self, ctx: AdapterContext) -> list[BaseRoute]:
        async def hello(request: Request) -> Response:
            with ctx.task("hello"):  # the platform sees the work in active_tasks
                return JSONResponse({{"agent": self.name, "model": ctx.plan.model}})

        return [Route("/hello", hello, methods=["GET"])]
'''

_PROVIDERS = """\
# Provider arms this template adds or overrides, merged over runtime-adapter's
# built-in arms by name (see the arm schema in runtime-adapter's README). Example:
#
# acme:
#   display_name: Acme LLM (bring your own key)
#   key_env: [ACME_API_KEY]
#   auth: bearer
#   base_url: https://llm.acme.example/anthropic
#   base_url_env: ACME_BASE_URL
#   models: ["acme-*"]
"""

_CONFIG = """\
# Example workspace config for the {name} template (the platform writes the real one).
name: {title}
description: A workspace running the {name} template.
version: 0.1.0
runtime: {name}
model: MiniMax-M2.7
skills:
  - id: hello
    name: Say hello
    description: Answers GET /hello.
"""

_TESTS = '''\
"""The {name} template against runtime-adapter's own checks."""

from __future__ import annotations

import pytest
import respx

from runtime_adapter import Health, Heartbeat, PlatformClient, TokenStore
from runtime_adapter.testing import check_adapter, mock_platform

from {package} import Adapter

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_the_adapter_keeps_the_base_adapter_contract() -> None:
    await check_adapter(Adapter)  # raises AssertionError listing every problem


async def test_it_registers_and_beats_against_the_platform(
    respx_mock: respx.MockRouter, tmp_path
) -> None:
    platform = mock_platform(respx_mock, "http://platform.test")
    async with PlatformClient("http://platform.test", "ws-1", TokenStore(tmp_path)) as client:
        beat = Heartbeat(
            client, Health(), url="http://127.0.0.1:8000", card=lambda: {{"name": "{name}"}}
        )
        assert await beat.register_once()
        await beat.beat()
    assert platform.view("ws-1")["status"] == "online"
'''

_README = """\
# {name} template

A runtime-adapter template. Try it with no keys and nothing installed:

```sh
runtime-adapter dev --volume . --adapter {package}
```

Run its tests (`pip install -e '.[test]'` first, or `PYTHONPATH=.`):

```sh
python -m pytest
```

Install it into a workspace image with `pip install .`: the entry point
`runtime_adapter.adapters: {name}` makes `runtime: {name}` in config.yaml find it.
"""


def new_template(path: Path) -> list[Path]:
    """Write the template package into ``path``; the files written."""
    name = path.name.lower()
    if not _NAME.match(name):
        raise ConfigError(
            f"{path.name!r} cannot name a runtime",
            hint="use lower-case letters, digits and '-', starting with a letter "
            "(e.g. runtime-adapter new acme-agent)",
        )
    package = name.replace("-", "_")
    if keyword.iskeyword(package):
        raise ConfigError(f"{package} is a Python keyword", hint="choose another name")
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(
            f"{path} exists and is not an empty directory",
            hint="choose a new directory: new never overwrites files",
        )
    title = name.replace("-", " ").capitalize()
    files = {
        "pyproject.toml": _PYPROJECT,
        f"{package}/__init__.py": _ADAPTER,
        f"{package}/providers.yaml": _PROVIDERS,
        "config.yaml": _CONFIG,
        "tests/test_adapter.py": _TESTS,
        "README.md": _README,
    }
    written = []
    for relative, text in files.items():
        target = path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text.format(name=name, package=package, title=title))
        written.append(target)
    return written
