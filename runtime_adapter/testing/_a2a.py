"""The A2A 0.3 ``message/send`` request as the Molecule platform's proxy sends it."""

from __future__ import annotations

import uuid
from typing import Any

__all__ = ["message_send"]


def message_send(
    text: str,
    *,
    message_id: str | None = None,
    context_id: str | None = None,
    request_id: int | str = 1,
) -> dict[str, Any]:
    """A JSON-RPC ``message/send`` body carrying one user text part."""
    message: dict[str, Any] = {
        "role": "user",
        "parts": [{"kind": "text", "text": text}],
        "messageId": message_id or f"m-{uuid.uuid4().hex[:12]}",
    }
    if context_id is not None:
        message["contextId"] = context_id
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "message/send",
        "params": {"message": message},
    }
