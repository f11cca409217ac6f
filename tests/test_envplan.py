"""Every rule of DESIGN §5, on the pure planner.

A non-Anthropic arm never exports an Anthropic credential; a secret value
never appears in a message; the plan is decided from inputs, not history.
"""

from __future__ import annotations

import pytest

from runtime_adapter import Action, EnvGuardError, ProviderError, apply_plan, fingerprint
from runtime_adapter.envplan import (
    HOST_FLAG,
    MANAGED_VARIABLES,
    MODEL_SLOTS,
    check_applied,
    clean_key,
)

from .helpers import plan

MINIMAX_KEY = "mm-test-key-0123456789abcdef"
ANT_KEY = "sk-ant-test-0123456789"
OAUTH = "sk-ant-oat01-test-0123456789"

UNSET: dict[str, str | None] = dict.fromkeys(MANAGED_VARIABLES)
UNSET["API_TIMEOUT_MS"] = None
UNSET["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = None
UNSET[HOST_FLAG] = "1"  # every plan: the host owns the provider (rule 8)
QUIET = {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
SMALL = (
    "ANTHROPIC_DEFAULT_HAIKU_MODEL",
    "ANTHROPIC_SMALL_FAST_MODEL",
    "CLAUDE_CODE_BG_CLASSIFIER_MODEL",
)


def pinned(model: str, small: str | None = None) -> dict[str, str]:
    """Every model slot the CLI reads, the haiku/background ones to the arm's small model."""
    slots = dict.fromkeys(MODEL_SLOTS, model)
    if small is not None:
        slots.update(dict.fromkeys(SMALL, small))
    return slots


@pytest.mark.parametrize(
    ("model", "env", "token", "provider", "expected"),
    [
        pytest.param(
            "claude-sonnet-5",
            {"ANTHROPIC_API_KEY": ANT_KEY},
            None,
            "anthropic",
            {"ANTHROPIC_API_KEY": ANT_KEY, "ANTHROPIC_MODEL": "claude-sonnet-5"},
            id="anthropic",
        ),
        pytest.param(
            "sonnet",
            {"CLAUDE_CODE_OAUTH_TOKEN": OAUTH},
            None,
            "anthropic-oauth",
            {"CLAUDE_CODE_OAUTH_TOKEN": OAUTH, "ANTHROPIC_MODEL": "sonnet"},
            id="anthropic-oauth",
        ),
        pytest.param(
            "MiniMax-M2",
            {"MINIMAX_API_KEY": MINIMAX_KEY},
            None,
            "minimax",
            {
                "ANTHROPIC_AUTH_TOKEN": MINIMAX_KEY,
                "ANTHROPIC_BASE_URL": "https://api.minimax.io/anthropic",
                "API_TIMEOUT_MS": "3000000",
                **QUIET,
                **pinned("MiniMax-M2", "MiniMax-M2.7-highspeed"),
            },
            id="minimax",
        ),
        pytest.param(
            "kimi-k2.6",
            {"KIMI_API_KEY": "kimi-key"},
            None,
            "moonshot",
            {
                "ANTHROPIC_AUTH_TOKEN": "kimi-key",
                "ANTHROPIC_BASE_URL": "https://api.moonshot.ai/anthropic",
                "API_TIMEOUT_MS": "600000",
                **QUIET,
                **pinned("kimi-k2.6"),
            },
            id="moonshot-via-alias",
        ),
        pytest.param(
            "glm-4.6",
            {"GLM_API_KEY": "glm-key"},
            None,
            "zai",
            {
                "ANTHROPIC_AUTH_TOKEN": "glm-key",
                "ANTHROPIC_BASE_URL": "https://api.z.ai/api/anthropic",
                "API_TIMEOUT_MS": "3000000",
                **QUIET,
                **pinned("glm-4.6", "glm-4.5-air"),
            },
            id="zai-via-alias",
        ),
        pytest.param(
            "deepseek-v4-pro",
            {"DEEPSEEK_API_KEY": "ds-key"},
            None,
            "deepseek",
            {
                "ANTHROPIC_AUTH_TOKEN": "ds-key",
                "ANTHROPIC_BASE_URL": "https://api.deepseek.com/anthropic",
                "API_TIMEOUT_MS": "600000",
                **QUIET,
                **pinned("deepseek-v4-pro", "deepseek-flash"),
            },
            id="deepseek",
        ),
        pytest.param(
            "moonshot/kimi-k2.6",
            {"LLM_PROXY_URL": "https://llm.platform.example/v1/proxy/"},
            "workspace-token-1",
            "platform",
            {
                "ANTHROPIC_AUTH_TOKEN": "workspace-token-1",
                "ANTHROPIC_BASE_URL": "https://llm.platform.example/v1/proxy",
                **pinned("moonshot/kimi-k2.6"),
            },
            id="platform",
        ),
    ],
)
def test_each_builtin_arm_projects_exactly_its_variables(
    model: str,
    env: dict[str, str],
    token: str | None,
    provider: str,
    expected: dict[str, str],
) -> None:
    result = plan({"model": model}, env, token=token)
    assert result.provider == provider
    assert result.model == model
    assert result.target() == {**UNSET, **expected}


def test_base_url_env_overrides_the_arm_endpoint_and_is_named_as_source() -> None:
    result = plan(
        {"model": "MiniMax-M2"},
        {"MINIMAX_API_KEY": MINIMAX_KEY, "MINIMAX_BASE_URL": "http://127.0.0.1:9999/anthropic/"},
    )
    (base,) = [a for a in result.assignments if a.name == "ANTHROPIC_BASE_URL"]
    assert (base.value, base.source) == (
        "http://127.0.0.1:9999/anthropic",
        "MINIMAX_BASE_URL (environment)",
    )


def test_anthropic_base_url_is_accepted_as_an_operator_proxy() -> None:
    result = plan(
        {"model": "claude-sonnet-5"},
        {"ANTHROPIC_API_KEY": ANT_KEY, "ANTHROPIC_BASE_URL": "https://proxy.corp.example"},
    )
    assert result.target()["ANTHROPIC_BASE_URL"] == "https://proxy.corp.example"
    assert result.warnings == ()


def test_a_stale_third_party_base_url_never_receives_an_anthropic_key() -> None:
    result = plan(
        {"model": "claude-sonnet-5"},
        {
            "ANTHROPIC_API_KEY": ANT_KEY,
            "ANTHROPIC_BASE_URL": "https://api.minimax.io/anthropic",
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": "MiniMax-M2",
        },
    )
    assert result.target()["ANTHROPIC_BASE_URL"] is None
    assert result.target()["ANTHROPIC_DEFAULT_HAIKU_MODEL"] is None
    assert any("minimax's endpoint" in w for w in result.warnings)


# -- rule 1: resolution ---------------------------------------------------------------


def test_model_provider_beats_config_provider_beats_model_arm() -> None:
    keys = {"ANTHROPIC_API_KEY": ANT_KEY, "CLAUDE_CODE_OAUTH_TOKEN": OAUTH}
    cfg = {"model": "sonnet", "provider": "anthropic-oauth"}
    assert plan(cfg, {**keys, "MODEL_PROVIDER": "anthropic"}).provider == "anthropic"
    assert plan(cfg, keys).provider == "anthropic-oauth"
    assert plan({"model": "sonnet"}, keys).provider == "anthropic"


def test_when_several_arms_serve_a_model_the_one_with_a_credential_wins() -> None:
    assert plan({"model": "opus"}, {"CLAUDE_CODE_OAUTH_TOKEN": OAUTH}).provider == (
        "anthropic-oauth"
    )


def test_provider_alone_uses_the_arms_default_model() -> None:
    result = plan({"provider": "minimax"}, {"MINIMAX_API_KEY": MINIMAX_KEY})
    assert (result.provider, result.model) == ("minimax", "MiniMax-M2.7")
    assert result.target()["ANTHROPIC_DEFAULT_SONNET_MODEL"] == "MiniMax-M2.7"


def test_runtime_config_model_is_used_and_must_agree_with_model() -> None:
    nested = plan("runtime_config:\n  model: MiniMax-M2\n", {"MINIMAX_API_KEY": MINIMAX_KEY})
    assert nested.model == "MiniMax-M2"
    with pytest.raises(ProviderError) as caught:
        plan("model: MiniMax-M2\nruntime_config:\n  model: kimi-k2.6\n")
    assert str(caught.value) == (
        "model is 'MiniMax-M2' in /configs/config.yaml:1 (model) but "
        "'kimi-k2.6' in /configs/config.yaml:3 (runtime_config.model) "
        "(keep one of them, or make them equal)"
    )


def test_nothing_configured_clears_the_llm_variables_with_a_warning() -> None:
    result = plan({}, {"ANTHROPIC_AUTH_TOKEN": "stale"})
    assert result.provider is None
    assert result.target() == UNSET
    assert result.actions["ANTHROPIC_AUTH_TOKEN"] is Action.UNSET
    assert any("no model, provider" in w for w in result.warnings)


def test_only_a_key_configured_picks_that_arm() -> None:
    result = plan({}, {"DEEPSEEK_API_KEY": "ds"})
    assert (result.provider, result.model) == ("deepseek", "deepseek-v4-pro")


# -- rule 2: contradictions name both sources -----------------------------------------


def test_platform_arm_with_a_byok_only_model_names_both_sources() -> None:
    with pytest.raises(ProviderError) as caught:
        plan(
            {"model": "MiniMax-M2"},
            {"MODEL_PROVIDER": "platform", "LLM_PROXY_URL": "https://proxy.example"},
            token="tok",
        )
    error = caught.value
    assert error.message == (
        "provider platform (platform-managed billing, from MODEL_PROVIDER (environment)) "
        "cannot serve model MiniMax-M2 (from /configs/config.yaml:1 (model)): it is a "
        "bring-your-own-key model of arm minimax"
    )
    assert error.hint == (
        "use minimax/MiniMax-M2.7 for platform billing, or set provider: minimax and "
        "MINIMAX_API_KEY"
    )
    assert (error.file, error.line) == ("/configs/config.yaml", 1)


def test_explicit_provider_that_does_not_serve_the_model() -> None:
    with pytest.raises(ProviderError) as caught:
        plan("provider: moonshot\nmodel: MiniMax-M2\n", {"MOONSHOT_API_KEY": "k"})
    assert caught.value.message == (
        "provider moonshot (from /configs/config.yaml:1 (provider)) does not serve model "
        "MiniMax-M2 (from /configs/config.yaml:2 (model))"
    )
    assert caught.value.hint == "arms that serve it: minimax; change the provider or the model"


def test_byok_arm_without_its_key_under_platform_billing_suggests_the_slug() -> None:
    with pytest.raises(ProviderError) as caught:
        plan({"model": "MiniMax-M2"}, {"LLM_PROXY_URL": "https://proxy.example"})
    error = caught.value
    assert error.message == (
        "model MiniMax-M2 (from /configs/config.yaml:1 (model)) is served by arm minimax, "
        "which needs MINIMAX_API_KEY; none is set (platform-managed billing sends no tenant key)"
    )
    assert error.hint == (
        "use minimax/MiniMax-M2.7 for platform billing or set MINIMAX_API_KEY in the environment"
    )
    assert error.variable == "MINIMAX_API_KEY"
    assert error.detail()["kind"] == "config_error"


def test_byok_arm_without_its_key_names_every_alias_and_the_secrets_dir() -> None:
    with pytest.raises(ProviderError) as caught:
        plan({"model": "kimi-k2.6"}, secrets={"UNRELATED": "x"})
    assert "needs MOONSHOT_API_KEY or KIMI_API_KEY; none is set" in caught.value.message
    assert caught.value.hint is not None
    assert "or as a file in /run/secrets" in caught.value.hint


def test_unknown_provider_and_unknown_model_suggest_close_names() -> None:
    with pytest.raises(ProviderError, match=r"did you mean 'minimax'\?"):
        plan({"model": "MiniMax-M2"}, {"MODEL_PROVIDER": "minimx"})
    with pytest.raises(ProviderError, match=r"did you mean 'MiniMax-M2'\?"):
        plan({"model": "MiniMx-M2"})
    with pytest.raises(ProviderError) as caught:
        plan({"model": "acme-large-9"})
    assert "did you mean" not in str(caught.value)  # not a typo: no steering


def test_platform_arm_needs_the_workspace_token_and_the_proxy_url() -> None:
    with pytest.raises(ProviderError, match=r"/configs/.auth_token is absent or empty"):
        plan({"model": "moonshot/kimi-k2.6"}, {"LLM_PROXY_URL": "https://p.example"})
    with pytest.raises(ProviderError, match=r"LLM_PROXY_URL is not set"):
        plan({"model": "moonshot/kimi-k2.6"}, token="tok")


# -- rules 3-5 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("MiniMax-M2", "MINIMAX_API_KEY"),
        ("kimi-k2.6", "MOONSHOT_API_KEY"),
        ("glm-4.7", "ZAI_API_KEY"),
        ("deepseek-reasoner", "DEEPSEEK_API_KEY"),
    ],
)
def test_third_party_arm_never_exports_an_anthropic_credential(model: str, key: str) -> None:
    env = {key: "third-party", "ANTHROPIC_API_KEY": ANT_KEY, "CLAUDE_CODE_OAUTH_TOKEN": OAUTH}
    result = plan({"model": model}, env)
    target = result.target()
    assert target["ANTHROPIC_API_KEY"] is None
    assert target["CLAUDE_CODE_OAUTH_TOKEN"] is None
    assert target["ANTHROPIC_AUTH_TOKEN"] == "third-party"
    assert result.actions["ANTHROPIC_API_KEY"] is Action.UNSET
    assert (
        "ANTHROPIC_API_KEY was set but is removed: no Anthropic credential goes to a "
        "third-party host"
    ) in result.warnings


