"""Servers for the gateway benchmark, each in a process of its own (no GIL shared with
the client): ``python -m bench.serve llm PORT DELTAS PACE`` or ``gateway PORT UPSTREAM``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import uvicorn

from runtime_adapter import builtin_arms, plan_env
from runtime_adapter._yaml import parse_yaml
from runtime_adapter.errors import VolumeError
from runtime_adapter.gateway import Gateway
from runtime_adapter.testing import FakeLLM
from runtime_adapter.volume import parse_config

KEY = "bench-minimax-key-0001"
TOKEN = "bench-gateway-token"  # noqa: S105 - a fake


def main(argv: list[str]) -> None:
    role, port = argv[0], int(argv[1])
    app: Any
    if role == "llm":
        app = FakeLLM(reply="tok ", deltas=int(argv[2]), pace=float(argv[3])).app
    else:
        config = parse_config(parse_yaml(b"model: MiniMax-M2.7\n", Path("c.yaml"), VolumeError))
        plan = plan_env(
            arms=builtin_arms(),
            environ={"MINIMAX_API_KEY": KEY, "MINIMAX_BASE_URL": argv[2]},
            config=config,
        )
        app = Gateway(lambda: plan, token=TOKEN).app
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        interface="asgi3",
        lifespan="off",
    )


if __name__ == "__main__":
    main(sys.argv[1:])
