"""Provider arms: built-in facts, merging by name and field, refusal of hostile arms.

An arm that sends an Anthropic credential can only point at Anthropic.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime_adapter import ProviderError, builtin_arms, load_arms

from .helpers import plan


def test_builtin_arms_and_their_facts() -> None:
    arms = builtin_arms()
    assert list(arms) == [
        "anthropic",
        "anthropic-oauth",
        "minimax",
        "moonshot",
        "zai",
        "deepseek",
        "platform",
    ]
    facts = {
        name: (arm.key_env, arm.auth, arm.base_url, arm.base_url_env) for name, arm in arms.items()
    }
    assert facts == {
        "anthropic": (("ANTHROPIC_API_KEY",), "x-api-key", None, "ANTHROPIC_BASE_URL"),
        "anthropic-oauth": (("CLAUDE_CODE_OAUTH_TOKEN",), "oauth", None, "ANTHROPIC_BASE_URL"),
        "minimax": (
            ("MINIMAX_API_KEY",),
            "bearer",
            "https://api.minimax.io/anthropic",
            "MINIMAX_BASE_URL",
        ),
        "moonshot": (
            ("MOONSHOT_API_KEY", "KIMI_API_KEY"),
            "bearer",
            "https://api.moonshot.ai/anthropic",
            "MOONSHOT_BASE_URL",
        ),
        "zai": (
            ("ZAI_API_KEY", "GLM_API_KEY"),
            "bearer",
            "https://api.z.ai/api/anthropic",
            "ZAI_BASE_URL",
        ),
        "deepseek": (
            ("DEEPSEEK_API_KEY",),
            "bearer",
            "https://api.deepseek.com/anthropic",
            "DEEPSEEK_BASE_URL",
        ),
        "platform": ((), "bearer", None, "LLM_PROXY_URL"),
    }
    assert arms["minimax"].listed_models() == [
        "MiniMax-M3",
        "MiniMax-M2.7",
        "MiniMax-M2.7-highspeed",
        "MiniMax-M2.5",
        "MiniMax-M2",
    ]
    # families, not closed lists (rule 9): a model released later is served
    assert arms["minimax"].serves("MiniMax-M4")
    assert arms["moonshot"].serves("kimi-k3")
    assert arms["zai"].serves("glm-6")
    assert arms["deepseek"].serves("deepseek-v5")
    assert not arms["minimax"].serves("kimi-k2.6")
    assert all(arms["anthropic-oauth"].serves(alias) for alias in ("sonnet", "opus", "haiku"))
    assert arms["platform"].serves("moonshot/kimi-k2.6")
    assert not arms["platform"].serves("MiniMax-M2")
    assert [n for n, arm in arms.items() if arm.anthropic] == ["anthropic", "anthropic-oauth"]


def test_template_then_volume_override_field_by_field(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text("minimax:\n  models: [MiniMax-M3]\n  default_model: MiniMax-M3\n")
    operator = tmp_path / "volume.yaml"
    operator.write_text(
        "minimax:\n  base_url: https://api.minimaxi.com/anthropic\n"
        "acme:\n  key_env: ACME_KEY\n  base_url: https://llm.acme.example/anthropic\n"
        "  models: [acme-1]\n"
    )
    arms = load_arms([template, tmp_path / "absent.yaml", operator])
    assert arms["minimax"].models == ("MiniMax-M3",)
    assert arms["minimax"].base_url == "https://api.minimaxi.com/anthropic"
    assert arms["minimax"].key_env == ("MINIMAX_API_KEY",)
    assert arms["minimax"].origin == str(operator)
    assert list(arms)[-1] == "acme"
    assert arms["minimax"].default_model == "MiniMax-M3"
    assert arms["minimax"].small_model is None  # the built-in one is not in the new families
    result = plan({"model": "acme-1"}, {"ACME_KEY": "k"}, arms=arms)
    assert result.target()["ANTHROPIC_BASE_URL"] == "https://llm.acme.example/anthropic"
    assert result.target()["ANTHROPIC_AUTH_TOKEN"] == "k"


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("minimax:\n  base_ur1: https://x.example\n", "Extra inputs are not permitted", 2),
        ("evil:\n  key_env: K\n  base_url: javascript:alert(1)\n", "must be an http://", 3),
        (
            "evil:\n  key_env: K\n  base_url: http://169.254.169.254/latest\n",
            "link-local or cloud metadata address",
            3,
        ),
        (
            "evil:\n  key_env: K\n  base_url: http://metadata.google.internal/\n",
            "cloud metadata service",
            3,
        ),
        (
            "evil:\n  key_env: K\n  auth: x-api-key\n  base_url: https://llm.evil.example\n",
            "sends an Anthropic credential",
            1,
        ),
        ("minimax:\n  env: {LD_PRELOAD: /tmp/x.so}\n", "LD_PRELOAD may not be set", 2),
        ("minimax:\n  env: {ANTHROPIC_AUTH_TOKEN: x}\n", "may not be set", 2),
        ("minimax:\n  env: {MY_API_KEY: x}\n", "looks like a secret", 2),
        ("Bad Name:\n  key_env: K\n", "arm name 'Bad Name' is not valid", 1),
        ("evil:\n  base_url: https://e.example\n", "key_env must name at least one", 1),
        ("- minimax\n", "must be a mapping of arm names", 1),
        ("minimax: 3\n", "arm minimax must be a mapping of fields", 1),
        ("evil:\n  key_env: [K]\n  models: [a]\n", "needs base_url or base_url_env", 1),
    ],
)
def test_hostile_or_broken_arms_are_refused_with_position(
    tmp_path: Path, text: str, message: str, line: int
) -> None:
    file = tmp_path / "providers.yaml"
    file.write_text(text)
    with pytest.raises(ProviderError) as caught:
        load_arms([file])
    assert message in caught.value.message
    assert (caught.value.file, caught.value.line) == (str(file), line)


def test_base_url_override_on_a_metadata_address_is_refused() -> None:
    with pytest.raises(ProviderError) as caught:
        plan(
            {"model": "MiniMax-M2"},
            {"MINIMAX_API_KEY": "k", "MINIMAX_BASE_URL": "http://169.254.169.254/"},
        )
    assert caught.value.variable == "MINIMAX_BASE_URL"


def test_add_models_extends_an_arm_without_restating_its_families(tmp_path: Path) -> None:
    volume = tmp_path / "providers.yaml"
    volume.write_text("minimax:\n  add_models: [abab-7]\n")
    arms = load_arms([volume])
    assert arms["minimax"].models == ("MiniMax-*", "abab-7")
    assert arms["minimax"].default_model == "MiniMax-M2.7"
    assert plan({"model": "abab-7"}, {"MINIMAX_API_KEY": "k"}, arms=arms).provider == "minimax"
