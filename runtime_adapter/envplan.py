"""Provider environment reconciliation (DESIGN §5): a pure plan, then apply and guard.

``plan_env`` is a pure function of (arms, environment, secrets, config,
workspace token): it decides the value of every managed variable, or that
it must be absent, and says where each value came from. Nothing here reads
files or the process environment itself. ``apply_plan`` writes the plan into
an environment mapping and ``check_applied`` proves it holds.

Invariants the tests hold it to: applying a plan and planning again yields
the same plan with nothing left to change; a non-Anthropic arm never exports
an Anthropic credential; a secret value never appears in a message or repr.
"""

from __future__ import annotations

import difflib
import enum
import re
import unicodedata
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import EnvGuardError, ProviderError, fingerprint
from .providers import Arm, check_base_url
from .settings import SecretsDir
from .volume import WorkspaceConfig

__all__ = [
    "HOST_FLAG",
    "MANAGED_VARIABLES",
    "MODEL_SLOTS",
    "Action",
    "Assignment",
    "EnvPlan",
    "apply_plan",
    "check_applied",
    "clean_key",
    "managed_variables",
    "plan_env",
]

HOST_FLAG = "CLAUDE_CODE_PROVIDER_MANAGED_BY_HOST"
# Every model-routing variable the bundled Claude Code CLI reads (2.1.330). A
# test scans the CLI binary and fails when it reads a slot missing here.
MODEL_SLOTS = (
    "ANTHROPIC_MODEL",
    "ANTHROPIC_DEFAULT_MODEL",
    "ANTHROPIC_DEFAULT_OPUS_MODEL",
    "ANTHROPIC_DEFAULT_SONNET_MODEL",
    "ANTHROPIC_DEFAULT_HAIKU_MODEL",
    "ANTHROPIC_DEFAULT_FABLE_MODEL",
    "ANTHROPIC_SMALL_FAST_MODEL",
    "CLAUDE_CODE_SUBAGENT_MODEL",
    "CLAUDE_CODE_WORKFLOW_SUBAGENT_MODEL",
    "CLAUDE_CODE_AUTO_MODE_MODEL",
    "CLAUDE_CODE_BG_CLASSIFIER_MODEL",
)
# the haiku and background slots: an arm's small model when it declares one
SMALL_MODEL_SLOTS = (
    "ANTHROPIC_DEFAULT_HAIKU_MODEL",
    "ANTHROPIC_SMALL_FAST_MODEL",
    "CLAUDE_CODE_BG_CLASSIFIER_MODEL",
)
# the labels the CLI shows for a pinned slot: never left over from another projection
MODEL_LABELS = tuple(
    f"ANTHROPIC_DEFAULT_{slot}_MODEL_{label}"
    for slot in ("OPUS", "SONNET", "HAIKU", "FABLE")
    for label in ("NAME", "DESCRIPTION", "SUPPORTED_CAPABILITIES")
)
# what else the CLI treats as a credential or a provider switch (read from its list of
# credential variables and its CLAUDE_CODE_USE_* switches): no plan produces them, so
# a leftover one is removed (a stray CLAUDE_CODE_USE_BEDROCK=1 would send every turn
# to another provider; ANTHROPIC_CUSTOM_HEADERS can carry a credential)
PROVIDER_SWITCHES = (
    "ANTHROPIC_CUSTOM_HEADERS",
    "ANTHROPIC_PROFILE",
    "ANTHROPIC_FEDERATION_RULE_ID",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_USE_FOUNDRY",
    "CLAUDE_CODE_USE_GATEWAY",
    "CLAUDE_CODE_USE_MANTLE",
    "CLAUDE_CODE_USE_ANTHROPIC_AWS",
    "CLAUDE_CODE_USE_ANTHROPIC_GOOGLE_CLOUD",
)
MANAGED_VARIABLES = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "CLAUDE_CODE_OAUTH_TOKEN",
    HOST_FLAG,
    *MODEL_SLOTS,
    *MODEL_LABELS,
    *PROVIDER_SWITCHES,
)
_CREDENTIAL_VARIABLE = {
    "bearer": "ANTHROPIC_AUTH_TOKEN",
    "x-api-key": "ANTHROPIC_API_KEY",
    "oauth": "CLAUDE_CODE_OAUTH_TOKEN",
}
_ANTHROPIC_CREDENTIALS = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN")
_QUOTES = ("'", '"')
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class Action(enum.StrEnum):
    """What applying the plan does to a variable, relative to the planned-from environment."""

    SET = "set"
    UNSET = "unset"
    KEEP = "keep"


