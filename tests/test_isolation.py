"""What the runtime can do to keep the agent away from its credentials (DESIGN §13):
isolation holds only with an agent user of its own and every capability the launch
needs; anything less is reported with what to grant."""

from __future__ import annotations

import os
import pwd

from runtime_adapter import isolation

ALL = "CapInh:\t0000000000000000\nCapPrm:\t00000000000001e0\nCapEff:\t00000000000001e0\n"
NONE = "CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"


def other_user() -> str:
    me = os.getuid()
    return next(p.pw_name for p in pwd.getpwall() if p.pw_uid != me)


def test_the_capability_sets_are_read_as_numbers() -> None:
    assert isolation.capabilities(ALL) == {"CapInh": 0, "CapPrm": 0x1E0, "CapEff": 0x1E0}


def test_an_agent_user_and_the_four_capabilities_isolate() -> None:
    launcher = "/bin/sh"  # any executable
    found = isolation.check({"AGENT_USER": other_user(), "CLAUDE_CLI_PATH": launcher}, ALL)
    assert (found.separate, found.launcher, found.missing) == (True, launcher, None)


def test_missing_capabilities_are_named_with_the_remedy() -> None:
    env = {"AGENT_USER": other_user(), "CLAUDE_CLI_PATH": "/bin/sh"}
    found = isolation.check(env, NONE)
    assert not found.separate
    assert found.missing is not None
    assert "SETUID, SETGID, SETPCAP, KILL" in found.missing
    assert found.remedy is not None
    assert "--cap-add" in found.remedy


def test_no_agent_user_or_the_same_user_is_one_user() -> None:
    assert not isolation.check({}, ALL).separate
    me = pwd.getpwuid(os.getuid()).pw_name
    same = isolation.check({"AGENT_USER": me, "CLAUDE_CLI_PATH": "/bin/sh"}, ALL)
    assert not same.separate
    assert same.missing is not None
    assert "one user holds both" in same.missing


def test_the_runtime_can_make_itself_non_dumpable_in_a_child() -> None:
    import subprocess
    import sys

    code = (
        "import ctypes; from runtime_adapter import isolation; libc = ctypes.CDLL(None);"
        "before = libc.prctl(3, 0, 0, 0, 0); assert isolation.make_non_dumpable();"
        "print(before, libc.prctl(3, 0, 0, 0, 0))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "0"]  # PR_GET_DUMPABLE before and after
