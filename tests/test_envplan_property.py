"""Applying a plan and planning again yields the same plan, with nothing left to change.

This is what makes a restart unable to lose the projection (DESIGN §2): the
plan is decided from inputs on every boot, and the environment a plan left
behind, including stale projections of other arms, plans to the same thing.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from runtime_adapter import ProviderError, apply_plan, builtin_arms, fingerprint
from runtime_adapter.envplan import MANAGED_VARIABLES

from .helpers import plan

ARMS = builtin_arms()
KEY_VARIABLES = sorted({name for arm in ARMS.values() for name in arm.key_env})
BASE_URL_VARIABLES = sorted({arm.base_url_env for arm in ARMS.values() if arm.base_url_env})
ENDPOINTS = [arm.base_url for arm in ARMS.values() if arm.base_url] + [
    "https://proxy.example/llm/",
    "http://127.0.0.1:9/anthropic",
]
MODELS = [m for arm in ARMS.values() for m in arm.listed_models()] + [
    "claude-sonnet-5",
    "unknown-model",
    "minimax/MiniMax-M2",
]
DISTINCT_SECRETS = {"key-one", "key-two", "key-three", "key-four", "wstok-secret-9"}
SECRET_VALUES = ["key-one", "key-two\n", ' "key-three" ', "'key-four'", "bad key", "   "]

values = st.one_of(
    st.sampled_from(SECRET_VALUES),
    st.sampled_from(ENDPOINTS),
    st.sampled_from(MODELS),
    st.sampled_from(list(ARMS)),
    st.text(alphabet="abc-_/. \n:", max_size=12),
)
names = st.sampled_from(
    [*MANAGED_VARIABLES, *KEY_VARIABLES, *BASE_URL_VARIABLES, "MODEL_PROVIDER", "API_TIMEOUT_MS"]
)
environments = st.dictionaries(names, values, max_size=12).map(
    lambda env: {k: v for k, v in env.items() if not (k == "MODEL_PROVIDER" and v not in ARMS)}
)
configs = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(MODELS),
        "provider": st.sampled_from(list(ARMS)),
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    env=environments,
    config=configs,
    secrets=st.dictionaries(st.sampled_from(KEY_VARIABLES), st.sampled_from(SECRET_VALUES)),
    token=st.one_of(st.none(), st.just("wstok-secret-9")),
    proxy=st.one_of(st.none(), st.sampled_from(ENDPOINTS)),
)
def test_planning_after_applying_yields_the_same_plan(
    env: dict[str, str],
    config: dict[str, Any],
    secrets: dict[str, str],
    token: str | None,
    proxy: str | None,
) -> None:
    if proxy is not None:
        env["LLM_PROXY_URL"] = proxy
    refusal: str | None = None
    try:
        first = plan(config, env, secrets=secrets, token=token)
    except ProviderError as error:
        refusal = str(error)
    if refusal is not None:
        event("refused")
        # a refusal is stable too, and never carries a secret value
        with pytest.raises(ProviderError) as again:
            plan(config, env, secrets=secrets, token=token)
        assert str(again.value) == refusal
        assert not [secret for secret in DISTINCT_SECRETS if secret in refusal]
        return

    event(f"planned {first.provider}")
    applied = dict(env)
    apply_plan(first, applied)
    second = plan(config, applied, secrets=secrets, token=token)

    assert (second.provider, second.model) == (first.provider, first.model)
    assert second.assignments == first.assignments
    assert second.changes() == {}

    target = first.target()
    if first.arm is not None and not first.arm.anthropic:
        assert target["ANTHROPIC_API_KEY"] is None
        assert target["CLAUDE_CODE_OAUTH_TOKEN"] is None
        assert target["ANTHROPIC_AUTH_TOKEN"]
        assert target["ANTHROPIC_BASE_URL"]
    shown = repr(first) + str(first.summary())
    for item in first.assignments:
        if item.secret and item.value in DISTINCT_SECRETS:
            assert item.value not in shown
            assert fingerprint(item.value) in shown