def test_stale_projection_is_overwritten_and_then_kept() -> None:
    stale = {
        "ANTHROPIC_AUTH_TOKEN": "old-minimax-key",
        "ANTHROPIC_BASE_URL": "https://api.minimax.io/anthropic",
        **pinned("MiniMax-M2"),
        "API_TIMEOUT_MS": "3000000",
    }
    env = {**stale, "ZAI_API_KEY": "zai-key"}
    first = plan({"model": "glm-4.7"}, env)
    assert first.changes() == {
        "ANTHROPIC_AUTH_TOKEN": Action.SET,
        "ANTHROPIC_BASE_URL": Action.SET,
        **dict.fromkeys(pinned("x"), Action.SET),
        HOST_FLAG: Action.SET,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": Action.SET,
    }
    applied = dict(env)
    apply_plan(first, applied)
    again = plan({"model": "glm-4.7"}, applied)
    assert again.target() == first.target()
    assert again.changes() == {}
    assert again.warnings == ()


# -- rule 6: key hygiene --------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [MINIMAX_KEY + "\n", f"  {MINIMAX_KEY}\r\n", f'"{MINIMAX_KEY}"', f"'{MINIMAX_KEY}'\n"],
)
def test_whitespace_newline_and_matching_quotes_are_stripped(raw: str) -> None:
    result = plan({"model": "MiniMax-M2"}, {"MINIMAX_API_KEY": raw})
    assert result.target()["ANTHROPIC_AUTH_TOKEN"] == MINIMAX_KEY