@dataclass(frozen=True)
class Assignment:
    """The plan's decision for one variable: a value (None: absent) and where it came from.

    ``reference`` names the input variable a secret value was read from (for
    the ``shell`` format); ``secret`` values are shown as fingerprints only.
    """

    name: str
    value: str | None = field(repr=False)
    source: str
    secret: bool = False
    reference: str | None = field(default=None, compare=False)
    reference_file: str | None = field(default=None, compare=False)
    # True when the input needed cleaning (whitespace, newline, quotes): the shell
    # format then cleans it in the shell too
    cleaned: bool = field(default=False, compare=False)

    @property
    def display(self) -> str | None:
        """The value as it may be shown: a fingerprint for a secret, else the value."""
        if self.value is None:
            return None
        return fingerprint(self.value) if self.secret else self.value

    def __repr__(self) -> str:
        return f"Assignment({self.name}={self.display!r}, source={self.source!r})"


@dataclass(frozen=True)
class Credential:
    """Which credential the plan projects, for messages and sample errors (never the value)."""

    variable: str | None
    source: str
    fingerprint: str
    auth_scheme: str


@dataclass(frozen=True)
class EnvPlan:
    """The reconciled provider environment."""

    provider: str | None
    model: str | None
    arm: Arm | None
    assignments: tuple[Assignment, ...]
    actions: Mapping[str, Action]
    warnings: tuple[str, ...] = ()
    credential: Credential | None = None
    base_url: str | None = None

    @property
    def probe_model(self) -> str | None:
        """The model a credential probe asks for: an Anthropic arm's configured ``claude-*``
        id, else the arm's small model, else the plan's (None when none is an API model id,
        e.g. a CLI alias such as ``sonnet`` with no small model)."""
        if self.arm is None:
            return None
        if self.arm.anthropic and (self.model or "").startswith("claude-"):
            return self.model  # the configured id itself: never one this package may retire
        return self.arm.small_model or (None if self.arm.anthropic else self.model)

    def target(self) -> dict[str, str | None]:
        """Each variable's planned value (None: must be absent)."""
        return {item.name: item.value for item in self.assignments}

    def values(self) -> dict[str, str]:
        """The variables the plan sets, with their values."""
        return {item.name: item.value for item in self.assignments if item.value is not None}

    def unset(self) -> list[str]:
        """The variables that must be absent."""
        return [item.name for item in self.assignments if item.value is None]

    def changes(self) -> dict[str, Action]:
        """Only the variables applying the plan would change."""
        return {name: act for name, act in self.actions.items() if act is not Action.KEEP}

    def summary(self) -> dict[str, Any]:
        """The redacted, JSON-ready form used by ``env --format json`` (DESIGN §3)."""
        return {
            "provider": self.provider,
            "model": self.model,
            "set": {item.name: item.display for item in self.assignments if item.value is not None},
            "unset": [name for name, act in self.actions.items() if act is Action.UNSET],
            "warnings": list(self.warnings),
            "error": None,
            "variables": [
                {
                    "name": item.name,
                    "action": self.actions[item.name].value,
                    "value": item.display,
                    "source": item.source,
                }
                for item in self.assignments
            ],
        }


def managed_variables(arms: Mapping[str, Arm]) -> tuple[str, ...]:
    """The variables every plan decides: the Anthropic set plus every arm's static env."""
    extra = sorted({name for arm in arms.values() for name in arm.env} - set(MANAGED_VARIABLES))
    return (*MANAGED_VARIABLES, *extra)


