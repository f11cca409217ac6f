"""A2A turn latency, side by side: the CLI spawned per turn (``query(resume=...)``, what
the claude-code template does today) against one live ``ClaudeSDKClient`` per context.

``python -m bench.sdk_client`` (needs the claude-code extra): the time from sending a
turn to the fake LLM receiving its request, cold (first turn) and warm (later turns).
The live client is connected before the first timing, so its "cold" excludes the CLI's
start; the per-turn spawn pays it on every turn.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid

import anyio
from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, query

from runtime_adapter.testing import FakeLLM, serve_in_thread

MODEL = "MiniMax-M2.7"


def _first_turn_request(llm: FakeLLM, before: int) -> float:
    return next(r.time for r in llm.requests[before:] if r.stream)


async def per_turn(llm: FakeLLM, cwd: str, runs: int) -> list[float]:
    session, waits = str(uuid.uuid4()), []
    for index in range(runs):
        where = {"resume": session} if index else {"session_id": session}
        options = ClaudeAgentOptions(cwd=cwd, **where)  # type: ignore[arg-type]
        before, sent = len(llm.requests), time.time()
        async for _ in query(prompt=f"turn {index}", options=options):
            pass
        waits.append((_first_turn_request(llm, before) - sent) * 1000)
    return waits


async def live(llm: FakeLLM, cwd: str, runs: int) -> list[float]:
    waits = []
    async with ClaudeSDKClient(ClaudeAgentOptions(cwd=cwd)) as client:
        for index in range(runs):
            before, sent = len(llm.requests), time.time()
            await client.query(f"turn {index}")
            async for _ in client.receive_response():
                pass
            waits.append((_first_turn_request(llm, before) - sent) * 1000)
    return waits


def main() -> None:
    llm = FakeLLM()
    with serve_in_thread(llm.app) as url:
        home = tempfile.mkdtemp(prefix="ra-bench-sdk-")
        os.environ.update(
            ANTHROPIC_BASE_URL=url,
            ANTHROPIC_AUTH_TOKEN="bench-key",  # noqa: S106 - the fake accepts anything
            CLAUDE_CODE_PROVIDER_MANAGED_BY_HOST="1",
            HOME=home,
            CLAUDE_CONFIG_DIR=home,
        )
        for slot in ("MODEL", "DEFAULT_HAIKU_MODEL", "SMALL_FAST_MODEL", "DEFAULT_SONNET_MODEL"):
            os.environ[f"ANTHROPIC_{slot}"] = MODEL
        for label, design in (("query() per turn", per_turn), ("ClaudeSDKClient", live)):
            waits = anyio.run(design, llm, home, 6)
            print(
                f"{label:<17} cold {waits[0]:.0f} ms, warm median "
                f"{statistics.median(waits[1:]):.0f} ms  {[round(w) for w in waits]}"
            )


if __name__ == "__main__":
    main()
