"""The fake Anthropic endpoint answers the official SDK like the real API does."""

from __future__ import annotations

import contextlib

import anthropic
import pytest

from runtime_adapter import fingerprint
from runtime_adapter.testing import FakeLLM, serve_in_thread


def test_streaming_and_refusal_through_the_official_sdk() -> None:
    llm = FakeLLM(reply="streamed words")
    with contextlib.ExitStack() as stack, serve_in_thread(llm.app) as url:
        client = anthropic.Anthropic(base_url=url, auth_token="fake-token", max_retries=0)
        stack.enter_context(client)
        with client.messages.stream(
            model="MiniMax-M2", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            text = "".join(stream.text_stream)
        assert text == "streamed words"
        llm.refuse_key = True
        with pytest.raises(anthropic.AuthenticationError) as caught:
            client.messages.create(
                model="MiniMax-M2", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
            )
    assert caught.value.status_code == 401
    assert [(r.stream, r.authorization) for r in llm.requests] == [
        (True, f"Bearer {fingerprint('fake-token')}"),
        (False, f"Bearer {fingerprint('fake-token')}"),
    ]