def clean_key(raw: str, variable: str) -> str:
    """Key hygiene (§5 rule 6): strip whitespace, a trailing newline and matching quotes.

    An interior space, control character or non-ASCII character is an error
    that names the variable and the 1-based position, never the value.
    """
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in _QUOTES:
        value = value[1:-1].strip()
    for index, char in enumerate(value, start=1):
        if char == " ":
            what = "a space"
        elif unicodedata.category(char) == "Cc":
            what = f"a control character (U+{ord(char):04X})"
        elif not char.isascii():
            what = f"a non-ASCII character (U+{ord(char):04X})"
        else:
            continue
        raise ProviderError(
            f"{variable} has {what} at position {index} of {len(value)}",
            hint=f"re-create {variable} without it (keys are one line of printable ASCII)",
            variable=variable,
        )
    return value


class _Inputs:
    """Lookup over the secrets directory (first: files are what rotate) and the environment."""

    def __init__(self, environ: Mapping[str, str], secrets: SecretsDir) -> None:
        self.environ = environ
        self.secrets = secrets
        self.warnings: list[str] = []

    def raw(self, name: str) -> tuple[str, str, str | None] | None:
        """(value, source, file) of ``name``, or None when unset or empty."""
        secret = self.secrets.values.get(name)
        if secret is not None and secret.get_secret_value().strip():
            env_value = self.environ.get(name)
            if env_value and env_value.strip() != secret.get_secret_value().strip():
                self.warnings.append(
                    f"{name} is set in the environment and in {self.secrets.source(name)}; "
                    "using the file"
                )
            file = str(self.secrets.path / name) if self.secrets.path else None
            return secret.get_secret_value(), self.secrets.source(name), file
        value = self.environ.get(name)
        if value is None or not value.strip():
            return None
        return value, f"{name} (environment)", None

    def key(self, name: str) -> tuple[str, str, str | None] | None:
        found = self.raw(name)
        if found is None:
            return None
        value = clean_key(found[0], name)
        return (value, found[1], found[2]) if value else None

    def plain(self, name: str) -> tuple[str, str] | None:
        found = self.raw(name)
        return (found[0].strip(), found[1]) if found else None


def _credential_available(arm: Arm, inputs: _Inputs, token: str | None) -> bool:
    if arm.key_from == "workspace-token":
        return bool(token) and (
            arm.base_url_env is None or inputs.plain(arm.base_url_env) is not None
        )
    return any(inputs.raw(name) is not None for name in arm.key_env)


def _platform_slug(arms: Mapping[str, Arm], byok: Arm, model: str) -> str | None:
    """The platform-billed slug closest to a BYOK model, for suggestions."""
    platform = next((arm for arm in arms.values() if arm.key_from == "workspace-token"), None)
    if platform is None:
        return None
    exact = f"{byok.name}/{model}"
    vendor = [slug for slug in platform.listed_models() if slug.startswith(f"{byok.name}/")]
    if exact in vendor:
        return exact
    if vendor:
        return vendor[0]
    return exact if platform.serves(exact) else None