@pytest.mark.parametrize(
    ("raw", "what", "position"),
    [
        ("mm-key\x01rest", "a control character (U+0001)", 7),
        ("mm key", "a space", 3),
        ("mm-key\u200brest", "a non-ASCII character (U+200B)", 7),
        ("mm-key\nrest", "a control character (U+000A)", 7),
    ],
)
def test_interior_bad_character_is_named_by_position_never_shown(
    raw: str, what: str, position: int
) -> None:
    with pytest.raises(ProviderError) as caught:
        plan({"model": "MiniMax-M2"}, {"MINIMAX_API_KEY": raw})
    text = str(caught.value)
    assert f"MINIMAX_API_KEY has {what} at position {position} of {len(raw)}" in text
    assert "mm-key" not in text
    assert "rest" not in text


def test_unmatched_quotes_are_kept_as_part_of_the_key() -> None:
    assert clean_key('"abc', "K") == '"abc'


def test_a_blank_key_counts_as_absent() -> None:
    with pytest.raises(ProviderError, match="none is set"):
        plan({"model": "MiniMax-M2"}, {"MINIMAX_API_KEY": "  \n"})


# -- secrets directory and required variables -----------------------------------------


def test_secrets_file_wins_over_environment_and_is_named() -> None:
    result = plan(
        {"model": "MiniMax-M2"},
        {"MINIMAX_API_KEY": "env-value"},
        secrets={"MINIMAX_API_KEY": MINIMAX_KEY + "\n"},
    )
    assert result.target()["ANTHROPIC_AUTH_TOKEN"] == MINIMAX_KEY
    assert result.credential is not None
    assert result.credential.source == "secrets file /run/secrets/MINIMAX_API_KEY"
    assert result.credential.fingerprint == fingerprint(MINIMAX_KEY)
    assert any("using the file" in w for w in result.warnings)


