"""config.yaml and .auth_token: typed, lenient to unknown fields, precise about errors.

Every error names the file and, where there is one, the line and column.
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from runtime_adapter import VolumeError, load_config, read_token, wait_for_config
from runtime_adapter.volume import SkillConfig

from .conftest import WriteVolume


def test_full_config_is_typed_and_unknown_fields_are_kept(volume: WriteVolume) -> None:
    root = volume(
        "name: Agent\nversion: 1.0\nruntime: claude-code\nmodel: MiniMax-M2\n"
        "a2a:\n  port: 8001\n  streaming: true\n  extra_knob: 3\n"
        "skills:\n  - review\n  - {id: fix, description: Fixes bugs, tags: [code]}\n"
        "env:\n  required: [GH_TOKEN]\n"
        "runtime_config:\n  required_env: [X]\n  max_turns: 5\n"
        "team: platform\n"
    )
    config = load_config(root)
    assert (config.name, config.version, config.runtime, config.model) == (
        "Agent",
        "1.0",
        "claude-code",
        "MiniMax-M2",
    )
    assert (config.a2a.port, config.a2a.streaming, config.a2a.push_notifications) == (
        8001,
        True,
        False,
    )
    assert config.skills == [
        SkillConfig(id="review", name="review"),
        SkillConfig(id="fix", name="fix", description="Fixes bugs", tags=["code"]),
    ]
    assert config.env.required == ["GH_TOKEN"]
    assert config.runtime_config.required_env == ["X"]
    assert config.model_extra == {"team": "platform"}
    assert config.a2a.model_extra == {"extra_knob": 3}
    assert config.runtime_config.model_extra == {"max_turns": 5}
    assert config.source("a2a", "port") == f"{root}/config.yaml:6 (a2a.port)"


def test_null_means_default(volume: WriteVolume) -> None:
    config = load_config(volume("model: null\na2a: null\nskills: null\nversion:\n"))
    assert (config.model, config.a2a.port, config.skills, config.version) == (
        None,
        None,
        [],
        "1.0.0",
    )


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        ("a2a:\n  port: lots\n", "field a2a.port: Input should be a valid integer", 2, 9),
        ("- model\n", "must be a mapping of fields", 1, 1),
        ("", "found an empty file", 1, 1),
        # the file ends inside the list: its last line, not the line after it
        ("model: [unclosed\n", "the file ends before it is closed", 1, 17),
        ("name: x\nmodel: [\n", "the file ends before it is closed", 2, 9),
        ("model: a\nmodel: b\n", "has the key 'model' twice", 2, 1),
        ("skills:\n  - id: x\n  - [1, 2]\n", "field skills.1", 3, 5),
        (
            "a: 1\n---\nb: 2\n",
            "is not valid YAML: expected a single document, found another document",
            2,
            1,
        ),
    ],
)
def test_errors_name_file_line_and_column(
    volume: WriteVolume, text: str, message: str, line: int, column: int
) -> None:
    root = volume(text)
    with pytest.raises(VolumeError) as caught:
        load_config(root)
    error = caught.value
    assert message in error.message
    assert (error.file, error.line, error.column) == (str(root / "config.yaml"), line, column)
    assert str(error).startswith(f"{root}/config.yaml")


def test_wrong_type_error_gives_the_accepted_form(volume: WriteVolume) -> None:
    with pytest.raises(VolumeError) as caught:
        load_config(volume("a2a:\n  port: 99999\n"))
    assert caught.value.hint == "a2a.port takes an integer from 1 to 65535"
    assert caught.value.field == "a2a.port"


def test_binary_and_oversized_files_are_refused(volume: WriteVolume) -> None:
    root = volume(None)
    (root / "config.yaml").write_bytes(b"model: x\n\x00\x01\x02")
    with pytest.raises(VolumeError, match="NUL byte"):
        load_config(root)
    (root / "config.yaml").write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(VolumeError, match=r"not UTF-8 text \(byte 6\)"):
        load_config(root)
    (root / "config.yaml").write_bytes(b"#" * (1024 * 1024 + 1))
    with pytest.raises(VolumeError, match="the limit is 1048576"):
        load_config(root)


def test_alias_bomb_is_refused_before_it_expands(volume: WriteVolume) -> None:
    """Shared nodes load cheaply, but every card and heartbeat would serialise them
    expanded (a 12.8 KiB file became a 28 MB card): refused with file and line."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 30)]
    with pytest.raises(VolumeError) as caught:
        load_config(volume("\n".join(lines) + "\nmodel: m\n"))
    assert "expands to more than 50000 values" in caught.value.message
    assert caught.value.line is not None