def _resolve(
    arms: Mapping[str, Arm],
    config: WorkspaceConfig,
    inputs: _Inputs,
    token: str | None,
) -> tuple[Arm | None, str | None, str, str | None]:
    """(arm, model, why this arm, where the model came from)."""
    model, model_source = _model(config)
    provider_given = inputs.plain("MODEL_PROVIDER")
    if provider_given is not None:
        provider, provider_source = provider_given[0], "MODEL_PROVIDER (environment)"
    elif config.provider:
        provider, provider_source = config.provider.strip(), config.source("provider")
    else:
        provider, provider_source = None, ""

    if provider is not None:
        arm = arms.get(provider)
        if arm is None:
            close = difflib.get_close_matches(provider, list(arms), n=1)
            raise ProviderError(
                f"provider {provider!r} (from {provider_source}) is not a known provider arm",
                hint=(f"did you mean {close[0]!r}? " if close else "")
                + "known arms: "
                + ", ".join(arms)
                + "; add new ones in providers.yaml",
                variable="MODEL_PROVIDER" if provider_given else None,
                file=None if provider_given else config.file,
                line=None if provider_given else config.position("provider")[0],
                field=None if provider_given else "provider",
            )
        if model is None:
            return arm, arm.model_default(), f"provider {provider} from {provider_source}", None
        if not arm.serves(model):
            raise _not_served(arms, arm, provider_source, model, model_source, config)
        return arm, model, f"provider {provider} from {provider_source}", model_source

    if model is not None:
        serving = [arm for arm in arms.values() if arm.serves(model)]
        if not serving:
            known = [m for arm in arms.values() for m in arm.listed_models()]
            # only a likely typo gets a suggestion: a new model id is not steered away
            close = difflib.get_close_matches(model, known, n=1, cutoff=0.85)
            raise ProviderError(
                f"no provider arm serves model {model!r} (from {model_source})",
                hint=(f"did you mean {close[0]!r}? " if close else "")
                + "set provider: and add the model to that arm in providers.yaml",
                file=config.file,
                line=config.position(*_model_field(config))[0],
                field=".".join(_model_field(config)),
            )
        chosen = next(
            (arm for arm in serving if _credential_available(arm, inputs, token)), serving[0]
        )
        return chosen, model, f"arm {chosen.name} serves model {model}", model_source

    for arm in arms.values():
        if _credential_available(arm, inputs, token):
            why = f"no model or provider configured; {arm.name}'s credential is present"
            return arm, arm.model_default(), why, None
    return None, None, "", None


def _model_field(config: WorkspaceConfig) -> tuple[str, ...]:
    return ("model",) if config.model else ("runtime_config", "model")


def _model(config: WorkspaceConfig) -> tuple[str | None, str]:
    top = config.model.strip() if config.model else None
    nested = config.runtime_config.model.strip() if config.runtime_config.model else None
    if top and nested and top != nested:
        raise ProviderError(
            f"model is {top!r} in {config.source('model')} but {nested!r} in "
            f"{config.source('runtime_config', 'model')}",
            hint="keep one of them, or make them equal",
            file=config.file,
            line=config.position("runtime_config", "model")[0],
            field="runtime_config.model",
        )
    if top:
        return top, config.source("model")
    if nested:
        return nested, config.source("runtime_config", "model")
    return None, ""


def _not_served(
    arms: Mapping[str, Arm],
    arm: Arm,
    provider_source: str,
    model: str,
    model_source: str,
    config: WorkspaceConfig,
) -> ProviderError:
    serving = [other.name for other in arms.values() if other.serves(model)]
    line = config.position(*_model_field(config))[0]
    if arm.key_from == "workspace-token" and serving:
        slug = _platform_slug(arms, arms[serving[0]], model)
        keys = " or ".join(arms[serving[0]].key_env) or "its key"
        return ProviderError(
            f"provider {arm.name} (platform-managed billing, from {provider_source}) cannot "
            f"serve model {model} (from {model_source}): it is a bring-your-own-key model of "
            f"arm {serving[0]}",
            hint=(f"use {slug} for platform billing, or " if slug else "")
            + f"set provider: {serving[0]} and {keys}",
            file=config.file,
            line=line,
            field="model",
        )
    return ProviderError(
        f"provider {arm.name} (from {provider_source}) does not serve model {model} "
        f"(from {model_source})",
        hint=(
            f"arms that serve it: {', '.join(serving)}; change the provider or the model"
            if serving
            else f"{arm.name} serves {', '.join(arm.models) or 'no models'}; "
            "add the model to the arm in providers.yaml"
        ),
        file=config.file,
        line=line,
        field="model",
    )