def test_required_env_is_checked_with_file_and_line() -> None:
    with pytest.raises(ProviderError) as caught:
        plan(
            "model: MiniMax-M2\nenv:\n  required:\n    - GITHUB_TOKEN\n",
            {"MINIMAX_API_KEY": MINIMAX_KEY},
        )
    error = caught.value
    assert (error.variable, error.file, error.line, error.field) == (
        "GITHUB_TOKEN",
        "/configs/config.yaml",
        4,
        "env.required.0",
    )


def test_required_credentials_of_other_arms_are_never_required() -> None:
    text = (
        "model: moonshot/kimi-k2.6\nenv:\n  required: [MINIMAX_API_KEY, ANTHROPIC_AUTH_TOKEN]\n"
        "runtime_config:\n  required_env: [ANTHROPIC_API_KEY, GH_TOKEN]\n"
    )
    result = plan(
        text, {"LLM_PROXY_URL": "https://p.example"}, secrets={"GH_TOKEN": "x"}, token="t"
    )
    assert result.provider == "platform"


# -- apply and guard ------------------------------------------------------------------


def test_apply_then_guard_and_guard_catches_tampering() -> None:
    result = plan({"model": "MiniMax-M2"}, {"MINIMAX_API_KEY": MINIMAX_KEY})
    environ = {"ANTHROPIC_API_KEY": ANT_KEY, "PATH": "/bin"}
    apply_plan(result, environ)
    assert environ == {"PATH": "/bin", **dict(result.values().items())}
    environ["ANTHROPIC_API_KEY"] = ANT_KEY
    del environ["ANTHROPIC_BASE_URL"]
    with pytest.raises(EnvGuardError) as caught:
        check_applied(result, environ)
    assert caught.value.variables == ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"]


