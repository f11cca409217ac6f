"""Settings keep the platform's variable names; a bad value names the variable and the form."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime_adapter import SettingsError, load_settings, read_secrets_dir


def test_defaults() -> None:
    settings = load_settings()
    assert settings.config_path == Path("/configs")
    assert settings.heartbeat_interval_seconds == 30.0
    assert settings.config_grace_seconds == 15.0
    assert (settings.workspace_id, settings.platform_url, settings.port) == (None, None, None)
    assert settings.saas is False


def test_platform_names_and_configs_dir_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSPACE_ID", "ws-1")
    monkeypatch.setenv("PLATFORM_URL", "https://platform.example/")
    monkeypatch.setenv("CONFIGS_DIR", "/srv/configs")
    monkeypatch.setenv("PORT", "8123")
    monkeypatch.setenv("MOLECULE_DEPLOY_MODE", "SaaS")
    settings = load_settings()
    assert settings.workspace_id == "ws-1"
    assert settings.platform_url == "https://platform.example"
    assert settings.config_path == Path("/srv/configs")
    assert settings.port == 8123
    assert settings.saas is True


def test_workspace_config_path_wins_over_configs_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSPACE_CONFIG_PATH", "/a")
    monkeypatch.setenv("CONFIGS_DIR", "/b")
    assert load_settings().config_path == Path("/a")


def test_org_id_implies_saas_unless_mode_is_explicit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOLECULE_ORG_ID", "org-7")
    assert load_settings().saas is True
    monkeypatch.setenv("MOLECULE_DEPLOY_MODE", "self-hosted")
    assert load_settings().saas is False


def test_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "")
    assert load_settings().port is None


@pytest.mark.parametrize(
    ("variable", "value", "message", "hint"),
    [
        (
            "PORT",
            "eighty",
            "PORT is not valid: Input should be a valid integer, unable to parse string as an "
            "integer",
            "set PORT to an integer from 1 to 65535, or unset it for the default",
        ),
        (
            "PORT",
            "70000",
            "PORT is not valid: Input should be less than or equal to 65535",
            "set PORT to an integer from 1 to 65535, or unset it for the default",
        ),
        (
            "PLATFORM_URL",
            "platform:8080",
            "PLATFORM_URL is not valid: PLATFORM_URL must be an http:// or https:// URL with a "
            "host",
            # run exits 78 without it: unsetting is no remedy
            "set PLATFORM_URL to an http:// or https:// URL, the platform's base URL",
        ),
        (
            "MOLECULE_DEPLOY_MODE",
            "cloud",
            "MOLECULE_DEPLOY_MODE is not valid: Input should be 'saas' or 'self-hosted'",
            "set MOLECULE_DEPLOY_MODE to 'saas' or 'self-hosted', or unset it for the default",
        ),
        (
            "HEARTBEAT_INTERVAL_SECONDS",
            "0",
            "HEARTBEAT_INTERVAL_SECONDS is not valid: Input should be greater than or equal to 1",
            "set HEARTBEAT_INTERVAL_SECONDS to a number of seconds from 1 to 3600, "
            "or unset it for the default",
        ),
        (
            "ADAPTER_MODULE",
            "my adapter.py",
            "ADAPTER_MODULE is not valid: ADAPTER_MODULE must look like 'pkg.module' or "
            "'pkg.module:Class'",
            "set ADAPTER_MODULE to 'pkg.module' or 'pkg.module:Class', or unset it for the default",
        ),
    ],
)
def test_bad_value_names_variable_and_accepted_form(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str, hint: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert (caught.value.variable, caught.value.message, caught.value.hint) == (
        variable,
        message,
        hint,
    )


def test_bad_url_value_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_PROXY_URL", "ftp://user:hunter2@proxy")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "hunter2" not in str(caught.value)


def test_secrets_dir_reads_one_file_per_variable(tmp_path: Path) -> None:
    (tmp_path / "MINIMAX_API_KEY").write_text("mm-key\n")
    (tmp_path / "..data").mkdir()
    (tmp_path / ".hidden").write_text("x")
    (tmp_path / "not-a-variable").write_text("x")
    secrets = read_secrets_dir(tmp_path)
    assert list(secrets.values) == ["MINIMAX_API_KEY"]
    assert secrets.values["MINIMAX_API_KEY"].get_secret_value() == "mm-key\n"
    assert secrets.source("MINIMAX_API_KEY") == f"secrets file {tmp_path}/MINIMAX_API_KEY"


def test_secrets_dir_follows_kubernetes_symlinks(tmp_path: Path) -> None:
    data = tmp_path / "..2026_11_21"
    data.mkdir()
    (data / "ZAI_API_KEY").write_text("z")
    (tmp_path / "..data").symlink_to(data.name)
    (tmp_path / "ZAI_API_KEY").symlink_to("..data/ZAI_API_KEY")
    assert read_secrets_dir(tmp_path).values["ZAI_API_KEY"].get_secret_value() == "z"


def test_missing_secrets_dir_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        read_secrets_dir(tmp_path / "absent")
    assert caught.value.variable == "RUNTIME_SECRETS_DIR"


def test_unreadable_secret_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "MINIMAX_API_KEY"
    secret.write_text("x")

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)  # CI may run as root, which reads anything
    with pytest.raises(SettingsError) as caught:
        read_secrets_dir(tmp_path)
    assert str(caught.value) == (
        f"secrets file {secret} cannot be read: Permission denied "
        "(make it readable by the adapter's user)"
    )


def test_binary_or_huge_secret_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "A_KEY").write_bytes(b"\xff\xfe")
    with pytest.raises(SettingsError, match="not UTF-8"):
        read_secrets_dir(tmp_path)
    (tmp_path / "A_KEY").write_bytes(b"x" * 100_000)
    with pytest.raises(SettingsError, match="more than a secret can be"):
        read_secrets_dir(tmp_path)
