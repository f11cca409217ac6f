"""An adapter's own reports reach the platform beside the gateway (DESIGN §8: an
error is cleared by its own reporter; §13: the gateway reports the calls it sees).

The invariant: an outcome reported through the context is never dropped. A
health that flaps is coalesced (at most one unscheduled beat per 2 s), never
frozen at its first error.
"""

from __future__ import annotations

import time

import pytest

from ..harness import wait_for
from .conftest import World

pytestmark = pytest.mark.slow


def test_a_flapping_adapter_beside_the_gateway_is_reported_coalesced(world: World) -> None:
    process = world.launch(
        ADAPTER_MODULE="tests.reliability.broken_adapters:Flapping",
        LLM_GATEWAY="on",
        HEARTBEAT_INTERVAL_SECONDS="60",  # every beat in the window is a health change's
    )

    def flapped() -> float | None:
        for call in world.emulator.calls_to("/registry/heartbeat"):
            if (call.body.get("sample_error_detail") or {}).get("kind") == "auth_failed":
                return call.time
        return None

    first = wait_for(flapped, timeout=30)
    # the adapter flaps for 10 s from its start; watch the 8 s after its first report
    time.sleep(8)
    beats = [c for c in world.emulator.calls_to("/registry/heartbeat") if c.time > first]
    window = [c for c in beats if c.time <= first + 8]
    shown = {(c.body.get("sample_error_detail") or {}).get("kind") for c in window}
    assert len(window) >= 2, [c.body.get("sample_error") for c in beats]
    assert len(window) <= 8  # coalesced: at most one a second (the contract: one per 2 s)
    assert "auth_failed" in shown or None in shown
    # once it stops flapping, its last report (a success) is what the platform keeps
    wait_for(lambda: world.view().get("runtime_state") == "", timeout=15)
    assert process.alive()