def _missing_key(
    arms: Mapping[str, Arm],
    arm: Arm,
    model: str | None,
    why: str,
    model_source: str | None,
    inputs: _Inputs,
) -> ProviderError:
    keys = " or ".join(arm.key_env)
    if model is not None and model_source is not None:
        subject = f"model {model} (from {model_source}) is served by arm {arm.name}"
    else:
        subject = why
    platform_billing = inputs.plain("LLM_PROXY_URL") is not None
    note = " (platform-managed billing sends no tenant key)" if platform_billing else ""
    slug = _platform_slug(arms, arm, model) if model is not None and not arm.anthropic else None
    where = f" or as a file in {inputs.secrets.path}" if inputs.secrets.path else ""
    return ProviderError(
        f"{subject}, which needs {keys}; none is set{note}",
        hint=(
            f"use {slug} for platform billing or set {arm.key_env[0]}"
            if slug
            else f"set {arm.key_env[0]}"
        )
        + f" in the environment{where}",
        variable=arm.key_env[0],
    )


def _base_url(
    arm: Arm, arms: Mapping[str, Arm], inputs: _Inputs, warnings: list[str]
) -> tuple[str | None, str]:
    if arm.base_url_env is not None:
        given = inputs.plain(arm.base_url_env)
        if given is not None:
            url = given[0].rstrip("/")
            problem = check_base_url(url)
            if problem:
                raise ProviderError(
                    f"{arm.base_url_env} is not a usable base URL: {problem}",
                    hint=f"set {arm.base_url_env} to the provider's http(s) endpoint, or unset it",
                    variable=arm.base_url_env,
                )
            stale = _stale_projection(url, arm, arms, inputs) if arm.anthropic else None
            if stale is None:
                return url, given[1]
            warnings.append(
                f"{arm.base_url_env} points at {stale}'s endpoint, left over from an earlier "
                f"projection; ignored so the {arm.name} credential goes to Anthropic"
            )
    if arm.base_url is not None:
        return arm.base_url, f"arm {arm.name} ({arm.origin})"
    if arm.anthropic:
        return None, ""
    raise ProviderError(
        f"arm {arm.name} has no base URL: {arm.base_url_env} is not set",
        hint=f"set {arm.base_url_env}"
        + (" (the platform's LLM proxy)" if arm.key_from == "workspace-token" else ""),
        variable=arm.base_url_env,
    )


def _stale_projection(url: str, arm: Arm, arms: Mapping[str, Arm], inputs: _Inputs) -> str | None:
    """The arm whose endpoint ``url`` is, when an Anthropic arm would send its key there."""
    for other in arms.values():
        if other.name != arm.name and not other.anthropic and other.base_url == url:
            return other.name
    proxy = inputs.plain("LLM_PROXY_URL")
    if proxy is not None and proxy[0].rstrip("/") == url:
        return "the platform proxy"
    return None


def _credential(
    arm: Arm,
    arms: Mapping[str, Arm],
    model: str | None,
    why: str,
    model_source: str | None,
    inputs: _Inputs,
    token: str | None,
    token_source: str,
) -> tuple[Assignment, Credential]:
    target = _CREDENTIAL_VARIABLE[arm.auth]
    if arm.key_from == "workspace-token":
        if not token:
            raise ProviderError(
                f"arm {arm.name} (platform-managed billing) uses the workspace token as its "
                f"credential, and {token_source} is absent or empty",
                hint="the provisioner writes it at start and the platform issues it at the "
                "first registration; wait for it, or choose a bring-your-own-key arm",
                file=token_source,
            )
        assignment = Assignment(
            target, token, f"workspace token ({token_source})", True, None, token_source
        )
        return assignment, Credential(None, token_source, fingerprint(token), arm.auth)
    for name in arm.key_env:
        found = inputs.key(name)
        if found is not None:
            value, source, file = found
            raw = inputs.raw(name)
            # the shell format may point at the input only when it needs no cleaning
            exact = raw is not None and (raw[0].rstrip("\n") if file else raw[0]) == value
            assignment = Assignment(
                target,
                value,
                source,
                secret=True,
                reference=name if file is None else None,
                reference_file=file,
                cleaned=not exact,
            )
            return assignment, Credential(name, source, fingerprint(value), arm.auth)
    raise _missing_key(arms, arm, model, why, model_source, inputs)


