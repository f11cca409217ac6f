"""Adapters that misbehave on purpose, for the reliability suite."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from runtime_adapter import AdapterContext, BaseAdapter, WorkspaceConfig
from runtime_adapter.volume import SkillConfig


class BadSkills(BaseAdapter):
    """Its card callback raises on every call."""

    name = "bad-skills"

    def skills(self, config: WorkspaceConfig) -> Sequence[SkillConfig]:
        raise RuntimeError("a bug in the template's skills()")


class SlowStop(BaseAdapter):
    """Asks for 20 s to stop and takes them; serves ``POST /work``."""

    name = "slow-stop"
    stop_timeout = 20.0

    def routes(self, ctx: AdapterContext) -> list[BaseRoute]:
        async def work(request: Request) -> Response:
            return JSONResponse({"accepted": True})

        return [Route("/work", work, methods=["POST"])]

    async def stop(self) -> None:
        await anyio.sleep(20)


class Flapping(BaseAdapter):
    """Calls an LLM of its own that refuses and accepts by turns: reports a 401 and a
    success alternately, 20 times a second for ``FLAP_SECONDS`` (10) from its start."""

    name = "flapping"

    async def start(self, ctx: AdapterContext) -> None:
        async def flap() -> None:
            with anyio.move_on_after(10):
                while True:
                    ctx.report_status(401, "invalid api key (its own LLM)")
                    await anyio.sleep(0.025)
                    ctx.report_success()
                    await anyio.sleep(0.025)
            ctx.report_success()  # its LLM accepts again

        ctx.start_soon(flap)