@pytest.mark.parametrize(
    ("text", "at"),
    [
        ("model: m\nx: " + "[" * 100_000 + "]" * 100_000 + "\n", (2, 69)),
        (
            "model: m\n" + "".join("  " * i + f"k{i}:\n" for i in range(70)) + "  " * 70 + "v\n",
            (65, 127),
        ),
    ],
    ids=["flow", "block"],
)
def test_deep_nesting_is_refused_where_it_passes_the_limit(
    volume: WriteVolume, text: str, at: tuple[int, int]
) -> None:
    """Refused at the 65th level as it is read (not by running the parser into a
    RecursionError, which took seconds of CPU for 3,000 brackets): line and column."""
    with pytest.raises(VolumeError) as caught:
        load_config(volume(text))
    assert "nested too deeply" in caught.value.message
    assert (caught.value.line, caught.value.column) == at


def test_a_few_aliases_are_fine(volume: WriteVolume) -> None:
    config = load_config(volume("base: &b [x, y]\nmore: [*b, *b]\nmodel: m\n"))
    assert config.model == "m"


def test_missing_config_names_the_file(volume: WriteVolume) -> None:
    root = volume(None)
    with pytest.raises(VolumeError) as caught:
        load_config(root)
    assert caught.value.message == f"{root}/config.yaml does not exist"


@pytest.mark.anyio
async def test_wait_for_config_accepts_a_file_that_arrives_late(volume: WriteVolume) -> None:
    root = volume(None)

    async def provisioner() -> None:
        await anyio.sleep(0.3)
        (root / "config.yaml").write_text("model: [half written\n")
        await anyio.sleep(0.3)
        (root / "config.yaml").write_text("model: MiniMax-M2\n")

    async with anyio.create_task_group() as tg:
        tg.start_soon(provisioner)
        config = await wait_for_config(root, grace=5, poll=0.05)
    assert config.model == "MiniMax-M2"


@pytest.mark.anyio
async def test_wait_for_config_gives_up_after_the_grace_period(volume: WriteVolume) -> None:
    root = volume(None)
    with anyio.fail_after(3):
        with pytest.raises(VolumeError, match="does not exist"):
            await wait_for_config(root, grace=0.2, poll=0.05)


def test_token_is_stripped_and_absent_is_none(tmp_path: Path) -> None:
    assert read_token(tmp_path) is None
    (tmp_path / ".auth_token").write_text("tok-123\n")
    assert read_token(tmp_path) == "tok-123"
    (tmp_path / ".auth_token").write_text("\n")
    assert read_token(tmp_path) is None


def test_token_file_with_two_tokens_is_refused_without_showing_them(tmp_path: Path) -> None:
    (tmp_path / ".auth_token").write_text("tok-aaa tok-bbb\n")
    with pytest.raises(VolumeError) as caught:
        read_token(tmp_path)
    assert "tok-" not in str(caught.value)


@pytest.mark.anyio
async def test_a_malformed_config_is_reported_at_once_not_after_the_grace(
    volume: WriteVolume,
) -> None:
    root = volume("model: [\n")
    started = time.monotonic()
    with pytest.raises(VolumeError) as caught:
        await wait_for_config(root, grace=15)
    assert time.monotonic() - started < 2  # a finished file is not mid-copy
    assert caught.value.line is not None


def test_a_misspelled_field_is_kept_with_a_warning_naming_the_likely_one(
    volume: WriteVolume, caplog: pytest.LogCaptureFixture
) -> None:
    root = volume("name: x\nmodle: MiniMax-M2\ncustom_thing: 1\n")
    config = load_config(root)
    assert config.model_extra == {"modle": "MiniMax-M2", "custom_thing": 1}
    warned = [r.getMessage() for r in caplog.records if "did you mean" in r.getMessage()]
    assert warned == [
        f"{root}/config.yaml:2: unknown field 'modle' kept for the adapter; did you mean 'model'?"
    ]
    load_config(root)  # read again: said once
    assert len([r for r in caplog.records if "did you mean" in r.getMessage()]) == 1