def _check_required(
    config: WorkspaceConfig,
    arm: Arm | None,
    arms: Mapping[str, Arm],
    inputs: _Inputs,
    target: Mapping[str, str | None],
) -> None:
    own = set(arm.key_env) if arm else set()
    others = {name for other in arms.values() for name in other.key_env} - own
    lists = (("env", "required"), ("runtime_config", "required_env"))
    for path in lists:
        section = getattr(config, path[0])
        for index, name in enumerate(getattr(section, path[1])):
            name = name.strip()
            if not _VARIABLE_NAME.match(name):
                line, column = config.position(*path, index)
                # the entry may be a key pasted where a name belongs: never echo it
                raise ProviderError(
                    f"{'.'.join(path)}[{index}] in {config.file or 'config'} is not an "
                    "environment variable name",
                    hint="list variable names (A-Z, 0-9 and _), never their values",
                    file=config.file,
                    line=line,
                    column=column,
                    field=f"{'.'.join(path)}.{index}",
                )
            if name in others:
                continue  # another arm's credential: never required (§4)
            present = target[name] is not None if name in target else inputs.raw(name) is not None
            if present:
                continue
            line, column = config.position(*path, index)
            raise ProviderError(
                f"{'.'.join(path)} in {config.file or 'config'} requires {name}, which is not set",
                hint=f"set {name} in the environment"
                + (f" or as a file in {inputs.secrets.path}" if inputs.secrets.path else "")
                + ", or remove it from the list",
                variable=name,
                file=config.file,
                line=line,
                column=column,
                field=f"{'.'.join(path)}.{index}",
            )


def plan_env(
    *,
    arms: Mapping[str, Arm],
    environ: Mapping[str, str],
    config: WorkspaceConfig,
    secrets: SecretsDir | None = None,
    token: str | None = None,
    token_source: str = ".auth_token",  # noqa: S107 - a file name, not a password
) -> EnvPlan:
    """Plan the managed provider variables (DESIGN §5); ``ProviderError`` on a contradiction.

    Pure: reads only its arguments. The same inputs give the same plan, and
    the environment a plan is applied to plans to the same assignments.
    """
    inputs = _Inputs(environ, secrets or SecretsDir.empty())
    warnings: list[str] = []
    arm, model, why, model_source = _resolve(arms, config, inputs, token)
    names = managed_variables(arms)
    unset_source = f"not used by arm {arm.name}" if arm else "no provider configured"
    decided: dict[str, Assignment] = {name: Assignment(name, None, unset_source) for name in names}
    credential: Credential | None = None
    base_url: str | None = None
    # the host owns the provider: without this, an env block in any .claude/settings.json
    # overrides the process environment in the Claude Code CLI (measured with 2.1.330)
    decided[HOST_FLAG] = Assignment(HOST_FLAG, "1", "the host owns the provider (DESIGN §5 rule 8)")

    if arm is None:
        warnings.append(
            "no model, provider or provider key is configured: the LLM variables are cleared"
        )
    else:
        assignment, credential = _credential(
            arm, arms, model, why, model_source, inputs, token, token_source
        )
        decided[assignment.name] = assignment
        base_url, base_source = _base_url(arm, arms, inputs, warnings)
        if base_url is not None:
            decided["ANTHROPIC_BASE_URL"] = Assignment("ANTHROPIC_BASE_URL", base_url, base_source)
        if model is not None:
            source = model_source or f"default model of arm {arm.name}"
            decided["ANTHROPIC_MODEL"] = Assignment("ANTHROPIC_MODEL", model, source)
            if not arm.anthropic:
                # so the Claude Code CLI never asks a third party for a claude-* id
                small = arm.small_model if arm.small_model is not None else model
                for name in MODEL_SLOTS[1:]:
                    if name in SMALL_MODEL_SLOTS and arm.small_model is not None:
                        why = f"small model of arm {arm.name} ({arm.origin})"
                        decided[name] = Assignment(name, small, why)
                    else:
                        decided[name] = Assignment(name, model, f"pinned to the model ({source})")
        for name, value in arm.env.items():
            decided[name] = Assignment(name, value, f"arm {arm.name} env ({arm.origin})")

    target = {name: item.value for name, item in decided.items()}
    _check_required(config, arm, arms, inputs, target)

    actions: dict[str, Action] = {}
    for name in names:
        planned = target[name]
        current = environ.get(name)
        if planned is None:
            actions[name] = Action.UNSET if current is not None else Action.KEEP
            if current is not None and current.strip():
                reason = (
                    "no Anthropic credential goes to a third-party host"
                    if arm is not None and not arm.anthropic and name in _ANTHROPIC_CREDENTIALS
                    else unset_source
                )
                warnings.append(f"{name} was set but is removed: {reason}")
        else:
            actions[name] = Action.KEEP if current == planned else Action.SET

    return EnvPlan(
        provider=arm.name if arm else None,
        model=model,
        arm=arm,
        assignments=tuple(decided[name] for name in names),
        actions=actions,
        warnings=tuple(dict.fromkeys(inputs.warnings + warnings)),
        credential=credential,
        base_url=base_url,
    )


