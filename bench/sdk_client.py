"""A2A turn latency's floor: the Claude Code CLI's own request preparation, a live
``ClaudeSDKClient`` driven directly (no A2A, no runtime), beside a CLI spawned per
turn (``query(resume=...)``).

``python -m bench.sdk_client`` (needs the claude-code extra) prints both; ``bench.run``'s
claude-code benchmark uses ``live_waits`` as the baseline the template's warm turns
are held to. A wait is the time from sending a turn to the fake LLM receiving its
streamed request. The live client is connected before the first timing, so its
"cold" excludes the CLI's start; the per-turn spawn pays it on every turn.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from typing import Any

import anyio
from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, query

from runtime_adapter.testing import FakeLLM, serve_in_thread

MODEL = "MiniMax-M2.7"


def _options(llm_url: str, home: str, **extra: Any) -> ClaudeAgentOptions:
    env = {
        "ANTHROPIC_BASE_URL": llm_url,
        "ANTHROPIC_AUTH_TOKEN": "bench-key",  # the fake accepts anything
        "CLAUDE_CODE_PROVIDER_MANAGED_BY_HOST": "1",
        "HOME": home,
        "CLAUDE_CONFIG_DIR": home,
        **{
            f"ANTHROPIC_{slot}": MODEL
            for slot in ("MODEL", "DEFAULT_HAIKU_MODEL", "SMALL_FAST_MODEL", "DEFAULT_SONNET_MODEL")
        },
    }
    return ClaudeAgentOptions(cwd=home, env=env, stderr=lambda _line: None, **extra)


def _first_turn_request(llm: FakeLLM, before: int) -> float:
    return next(r.time for r in llm.requests[before:] if r.stream)


async def _per_turn(llm: FakeLLM, llm_url: str, runs: int) -> list[float]:
    home, session, waits = tempfile.mkdtemp(prefix="ra-bench-sdk-"), str(uuid.uuid4()), []
    for index in range(runs):
        where = {"resume": session} if index else {"session_id": session}
        before, sent = len(llm.requests), time.time()
        async for _ in query(prompt=f"turn {index}", options=_options(llm_url, home, **where)):
            pass
        waits.append((_first_turn_request(llm, before) - sent) * 1000)
    return waits


async def _live(llm: FakeLLM, llm_url: str, runs: int) -> list[float]:
    home, waits = tempfile.mkdtemp(prefix="ra-bench-sdk-"), []
    async with ClaudeSDKClient(_options(llm_url, home)) as client:
        for index in range(runs):
            before, sent = len(llm.requests), time.time()
            await client.query(f"turn {index}")
            async for _ in client.receive_response():
                pass
            waits.append((_first_turn_request(llm, before) - sent) * 1000)
    return waits


def live_waits(llm: FakeLLM, llm_url: str, runs: int) -> list[float]:
    """Waits of ``runs`` turns through one live client; the first is its first turn."""
    return anyio.run(_live, llm, llm_url, runs)


def main() -> None:
    llm = FakeLLM()
    with serve_in_thread(llm.app) as url:
        for label, design in (("query() per turn", _per_turn), ("ClaudeSDKClient", _live)):
            waits = anyio.run(design, llm, url, 6)
            print(
                f"{label:<17} cold {waits[0]:.0f} ms, warm median "
                f"{statistics.median(waits[1:]):.0f} ms  {[round(w) for w in waits]}"
            )


if __name__ == "__main__":
    main()
