"""The delivery pipeline's configuration: ``context.pipeline`` in cdk.json, optional.

Without the section there is no pipeline. With it, :func:`load_pipeline` validates every key
at once and raises :class:`~stacks.config.ConfigError` with one line per problem, each naming
the key, the bad value and what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stacks.config import ConfigError, EnvironmentConfig

WHERE = "cdk.json: context.pipeline"
REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
CONNECTION_ARN = re.compile(
    r"arn:aws[a-z-]*:(codeconnections|codestar-connections):[a-z0-9-]+:\d{12}:"
    r"connection/[A-Za-z0-9-]+"
)
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

_REQUIRED = ("repository", "branch", "connection_arn", "dev", "prod")
_OPTIONAL = ("approval_emails",)
_FORMATS = {
    "repository": (REPOSITORY, "owner/name"),
    "connection_arn": (
        CONNECTION_ARN,
        "arn:aws:codeconnections:<region>:<12-digit account>:connection/<id>",
    ),
}


@dataclass(frozen=True)
class PipelineConfig:
    """A pipeline from one branch of one repository through ``dev`` to ``prod``."""

    repository: str
    """``owner/name`` of the source repository, reached through the connection."""
    branch: str
    connection_arn: str
    """A CodeConnections (or CodeStar Connections) connection, already authorized."""
    dev: EnvironmentConfig
    """The environment deployed first; the pipeline's own account and region."""
    prod: EnvironmentConfig
    """The environment deployed after the manual approval."""
    approval_emails: tuple[str, ...] = ()
    """Addresses subscribed to the approval topic. Default: none (subscribe later)."""

    @property
    def environment_names(self) -> tuple[str, str]:
        return (self.dev.name, self.prod.name)


def _key_problems(raw: Mapping[str, Any]) -> list[str]:
    problems = []
    allowed = ", ".join(sorted(_REQUIRED + _OPTIONAL))
    for key in raw:
        if key not in _REQUIRED + _OPTIONAL:
            problems.append(f"{WHERE}.{key}: unknown key; allowed keys: {allowed}")
    for key in _REQUIRED:
        value = raw.get(key)
        if key not in raw:
            problems.append(f"{WHERE}.{key}: missing; required keys: {', '.join(_REQUIRED)}")
        elif not isinstance(value, str) or not value.strip():
            problems.append(f"{WHERE}.{key}: {value!r} is not allowed; expected a non-empty string")
        elif key in _FORMATS and not _FORMATS[key][0].fullmatch(value):
            problems.append(f"{WHERE}.{key}: {value!r} is not allowed; expected {_FORMATS[key][1]}")
    emails = raw.get("approval_emails", [])
    if not isinstance(emails, list) or not all(
        isinstance(e, str) and EMAIL.fullmatch(e) for e in emails
    ):
        problems.append(
            f"{WHERE}.approval_emails: {emails!r} is not allowed; "
            "expected a list of e-mail addresses"
        )
    return problems


def _environment_problems(
    raw: Mapping[str, Any], by_name: Mapping[str, EnvironmentConfig]
) -> list[str]:
    problems = []
    for key in ("dev", "prod"):
        name = raw.get(key)
        if not isinstance(name, str) or not name.strip():
            continue  # reported by _key_problems
        env = by_name.get(name)
        if env is None:
            problems.append(
                f"{WHERE}.{key}: {name!r} is not an environment; defined: {', '.join(by_name)}"
            )
        elif not (env.account and env.region):
            problems.append(
                f"{WHERE}.{key}: environment {name!r} needs account and region set in "
                f"context.environments.{name}; a pipeline deploys to explicit environments"
            )
        else:
            problems += [
                f"{WHERE}.{key}: environment {name!r} runs {role}.cpu_architecture "
                f"{svc.cpu_architecture}; expected X86_64 (the pipeline builds one x86 image)"
                for role, svc in (("frontend", env.frontend), ("backend", env.backend))
                if svc.cpu_architecture != "X86_64"
            ]
    dev, prod = (
        by_name.get(v) if isinstance(v, str) else None for v in (raw.get("dev"), raw.get("prod"))
    )
    if dev is not None and dev is prod:
        problems.append(f"{WHERE}.prod: {prod.name!r} is also dev; expected another environment")
    elif dev and prod and dev.account and prod.account and dev.account != prod.account:
        problems.append(
            f"{WHERE}.prod: environment {prod.name!r} is in account {prod.account}, dev in "
            f"{dev.account}; expected one account (the pipeline's role writes both "
            "environments' image tags and repositories)"
        )
    return problems


def load_pipeline(raw: Any, environments: Sequence[EnvironmentConfig]) -> PipelineConfig | None:
    """Validate ``context.pipeline`` against the (already validated) ``environments``.

    ``raw`` None (no section) gives None: the app then has no Pipeline stack.
    """
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError([f"{WHERE}: expected an object, got {raw!r}"])
    by_name = {env.name: env for env in environments}
    problems = _key_problems(raw) + _environment_problems(raw, by_name)
    if problems:
        raise ConfigError(problems)
    return PipelineConfig(
        repository=raw["repository"],
        branch=raw["branch"],
        connection_arn=raw["connection_arn"],
        dev=by_name[raw["dev"]],
        prod=by_name[raw["prod"]],
        approval_emails=tuple(raw.get("approval_emails", [])),
    )