def apply_plan(plan: EnvPlan, environ: MutableMapping[str, str]) -> None:
    """Write the plan into ``environ`` (``os.environ`` before any LLM SDK starts), then guard."""
    for item in plan.assignments:
        if item.value is None:
            environ.pop(item.name, None)
        else:
            environ[item.name] = item.value
    check_applied(plan, environ)


def check_applied(plan: EnvPlan, environ: Mapping[str, str]) -> None:
    """Raise ``EnvGuardError`` unless ``environ`` holds exactly what the plan decided,
    and, for a third-party arm, its credential and base URL are present."""
    wrong = [item.name for item in plan.assignments if environ.get(item.name) != item.value]
    if plan.arm is not None and not plan.arm.anthropic:
        for name in ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
            if not environ.get(name) and name not in wrong:
                wrong.append(name)
        wrong += [
            name for name in _ANTHROPIC_CREDENTIALS if environ.get(name) and name not in wrong
        ]
    if wrong:
        raise EnvGuardError(wrong)


def key_variables(arms: Mapping[str, Arm]) -> tuple[str, ...]:
    """Every variable any arm reads a provider key from, plus the Anthropic credentials."""
    names = {name for arm in arms.values() for name in arm.key_env}
    return tuple(sorted(names | {*_ANTHROPIC_CREDENTIALS, "ANTHROPIC_AUTH_TOKEN"}))


def agent_plan(plan: EnvPlan, *, url: str, token: str) -> EnvPlan:
    """The plan as the agent gets it behind the gateway (DESIGN §13): the base URL is the
    gateway's, the credential is the gateway's per-boot token, and no Anthropic
    credential is left. Models, the host flag and the arm's static env are unchanged.
    Pure; the provider key stays in ``plan``, which only the gateway reads."""
    if plan.arm is None:
        return plan
    replaced: dict[str, Assignment] = {
        "ANTHROPIC_BASE_URL": Assignment("ANTHROPIC_BASE_URL", url, "the runtime's LLM gateway"),
        "ANTHROPIC_AUTH_TOKEN": Assignment(
            "ANTHROPIC_AUTH_TOKEN", token, "the LLM gateway's token (this boot)", secret=True
        ),
        "ANTHROPIC_API_KEY": Assignment("ANTHROPIC_API_KEY", None, "the gateway holds the key"),
        "CLAUDE_CODE_OAUTH_TOKEN": Assignment(
            "CLAUDE_CODE_OAUTH_TOKEN", None, "the gateway holds the token"
        ),
    }
    assignments = tuple(replaced.get(item.name, item) for item in plan.assignments)
    if plan.arm.anthropic:
        # Claude Code's documentation: MCP tool search turns off for a base URL that is
        # not Anthropic's unless this is set; behind the loopback gateway it still is
        why = "the gateway is Anthropic's endpoint for this arm"
        assignments += (Assignment("ENABLE_TOOL_SEARCH", "true", why),)
    actions = {item.name: Action.SET if item.value else Action.UNSET for item in assignments}
    return replace(plan, assignments=assignments, actions=actions)
