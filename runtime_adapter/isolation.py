"""Who can read what inside the workspace (DESIGN §13): the runtime's own protection
and whether the agent runs as a user of its own.

In the image the runtime runs as ``runtime`` with only the capabilities that
launching the agent needs (``SETUID``, ``SETGID`` to become the agent user,
``SETPCAP`` to empty the agent's bounding set, ``KILL`` to stop a CLI that
is not its uid's), and starts the CLI as ``AGENT_USER`` through a launcher
that clears every capability set and sets no_new_privs. Where those
capabilities are not granted, everything runs as one user; the gateway and
the non-dumpable runtime still hold, and ``check`` says what is missing and
how to grant it. Nothing here changes a user or a capability itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "NEEDED",
    "Isolation",
    "capabilities",
    "check",
    "make_non_dumpable",
    "protect_runtime",
]

_PR_SET_DUMPABLE = 4
# capability numbers (linux/capability.h) the launch needs
NEEDED = {"SETUID": 7, "SETGID": 6, "SETPCAP": 8, "KILL": 5}


def make_non_dumpable() -> bool:
    """``prctl(PR_SET_DUMPABLE, 0)``: no process of another user, and none of ours
    without ``CAP_SYS_PTRACE``, reads this process's memory or ``/proc/<pid>/environ``."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def capabilities(status: str | None = None) -> dict[str, int]:
    """The ``Cap*`` sets of this process (from ``/proc/self/status``) as integers."""
    if status is None:
        try:
            status = Path("/proc/self/status").read_text()
        except OSError:
            return {}
    found: dict[str, int] = {}
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name.startswith("Cap"):
            try:
                found[name] = int(value.strip(), 16)
            except ValueError:
                continue
    return found


@dataclass(frozen=True)
class Isolation:
    """Whether the agent runs as its own user; if not, what is missing and the remedy."""

    separate: bool
    agent_user: str | None
    launcher: str | None  # the CLI path that starts the agent's CLI as that user
    missing: str | None = None
    remedy: str | None = None


def check(environ: Mapping[str, str] | None = None, status: str | None = None) -> Isolation:
    """What this process can do: ``AGENT_USER`` and ``CLAUDE_CLI_PATH`` (set by the
    image) and the capabilities it holds."""
    env = os.environ if environ is None else environ
    user = env.get("AGENT_USER") or None
    launcher = env.get("CLAUDE_CLI_PATH") or None
    if user is None or launcher is None:
        return Isolation(
            False,
            user,
            None,
            "no agent user is configured (AGENT_USER, CLAUDE_CLI_PATH): the agent runs as "
            "the runtime's user",
            "run the image's entrypoint as root, which starts the runtime as 'runtime' and "
            "the agent as 'agent'",
        )
    try:
        agent_uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        return Isolation(False, user, None, f"AGENT_USER {user} does not exist", "create it")
    if agent_uid == os.getuid():
        return Isolation(
            False,
            user,
            None,
            f"the runtime runs as the agent user {user}: one user holds both",
            "start the container as root (its entrypoint drops to 'runtime' and 'agent')",
        )
    effective = capabilities(status).get("CapEff", 0)
    lacking = [name for name, bit in NEEDED.items() if not effective & (1 << bit)]
    if lacking:
        grant = ", ".join(lacking)
        return Isolation(
            False,
            user,
            None,
            f"the runtime lacks the capabilities {grant} to start the agent as {user}",
            f"grant them to the container (Kubernetes: securityContext.capabilities.add: "
            f"[{grant}]; podman/docker: --cap-add), or run everything as one user",
        )
    if not os.access(launcher, os.X_OK):
        return Isolation(False, user, None, f"{launcher} is not executable", "rebuild the image")
    return Isolation(True, user, launcher)


_log = logging.getLogger("runtime_adapter.lifecycle")


def protect_runtime() -> None:
    """DESIGN §13: this process holds the credentials, so no agent process may read
    its memory or environ; and say once what isolation from the agent there is."""
    if not make_non_dumpable():
        _log.warning("could not make the runtime non-dumpable (prctl failed)")
    found = check()
    if found.separate:
        _log.info("the agent runs as %s, the runtime as uid %s", found.agent_user, os.getuid())
    elif os.environ.get("AGENT_USER"):
        # the image asked for two users and did not get them
        _log.warning("agent isolation: %s; %s", found.missing, found.remedy)
