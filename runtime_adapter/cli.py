"""The ``runtime-adapter`` command line (DESIGN §3).

An operator mistake ends in one clear message on stderr and exit 78
(EX_CONFIG), never a traceback. Secret values are never printed: the
``env`` output shows fingerprints, and its ``shell`` form refers to the
input variable or file instead of copying a secret.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from ._version import __version__
from .errors import ConfigError, EnvGuardError, SettingsError, fingerprint

if TYPE_CHECKING:
    from .envplan import EnvPlan

__all__ = ["EX_CONFIG", "main"]

EX_CONFIG = 78
EX_USAGE = 64
EX_SOFTWARE = 70


def _warn(message: str) -> None:
    sys.stderr.write(f"runtime-adapter: warning: {message}\n")


def _fail(message: str) -> None:
    sys.stderr.write(f"runtime-adapter: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runtime-adapter",
        description="Main process of an AI-agent workspace container.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    env = commands.add_parser(
        "env",
        help="print the reconciled provider environment (values redacted)",
        description="Plan the provider environment from the settings, the config volume and "
        "the secrets directory, and print it. Secret values appear as fingerprints only.",
    )
    env.add_argument("--format", choices=("table", "json", "shell"), default="table")

    commands.add_parser(
        "run",
        help="the container main process: boot, serve, register, heartbeat until SIGTERM",
        description="Boot the workspace and stay up until SIGTERM/SIGINT (DESIGN §9).",
    )

    doctor = commands.add_parser(
        "doctor",
        help="check settings, volume, provider env, advertised URL, platform, LLM key",
        description="Run every check in order; one row each with verdict and remedy.",
    )
    doctor.add_argument("--json", action="store_true", help="print one JSON object")

    dev = commands.add_parser(
        "dev",
        help="local sandbox: platform emulator + fake LLM + run, with live status",
        description="Start the platform emulator and a fake LLM on loopback, copy the example "
        "volume to a temporary directory, run the adapter against them, show its status.",
    )
    dev.add_argument("--duration", type=float, help="stop after this many seconds")
    dev.add_argument(
        "--refuse-key", action="store_true", help="make the fake LLM answer 401 (the bad-key path)"
    )
    dev.add_argument("--volume", type=Path, help="config volume to copy (default: the example)")
    dev.add_argument(
        "--adapter",
        default="auto",
        help="ADAPTER_MODULE for the run (default: the installed adapter for the config's "
        "runtime:, else the echo adapter)",
    )
    dev.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="pass a variable to the runtime (the sandbox passes nothing else from this shell)",
    )
    dev.add_argument("--keep-logs", action="store_true", help="keep the runtime's log on exit")
    dev.add_argument(
        "--poll",
        action="store_true",
        help="poll delivery (DELIVERY_MODE=poll): the sample message is queued at the "
        "platform and the reply arrives there",
    )

    new = commands.add_parser(
        "new",
        help="scaffold a template package (adapter, providers.yaml, config.yaml, tests)",
        description="Write a template package into PATH (a new or empty directory): it passes "
        "its own tests and runs under `runtime-adapter dev --volume PATH` as generated.",
    )
    new.add_argument("path", type=Path, help="the directory; its name is the runtime's name")

    platform = commands.add_parser(
        "platform",
        help="serve the platform emulator alone (for testing an adapter from another shell)",
        description="Serve the Molecule-like platform emulator; one log line per request.",
    )
    platform.add_argument("--host", default="127.0.0.1")
    platform.add_argument("--port", type=int, default=8080)
    platform.add_argument(
        "--deploy-mode", choices=("saas", "self-hosted", "local"), default="local"
    )

    run = commands.add_parser(
        "exec",
        help="reconcile, then replace this process with CMD under the reconciled environment",
        description="Reconcile the provider environment, then exec CMD with it.",
        usage="runtime-adapter exec -- CMD [ARG...]",
    )
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD [ARG...]")
    return parser


def _error_summary(error: ConfigError) -> dict[str, Any]:
    return {
        "provider": None,
        "model": None,
        "set": {},
        "unset": [],
        "warnings": [],
        "error": error.detail(),
    }


def _write_table(plan: EnvPlan, out: TextIO) -> None:
    arm = plan.arm
    out.write(f"provider    {plan.provider or '-'}" + (f"  ({arm.label})" if arm else "") + "\n")
    out.write(f"model       {plan.model or '-'}\n")
    if plan.credential is not None:
        cred = plan.credential
        out.write(f"credential  {cred.source}  {cred.fingerprint}  ({cred.auth_scheme})\n")
    out.write(f"endpoint    {plan.base_url or ('SDK default (Anthropic)' if arm else '-')}\n\n")
    rows = [("VARIABLE", "ACTION", "VALUE", "SOURCE")]
    for item in plan.assignments:
        rows.append((item.name, plan.actions[item.name].value, item.display or "-", item.source))
    widths = [max(len(row[col]) for row in rows) for col in range(3)]
    for row in rows:
        cells = [row[col].ljust(widths[col]) for col in range(3)]
        out.write("  ".join([*cells, row[3]]).rstrip() + "\n")
    for warning in plan.warnings:
        out.write(f"\nwarning: {warning}")
    if plan.warnings:
        out.write("\n")


# strip newlines, surrounding whitespace and one pair of matching quotes (§5 rule 6)
_CLEAN = (
    "tr -d '\\r\\n' | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' "
    "-e \"s/^'\\\\(.*\\\\)'$/\\\\1/\" -e 's/^\"\\(.*\\)\"$/\\1/' "
    "-e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//'"
)


def _write_shell(plan: EnvPlan, out: TextIO) -> None:
    out.write(
        f"# runtime-adapter env: provider {plan.provider or '-'}, model {plan.model or '-'}\n"
    )
    for item in plan.assignments:
        if item.value is None:
            out.write(f"unset {item.name}\n")
        elif not item.secret:
            out.write(f"export {item.name}={shlex.quote(item.value)}\n")
        elif item.reference is not None or item.reference_file is not None:
            if item.reference is not None:
                source = f'printf %s "${{{item.reference}}}"'
            else:
                source = f"cat {shlex.quote(item.reference_file or '')}"
            if item.cleaned or item.reference_file is not None:
                # the same cleaning as the plan's, in the shell: the value is never printed
                source += f" | {_CLEAN}"
            out.write(f'export {item.name}="$({source})"  # {item.display}\n')
        else:
            out.write(
                f"# {item.name}: secret from {item.source} ({fingerprint(item.value)}) needs "
                "cleaning and is not printed; use `runtime-adapter exec -- CMD`\n"
            )
    for warning in plan.warnings:
        out.write(f"# warning: {warning}\n")


def _cmd_env(args: argparse.Namespace) -> int:
    from .reconcile import reconcile
    from .settings import load_settings

    try:
        plan = reconcile(load_settings(), os.environ).plan
    except ConfigError as error:
        if args.format == "json":
            sys.stdout.write(json.dumps(_error_summary(error), indent=2) + "\n")
        _fail(str(error))
        return EX_CONFIG
    if args.format == "json":
        sys.stdout.write(json.dumps(plan.summary(), indent=2) + "\n")
    elif args.format == "shell":
        _write_shell(plan, sys.stdout)
    else:
        _write_table(plan, sys.stdout)
    return 0


def _cmd_exec(args: argparse.Namespace) -> int:
    from .envplan import apply_plan
    from .reconcile import reconcile
    from .settings import load_settings
    from .volume import wait_for_config

    argv = list(args.argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        _fail("exec needs a command: runtime-adapter exec -- CMD [ARG...]")
        return 2
    try:
        settings = load_settings()
        config = anyio.run(wait_for_config, settings.config_path, settings.config_grace_seconds)
        plan = reconcile(settings, os.environ, config).plan
        environ = dict(os.environ)
        apply_plan(plan, environ)
    except ConfigError as error:
        _fail(str(error))
        return EX_CONFIG
    except EnvGuardError as error:
        _fail(str(error))
        return EX_SOFTWARE
    for warning in plan.warnings:
        _warn(warning)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], argv, environ)
    except FileNotFoundError:
        _fail(f"exec: command not found: {argv[0]}")
        return 127
    except PermissionError:
        _fail(f"exec: permission denied: {argv[0]}")
        return 126
    except OSError as exc:  # pragma: no cover - e.g. ENOEXEC on a bad binary
        _fail(f"exec: cannot run {argv[0]}: {exc.strerror}")
        return 126


def _cmd_platform(args: argparse.Namespace) -> int:
    import uvicorn  # only this command serves

    from .testing.platform import PlatformCall, PlatformEmulator

    emulator = PlatformEmulator(deploy_mode=args.deploy_mode)

    def log(call: PlatformCall) -> None:
        workspace = ""
        if isinstance(call.body, dict):
            workspace = str(call.body.get("workspace_id") or call.body.get("id") or "")
        auth = call.authorization or "no-auth"
        sys.stdout.write(f"{call.method} {call.path} {call.status} {workspace or '-'} {auth}\n")
        sys.stdout.flush()

    emulator.on_call = log
    sys.stdout.write(
        f"platform emulator ({args.deploy_mode}) on http://{args.host}:{args.port}; Ctrl-C stops\n"
    )
    sys.stdout.flush()
    uvicorn.run(
        emulator.app,
        host=args.host,
        port=args.port,
        log_level="warning",
        lifespan="off",
        ws="none",
        interface="asgi3",
    )
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    environ = dict(os.environ)  # every plan is made from the environment we started with
    missing = [
        name for name in ("WORKSPACE_ID", "PLATFORM_URL") if not environ.get(name, "").strip()
    ]
    if missing:
        _fail(
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: without "
            "them nothing can be reported to the platform (set them in the container's "
            "environment)"
        )
        return EX_CONFIG
    gc.disable()  # until the first register: ~15 % of the boot's imports is collection
    from . import prefetch

    prefetch.start()  # beside the imports below: the platform client's TLS context
    # httpx's package import tries its command-line client (click, pygments, rich) and
    # drops it when one is missing: ~15 ms for nothing here. None in sys.modules makes
    # that import fail at once, the way httpx already handles.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    from .lifecycle import Runtime
    from .logs import setup_logging
    from .settings import Settings, load_settings

    problems: list[ConfigError] = []
    while True:
        try:
            settings = load_settings()
            break
        except ConfigError as error:
            if error.variable in ("WORKSPACE_ID", "PLATFORM_URL"):
                _fail(f"{error}: nothing can be reported to the platform without it")
                return EX_CONFIG
            # still report: a process that exits on a bad variable is a crash loop.
            # Boot without the bad variable (its default), and report it on every boot.
            problems.append(error)
            if error.variable is None or os.environ.pop(error.variable, None) is None:
                settings = Settings.model_construct(
                    workspace_id=environ["WORKSPACE_ID"].strip(),
                    platform_url=environ["PLATFORM_URL"].strip().rstrip("/"),
                )
                break
    problem = problems[0] if problems else None
    if len(problems) > 1:
        # every bad setting at once: an operator fixing one at a time would need a
        # restart per variable
        problem = SettingsError(
            f"{len(problems)} settings are not valid: " + "; ".join(p.message for p in problems),
            hint="; ".join(p.hint for p in problems if p.hint),
            variable=problems[0].variable,
        )
    setup_logging(settings.log_format, settings.log_level)
    runtime = Runtime(settings, environ, settings_error=problem)
    anyio.run(runtime.run)
    return runtime.exit_code


def _cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import as_json, run_checks

    checks = anyio.run(run_checks, dict(os.environ))
    report = as_json(checks)
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        marks = {"pass": "ok  ", "warn": "warn", "fail": "FAIL", "skip": "skip"}
        for check in checks:
            lines = check.detail.splitlines() or [""]
            sys.stdout.write(f"{marks[check.verdict]}  {check.name:<22} {lines[0]}\n")
            for line in lines[1:]:
                sys.stdout.write(f"{'':28} {line}\n")
            if check.remedy and check.verdict in ("fail", "warn"):
                sys.stdout.write(f"{'':28} -> {check.remedy}\n")
    return 0 if report["ok"] else 1


def _cmd_dev(args: argparse.Namespace) -> int:
    from .dev import run_dev

    extra: dict[str, str] = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            _fail("--env expects NAME=VALUE (one variable per --env)")
            return EX_USAGE
        extra[name] = value
    return run_dev(
        volume=args.volume,
        adapter=args.adapter,
        duration=args.duration,
        refuse_key=args.refuse_key,
        poll=args.poll,
        extra_env=extra,
        keep_logs=args.keep_logs,
    )


def _cmd_new(args: argparse.Namespace) -> int:
    from .scaffold import new_template

    try:
        written = new_template(args.path)
    except ConfigError as error:
        _fail(str(error))
        return EX_CONFIG
    for file in written:
        sys.stdout.write(f"wrote {file}\n")
    package = args.path.name.lower().replace("-", "_")
    # the interpreter and script this command runs from: they have the package, respx
    # and pytest (a bare `python` may be the system's, without them)
    python = shlex.quote(sys.executable)
    here = shlex.quote(str(Path(sys.argv[0]).resolve().parent / "runtime-adapter"))
    command = (
        here if Path(sys.argv[0]).name == "runtime-adapter" else f"{python} -m runtime_adapter"
    )
    sys.stdout.write(
        f"next: {command} dev --volume {args.path} --adapter {package}\n"
        f"      (cd {args.path} && PYTHONPATH=. {python} -m pytest)\n"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``runtime-adapter`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command != "run":
        gc.enable()  # python -m runtime_adapter starts with it off (see __main__)
    handlers = {
        "env": _cmd_env,
        "exec": _cmd_exec,
        "doctor": _cmd_doctor,
        "dev": _cmd_dev,
        "new": _cmd_new,
        "platform": _cmd_platform,
        "run": _cmd_run,
    }
    try:
        return handlers[args.command](args)
    except BrokenPipeError:
        # `runtime-adapter env | head -1`: the reader left; that is not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