def test_plan_repr_and_summary_never_hold_a_secret() -> None:
    result = plan(
        {"model": "MiniMax-M2"}, {"MINIMAX_API_KEY": MINIMAX_KEY, "ANTHROPIC_API_KEY": ANT_KEY}
    )
    text = repr(result) + str(result.summary())
    assert MINIMAX_KEY not in text
    assert ANT_KEY not in text
    assert result.summary()["set"]["ANTHROPIC_AUTH_TOKEN"] == fingerprint(MINIMAX_KEY)


# -- rule 9: families, not closed lists ---------------------------------------------------


@pytest.mark.parametrize(
    "config", [{"model": "MiniMax-M3", "provider": "minimax"}, {"model": "MiniMax-M3"}]
)
def test_a_model_released_after_this_package_plans(config: dict[str, str]) -> None:
    result = plan(config, {"MINIMAX_API_KEY": MINIMAX_KEY})
    assert (result.provider, result.model) == ("minimax", "MiniMax-M3")
    assert result.target()["ANTHROPIC_MODEL"] == "MiniMax-M3"


def test_an_explicit_provider_outside_its_family_is_still_a_contradiction() -> None:
    with pytest.raises(ProviderError) as caught:
        plan({"model": "kimi-k2.6", "provider": "minimax"}, {"MINIMAX_API_KEY": MINIMAX_KEY})
    message = str(caught.value)
    assert "provider minimax (from /configs/config.yaml" in message
    assert "does not serve model kimi-k2.6 (from /configs/config.yaml" in message
    assert "moonshot" in message  # the arm that does


def test_every_plan_hands_the_provider_to_the_host() -> None:
    for config, env in (({}, {}), ({"model": "MiniMax-M2"}, {"MINIMAX_API_KEY": MINIMAX_KEY})):
        assert plan(config, env).target()[HOST_FLAG] == "1"


def test_a_leftover_provider_switch_or_custom_header_is_removed_with_a_warning() -> None:
    env = {
        "MINIMAX_API_KEY": MINIMAX_KEY,
        "CLAUDE_CODE_USE_BEDROCK": "1",
        "ANTHROPIC_CUSTOM_HEADERS": f"x-api-key: {ANT_KEY}",
    }
    result = plan({"model": "MiniMax-M2"}, env)
    assert result.target()["CLAUDE_CODE_USE_BEDROCK"] is None
    assert result.changes()["ANTHROPIC_CUSTOM_HEADERS"] is Action.UNSET
    assert any("CLAUDE_CODE_USE_BEDROCK was set but is removed" in w for w in result.warnings)
    assert ANT_KEY not in " ".join(result.warnings)
