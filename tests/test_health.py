"""Sample errors are classified, redacted and sticky; error_rate counts only the
workspace's own LLM failures in a rolling 60 s window."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import anyio
import httpx
import httpx2
import pytest

from runtime_adapter import fingerprint
from runtime_adapter.errors import (
    PlatformAuthError,
    PlatformRejected,
    PlatformUnavailable,
    ProviderError,
    Redactor,
)
from runtime_adapter.health import Health, LLMContext, SampleError, classify
from runtime_adapter.testing import FakeLLM, serve_in_thread

KEY = "mm-health-secret-8c1f"
CONTEXT = LLMContext(
    provider="minimax",
    endpoint="api.minimax.io",
    auth_scheme="bearer",
    credential_env="MINIMAX_API_KEY",
    credential_fingerprint=fingerprint(KEY),
)
T0 = 1_781_329_315.0  # 2026-06-13T05:41:55Z


@pytest.fixture(scope="module")
def llm() -> Iterator[tuple[FakeLLM, str]]:
    fake = FakeLLM()
    with serve_in_thread(fake.app) as url:
        yield fake, url


def sdk_error(llm: tuple[FakeLLM, str], status: int) -> Exception:
    fake, url = llm
    fake.error_status = status
    try:
        with anthropic.Anthropic(base_url=url, auth_token=KEY, max_retries=0, timeout=5) as client:
            client.messages.create(
                model="MiniMax-M2", max_tokens=1, messages=[{"role": "user", "content": "x"}]
            )
    except anthropic.APIError as error:
        return error
    finally:
        fake.error_status = None
    raise AssertionError("the fake did not fail")


def test_llm_401_from_the_real_sdk_matches_the_design_example(
    llm: tuple[FakeLLM, str],
) -> None:
    error = classify(sdk_error(llm, 401), "llm_probe", CONTEXT, now=T0)
    assert error.detail() == {
        "kind": "auth_failed",
        "severity": "error",
        "status": 401,
        "source": "llm_probe",
        "provider": "minimax",
        "endpoint": "api.minimax.io",
        "auth_scheme": "bearer",
        "credential_env": "MINIMAX_API_KEY",
        "credential_fingerprint": fingerprint(KEY),
        "message": "invalid api key",
        "hint": "the minimax credential was rejected; check MINIMAX_API_KEY",
        "count": 1,
        "first_seen": "2026-06-13T05:41:55Z",
        "last_seen": "2026-06-13T05:41:55Z",
    }
    assert error.summary() == (
        "auth_failed: 401 from api.minimax.io (minimax, bearer MINIMAX_API_KEY "
        f"{fingerprint(KEY)}): invalid api key"
    )


@pytest.mark.parametrize(
    ("status", "kind", "severity"),
    [
        (403, "permission_denied", "error"),
        (429, "rate_limited", "warning"),
        (500, "upstream_error", "warning"),
        (529, "upstream_error", "warning"),
        (404, "config_error", "error"),
    ],
)
def test_sdk_status_errors_are_classified(
    llm: tuple[FakeLLM, str], status: int, kind: str, severity: str
) -> None:
    error = classify(sdk_error(llm, status), "llm_call", CONTEXT)
    assert (error.kind, error.severity, error.status) == (kind, severity, status)


def test_transport_and_other_exceptions() -> None:
    request = httpx.Request("POST", "https://api.minimax.io/anthropic/v1/messages")
    sdk_request = httpx2.Request("POST", "https://api.minimax.io/anthropic/v1/messages")
    timeout = classify(anthropic.APITimeoutError(sdk_request), "llm_call", CONTEXT)
    network = classify(httpx.ConnectError("refused", request=request), "llm_call", CONTEXT)
    crash = classify(ValueError("boom"), "runtime")
    assert [(e.kind, e.severity) for e in (timeout, network, crash)] == [
        ("timeout", "warning"),
        ("network_error", "warning"),
        ("runtime_crash", "error"),
    ]
    assert crash.summary() == "runtime_crash: ValueError: boom"
    assert crash.provider is None


def test_platform_and_config_errors() -> None:
    refused = PlatformRejected(
        "url_validate_failed: 172.18.0.5 is a private address",
        endpoint="platform.example",
        status=400,
        kind="registration_failed",
    )
    error = classify(refused, "platform")
    assert (error.kind, error.severity, error.source, error.status) == (
        "registration_failed",
        "warning",
        "platform",
        400,
    )
    assert error.summary() == (
        "registration_failed: 400 from platform.example: url_validate_failed: 172.18.0.5 is a "
        "private address"
    )
    auth = classify(
        PlatformAuthError("invalid workspace auth token", endpoint="p", status=401), "platform"
    )
    assert (auth.kind, auth.severity) == ("auth_failed", "warning")
    config = classify(ProviderError("model X needs KEY", hint="set KEY"), "config")
    assert (config.kind, config.severity, config.hint) == ("config_error", "error", "set KEY")
    assert config.summary() == "config_error: model X needs KEY"


def test_messages_are_redacted_and_the_string_is_capped() -> None:
    redact = Redactor([KEY])
    echoed = ValueError(
        f"upstream said: key {KEY} is bad; Authorization: Bearer {KEY}x " + "z" * 900
    )
    error = classify(echoed, "llm_call", CONTEXT, redact=redact)
    assert KEY not in error.summary()
    assert KEY not in str(error.detail())
    assert fingerprint(KEY) in error.message
    assert len(error.summary()) <= 512
    long = SampleError("upstream_error", "warning", "llm_call", "m" * 2000)
    assert len(long.summary()) == 512


def test_sticky_until_a_success_from_the_same_source() -> None:
    health = Health()
    probe = SampleError("auth_failed", "error", "llm_probe", "invalid api key")
    refused = SampleError("registration_failed", "warning", "platform", "url refused")
    health.record_failure(probe)
    health.record_failure(refused)
    assert (health.current(), health.runtime_state) == (probe, "wedged")
    health.record_success("platform")
    assert health.errors() == [probe]
    health.record_success("llm_call")  # a real LLM answer proves the key too
    assert (health.current(), health.runtime_state) == (None, "")


def test_repeats_count_up_and_only_a_new_kind_is_a_change() -> None:
    health = Health()
    first = SampleError(
        "rate_limited", "warning", "llm_call", "slow down", first_seen=10, last_seen=10
    )
    again = SampleError(
        "rate_limited", "warning", "llm_call", "slow down", first_seen=20, last_seen=20
    )
    health.record_failure(first)
    version = health.version
    health.record_failure(again)
    assert health.version == version
    current = health.current()
    assert current is not None
    assert (current.count, current.first_seen, current.last_seen) == (2, 10, 20)
    health.record_failure(SampleError("auth_failed", "error", "llm_call", "bad key"))
    assert health.version == version + 1


def test_error_rate_is_a_rolling_window_of_own_llm_failures() -> None:
    now = [1000.0]
    health = Health(clock=lambda: now[0])
    bad_key = SampleError("auth_failed", "error", "llm_call", "x")
    health.record_failure(bad_key)
    health.record_failure(SampleError("upstream_error", "warning", "llm_call", "x"))
    health.record_failure(SampleError("rate_limited", "warning", "llm_call", "x"))  # not own
    health.record_failure(SampleError("network_error", "warning", "platform", "x"))  # not LLM
    health.record_success("llm_call")
    health.record_success("llm_call")
    assert health.error_rate() == 0.5
    now[0] += 59
    health.record_success("llm_call")
    assert health.error_rate() == 0.4
    now[0] += 1.5
    assert health.error_rate() == 0.0
    now[0] += 60
    assert health.error_rate() == 0.0


@pytest.mark.anyio
async def test_wait_changed_wakes_on_a_new_error() -> None:
    health = Health()
    since = health.version

    async def later() -> None:
        await anyio.sleep(0.05)
        health.record_failure(SampleError("timeout", "warning", "llm_call", "t"))

    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:
            tg.start_soon(later)
            await health.wait_changed(since)
    assert health.version == since + 1
    assert PlatformUnavailable("x", endpoint="p").kind == "upstream_error"


def test_a_failed_beat_never_hides_a_refused_register() -> None:
    """DESIGN §8: a 503 blip on a beat is no news to the platform; the refused register
    (the workspace's own problem) stays what sample_error shows."""
    clock = [100.0]
    health = Health(clock=lambda: clock[0])
    refused = classify(
        PlatformRejected(
            "url_validate_failed", endpoint="p", status=400, kind="registration_failed"
        ),
        "platform",
    )
    health.record_failure(refused, operation="register")
    clock[0] += 5
    blip = classify(PlatformUnavailable("unavailable", endpoint="p", status=503), "platform")
    health.record_failure(blip, operation="heartbeat")
    current = health.current()
    assert current is not None
    assert current.kind == "registration_failed"
