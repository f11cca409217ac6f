"""A secret value never appears in an error, a log line, or doctor's output, whatever
path it took: an upstream that echoes the key, a key pasted where a name belongs, a
URL with credentials, or a third-party library's logger."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime_adapter import ProviderError, fingerprint
from runtime_adapter.logs import REDACTOR, setup_logging
from runtime_adapter.providers import check_base_url, load_arms
from runtime_adapter.testing import FakeLLM, serve_in_thread

from .conftest import WriteVolume, clean_env
from .helpers import plan

KEY = "mm-redaction-secret-9c2d41"


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime_adapter", *args],
        env={**clean_env(), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def echoing_llm() -> Iterator[str]:
    llm = FakeLLM(refuse_key=True, echo_credential=True)
    with serve_in_thread(llm.app) as url:
        yield url


def test_doctor_redacts_a_key_the_upstream_echoes(
    volume: WriteVolume, echoing_llm: str, tmp_path: Path
) -> None:
    root = volume("model: MiniMax-M2\n")
    done = run_cli(
        {
            "WORKSPACE_ID": "ws-r",
            "PLATFORM_URL": "http://127.0.0.1:9",
            "WORKSPACE_CONFIG_PATH": str(root),
            "ADAPTER_MODULE": "runtime_adapter.testing.echo",
            "MINIMAX_API_KEY": KEY,
            "MINIMAX_BASE_URL": echoing_llm,
            "HOME": str(tmp_path),
        },
        "doctor",
    )
    assert KEY not in done.stdout + done.stderr
    assert f"invalid api key: {fingerprint(KEY)}" in done.stdout


def test_a_base_url_with_credentials_is_refused_without_quoting_it(tmp_path: Path) -> None:
    providers = tmp_path / "providers.yaml"
    providers.write_text(f"minimax:\n  base_url: https://user:{KEY}@llm.example/anthropic\n")
    with pytest.raises(ProviderError) as caught:
        load_arms([providers])
    assert KEY not in str(caught.value)
    assert "carries credentials in the URL" in str(caught.value)


def test_a_key_pasted_into_key_env_or_env_required_is_never_echoed(tmp_path: Path) -> None:
    providers = tmp_path / "providers.yaml"
    providers.write_text(f"minimax:\n  key_env: [{KEY}]\n")
    with pytest.raises(ProviderError) as caught:
        load_arms([providers])
    assert KEY not in str(caught.value)
    assert "key_env" in str(caught.value)
    with pytest.raises(ProviderError) as required:
        plan({"model": "MiniMax-M2", "env": {"required": [KEY]}}, {"MINIMAX_API_KEY": "k"})
    assert KEY not in str(required.value)
    assert "env.required[0]" in str(required.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://2852039166/latest",
        "http://0xa9fea9fe/latest",
        "http://0251.0376.0251.0376/",
        "http://metadata.google.internal./computeMetadata",
        "http://[::ffff:169.254.169.254]/latest",
    ],
)
def test_the_metadata_guard_normalises_addresses(url: str) -> None:
    problem = check_base_url(url)
    assert problem is not None
    assert "metadata" in problem


def test_third_party_loggers_are_json_and_redacted() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        setup_logging("json", "INFO", stream=stream)
        REDACTOR.add(KEY)
        logging.getLogger("a2a.server.request_handlers").warning("task failed with key %s", KEY)
        logging.getLogger("httpx").warning("Authorization: Bearer %s", KEY)
    finally:
        root.handlers, root.level = saved
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [entry["logger"] for entry in lines] == ["a2a.server.request_handlers", "httpx"]
    assert KEY not in stream.getvalue()
    assert fingerprint(KEY) in lines[0]["msg"]
