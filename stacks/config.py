"""Per-environment configuration: one typed, frozen model read once from cdk.json.

`cdk.json` holds ``context.environments``: a mapping of environment name to its settings.
Every section and key is optional except where noted; omitted keys take the defaults below.
:func:`load_environments` validates everything at once and raises :class:`ConfigError`
with one line per problem, each naming the environment, the key, the bad value and what
is allowed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aws_cdk import aws_logs as logs
from aws_cdk import region_info

from traced_fargate import rules
from traced_fargate.firelens import FireLensLogRouter
from traced_fargate.pull_through_cache import PullThroughCache
from traced_fargate.tracing import AdotCollector, TracingSidecar, XRayDaemon

# Each pattern must match the whole value (re.fullmatch): with re.match and "$", a value
# with a trailing newline would pass.
ENV_NAME = re.compile(r"[a-z][a-z0-9-]*")
ACCOUNT = re.compile(r"\d{12}")
INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+")
EGRESS_GENERATION = re.compile(r"[A-Za-z0-9._-]{1,32}")
SSM_PARAMETER_NAME = re.compile(r"/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
DEFAULT_CACHE_PREFIX = "{name}-ecr-public"

# The values CloudWatch Logs accepts for retentionInDays, and their CDK names.
_RETENTION_NAMES = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS",
    30: "ONE_MONTH", 60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS",
    150: "FIVE_MONTHS", 180: "SIX_MONTHS", 365: "ONE_YEAR", 400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS", 1827: "FIVE_YEARS",
    2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS", 3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}  # fmt: skip
LOG_RETENTION_DAYS = tuple(_RETENTION_NAMES)


def retention(days: int) -> logs.RetentionDays:
    """The RetentionDays member for a number of days the model already validated."""
    return logs.RetentionDays[_RETENTION_NAMES[days]]


TracingMode = Literal["xray-daemon", "adot-collector"]
TracingSdk = Literal["xray-sdk", "opentelemetry"]
CpuArchitecture = Literal["X86_64", "ARM64"]
EgressMode = Literal["temporary", "none"]
# awslogs: each container straight to its log group. firelens: the app's stdout through
# an AWS for Fluent Bit log router sidecar (FireLensLogRouter) to the same log group.
LoggingMode = Literal["awslogs", "firelens"]
# rolling: ECS rolling updates with the circuit breaker. blue-green: ECS native blue/green
# on the service's load balancer (so not the backend, which Cloud Map reaches).
DeploymentMode = Literal["rolling", "blue-green"]

Check = Callable[[Any], str | None]
"""Returns None when the value is acceptable, else a phrase saying what is allowed."""


Rule = Callable[[str, Any], list[str]]
"""A library rule: given the key path and the value, one line per broken rule."""


def _check(check: Check) -> dict[str, Check]:
    return {"check": check}


def _rule(rule: Rule) -> dict[str, Rule]:
    return {"rule": rule}


def _int_between(low: int, high: int) -> Check:
    return lambda v: None if low <= v <= high else f"an integer from {low} to {high}"


def _one_of_ints(values: tuple[int, ...]) -> Check:
    return lambda v: None if v in values else f"one of {', '.join(map(str, values))}"


def _matches(pattern: re.Pattern[str], description: str) -> Check:
    return lambda v: None if pattern.fullmatch(v) else description


@functools.cache
def _known_regions() -> frozenset[str]:
    # One jsii round trip per region: read once per process, not once per environment.
    return frozenset(r.name for r in region_info.RegionInfo.regions)


def _region(value: str) -> str | None:
    return None if value in _known_regions() else "a known AWS region name, e.g. eu-west-1"


@dataclass(frozen=True)
class NetworkConfig:
    vpc_cidr: str = field(default="10.20.0.0/16", metadata=_rule(rules.cidr_problems))
    max_azs: int = field(default=2, metadata=_rule(rules.max_azs_problems))
    # None: interface endpoints in every workload AZ. Checked against max_azs in _cross_checks.
    endpoint_azs: int | None = None
    flow_log_retention_days: int = field(
        default=365, metadata=_check(_one_of_ints(LOG_RETENTION_DAYS))
    )


@dataclass(frozen=True)
class RegistryConfig:
    # None: DEFAULT_CACHE_PREFIX. Checked, explicit or derived, by the library's own rule
    # (repository_prefix_problems) in _cache_prefix_problems, so the two cannot disagree.
    pull_through_cache_prefix: str | None = None
    untagged_expiry_days: int = field(default=10, metadata=_check(_int_between(1, 3650)))
    # None: each service's image comes from its app_image_tag (or the sample-app asset). A
    # name: the SSM parameter whose value CloudFormation reads at every deploy as the app
    # image tag of both services (the delivery pipeline writes it before the Service deploys).
    app_image_tag_parameter: str | None = field(
        default=None,
        metadata=_check(_matches(SSM_PARAMETER_NAME, "an SSM parameter name such as /app/tag")),
    )


@dataclass(frozen=True)
class ServiceConfig:
    """One service of the environment (``frontend`` or ``backend``)."""

    # The SDK inside the app: the X-Ray SDK (to the daemon or the collector, UDP 2000) or
    # OpenTelemetry (OTLP to the collector, so it needs tracing.mode adot-collector).
    tracing_sdk: TracingSdk = "xray-sdk"
    # Sizes, counts, weights and targets are checked together by the library's rules in
    # _cross_checks: each depends on another.
    cpu: int = 512
    memory_mib: int = 1024
    cpu_architecture: CpuArchitecture = "X86_64"
    min_count: int = 1
    max_count: int = 2
    fargate_base: int = 1
    fargate_weight: int = 1
    spot_weight: int = 0
    cpu_target_percent: int = 60
    requests_per_target: int = 500
    log_retention_days: int = field(default=30, metadata=_check(_one_of_ints(LOG_RETENTION_DAYS)))
    # None: the sample app in sample_app/, staged as a CDK asset. A tag: that image from the
    # environment's app repository, as a CI pipeline pushed it.
    app_image_tag: str | None = field(default=None, metadata=_rule(rules.image_reference_problems))
    # True: `aws ecs execute-command` into the app container (sessions KMS-encrypted and
    # logged by the cluster; the network gets the KMS endpoint the SSM agent needs).
    enable_exec: bool = False
    deployment: DeploymentMode = "rolling"
    # Blue/green only: how long the old tasks stay after the shift, for an instant rollback.
    bake_time_minutes: int = field(
        default=5, metadata=_check(_int_between(*rules.BAKE_TIME_MINUTES))
    )


@dataclass(frozen=True)
class TracingConfig:
    mode: TracingMode = "xray-daemon"
    xray_daemon_tag: str = field(
        default=rules.DEFAULT_XRAY_DAEMON_TAG, metadata=_rule(rules.image_reference_problems)
    )
    adot_collector_tag: str = field(
        default=rules.DEFAULT_ADOT_COLLECTOR_TAG,
        metadata=_rule(rules.image_reference_problems),
    )


@dataclass(frozen=True)
class EgressConfig:
    mode: EgressMode = "temporary"
    # Changing it reopens the egress on the next deploy; the same deploy closes it again.
    generation: str = field(
        default="1",
        metadata=_check(_matches(EGRESS_GENERATION, "1-32 letters, digits, . _ -")),
    )


@dataclass(frozen=True)
class LoadClientConfig:
    # False: no instance; the LoadTest stack then only closes the setup egress.
    enabled: bool = True
    instance_type: str = field(
        default="t3.micro",
        metadata=_check(_matches(INSTANCE_TYPE, "an EC2 instance type such as t3.micro")),
    )


TraceCheckMode = Literal["fail", "report", "off"]


@dataclass(frozen=True)
class TraceCheckConfig:
    """The deploy-time trace check (lambda/trace_check/), run after the services are steady."""

    # fail: a check that finds no clean frontend-to-backend trace fails the deploy with its
    # report. report: the report is only logged. off: no check is deployed.
    mode: TraceCheckMode = "fail"
    requests: int = field(default=20, metadata=_check(_int_between(1, 200)))
    # Checked against requests in _cross_checks.
    concurrency: int = field(default=4, metadata=_check(_int_between(1, 20)))
    # The function's timeout, which bounds the burst and the X-Ray polls. At most 600: the
    # trigger's provider (15 minutes) must outlive the wait for the answer.
    timeout_seconds: int = field(default=180, metadata=_check(_int_between(60, 600)))
    log_retention_days: int = field(default=30, metadata=_check(_one_of_ints(LOG_RETENTION_DAYS)))


@dataclass(frozen=True)
class EnvironmentConfig:
    """Everything that differs between environments; built only by :func:`load_environments`."""

    name: str = ""
    account: str | None = field(
        default=None, metadata=_check(_matches(ACCOUNT, "a 12-digit AWS account id"))
    )
    region: str | None = field(default=None, metadata=_check(_region))
    network: NetworkConfig = NetworkConfig()
    registry: RegistryConfig = RegistryConfig()
    frontend: ServiceConfig = ServiceConfig()
    backend: ServiceConfig = ServiceConfig()
    tracing: TracingConfig = TracingConfig()
    logging: LoggingMode = "awslogs"
    egress: EgressConfig = EgressConfig()
    load_client: LoadClientConfig = LoadClientConfig()
    trace_check: TraceCheckConfig = TraceCheckConfig()


class ConfigError(Exception):
    """Invalid configuration; ``str()`` gives one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _describe_type(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(f'"{a}"' for a in typing.get_args(tp))
    names = {bool: "true or false", int: "an integer", str: "a string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _type_ok(tp: Any, value: Any) -> bool:
    if typing.get_origin(tp) is Literal:
        return value in typing.get_args(tp)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _parse_section(cls: type[Any], raw: Any, where: str, problems: list[str]) -> Any:
    """Build dataclass ``cls`` from ``raw``, appending every problem found to ``problems``."""
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected an object, got {raw!r}")
        return cls() if cls is not EnvironmentConfig else None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "name"}
    values: dict[str, Any] = {}
    for key in raw:
        if key not in fields:
            allowed = ", ".join(sorted(fields))
            problems.append(f"{where}.{key}: unknown key; allowed keys: {allowed}")
    for name, f in fields.items():
        if name not in raw:
            continue
        value, tp = raw[name], hints[name]
        if typing.get_origin(tp) in (types.UnionType, typing.Union):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            values[name] = _parse_section(tp, value, f"{where}.{name}", problems)
            continue
        if not _type_ok(tp, value):
            problems.append(
                f"{where}.{name}: {value!r} is not allowed; expected {_describe_type(tp)}"
            )
            continue
        rule: Rule | None = f.metadata.get("rule")
        if rule is not None:
            lines = rule(f"{where}.{name}", value)
            if lines:
                problems.extend(lines)
                continue
        check: Check | None = f.metadata.get("check")
        allowed_text = check(value) if check else None
        if allowed_text:
            problems.append(f"{where}.{name}: {value!r} is not allowed; expected {allowed_text}")
            continue
        values[name] = value
    return cls(**values)


def _service_problems(svc: ServiceConfig, tracing: TracingConfig | None, where: str) -> list[str]:
    keys = f"{where}."
    problems = []
    size = rules.fargate_size_problem(svc.cpu, svc.memory_mib)
    if size:
        problems.append(f"{where}: cpu {svc.cpu} / memory_mib {svc.memory_mib}: {size}")
    problems += rules.count_problems(svc.min_count, svc.max_count, prefix=keys)
    problems += rules.capacity_problems(
        svc.fargate_base, svc.fargate_weight, svc.spot_weight, prefix=keys
    )
    if svc.cpu_architecture == "ARM64":
        problems += rules.arm64_spot_problems(svc.spot_weight, prefix=keys)
    problems += rules.target_problems(svc.cpu_target_percent, svc.requests_per_target, prefix=keys)
    if tracing is not None and svc.tracing_sdk == "opentelemetry" and tracing.mode == "xray-daemon":
        problems.append(
            f"{where}.tracing_sdk: 'opentelemetry' sends OTLP, which the X-Ray daemon does "
            "not receive; set tracing.mode to 'adot-collector' or tracing_sdk to 'xray-sdk'"
        )
    return problems


def _cross_checks(env: EnvironmentConfig, where: str, problems_so_far: list[str]) -> list[str]:
    # A tracing mode already reported as invalid is not compared with the SDKs.
    mode_invalid = any(p.startswith(f"{where}.tracing") for p in problems_so_far)
    tracing = None if mode_invalid else env.tracing
    problems = _service_problems(env.frontend, tracing, f"{where}.frontend")
    problems += _service_problems(env.backend, tracing, f"{where}.backend")
    if env.backend.deployment == "blue-green":
        problems.append(
            f"{where}.backend.deployment: 'blue-green' is not allowed; the backend has no "
            "load balancer to shift traffic on (Cloud Map reaches it), so only 'rolling'"
        )
    problems += rules.endpoint_azs_problems(
        f"{where}.network.endpoint_azs", env.network.endpoint_azs, env.network.max_azs
    )
    # Values already reported as invalid (replaced by defaults) are not compared.
    check_invalid = any(p.startswith(f"{where}.trace_check") for p in problems_so_far)
    if not check_invalid and env.trace_check.concurrency > env.trace_check.requests:
        problems.append(
            f"{where}.trace_check.concurrency: {env.trace_check.concurrency} is not allowed; "
            f"expected at most trace_check.requests ({env.trace_check.requests})"
        )
    if env.network.max_azs > 2 and not (env.account and env.region):
        problems.append(
            f"{where}.network.max_azs: {env.network.max_azs} needs account and region set; "
            "an environment-agnostic stack can only use 2 availability zones"
        )
    return problems


def _cache_prefix_problems(env: EnvironmentConfig, where: str, *, derived: bool) -> list[str]:
    """The library's problems with the prefix; for a derived one, where it came from."""
    prefix = env.registry.pull_through_cache_prefix
    if prefix is None:
        return []
    problems = rules.repository_prefix_problems(
        f"{where}.registry.pull_through_cache_prefix", prefix
    )
    if derived:
        pattern = DEFAULT_CACHE_PREFIX.format(name="<environment name>")
        origin = (
            f"; it is the default for environment {env.name!r} ({pattern}): "
            "set registry.pull_through_cache_prefix"
        )
        problems = [problem + origin for problem in problems]
    return problems


def load_environments(raw: Any, selected: str | None = None) -> list[EnvironmentConfig]:
    """Validate ``context.environments`` from cdk.json and return the selected environments.

    ``selected`` is the value of ``-c env=NAME``; None selects every environment.
    """
    where = "cdk.json: context.environments"
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError([f"{where}: expected an object with at least one environment"])
    problems: list[str] = []
    configs: list[EnvironmentConfig] = []
    for name, section in raw.items():
        env_where = f"{where}.{name}"
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            problems.append(
                f"{env_where}: environment name {name!r} is not allowed; expected lowercase "
                "[a-z][a-z0-9-]*"
            )
            continue
        parsed = _parse_section(EnvironmentConfig, section, env_where, problems)
        if parsed is None:
            continue
        env = dataclasses.replace(parsed, name=name)
        # Derived only when the key is absent: a given but invalid value is reported as such.
        registry_section = section.get("registry")
        derived = not (
            isinstance(registry_section, Mapping)
            and "pull_through_cache_prefix" in registry_section
        )
        if derived:
            registry = dataclasses.replace(
                env.registry, pull_through_cache_prefix=DEFAULT_CACHE_PREFIX.format(name=name)
            )
            env = dataclasses.replace(env, registry=registry)
        problems.extend(_cross_checks(env, env_where, problems))
        problems.extend(_cache_prefix_problems(env, env_where, derived=derived))
        configs.append(env)
    prefixes: dict[tuple[str | None, str | None, str | None], str] = {}
    for env in configs:
        key = (env.account, env.region, env.registry.pull_through_cache_prefix)
        if key[2] is None:
            continue  # an explicit prefix of the wrong type, already reported
        if key in prefixes:
            problems.append(
                f"{where}.{env.name}.registry.pull_through_cache_prefix: "
                f"{key[2]!r} is already used by {prefixes[key]!r}; one rule per prefix per "
                "registry, so each environment in an account and region needs its own"
            )
        prefixes.setdefault(key, env.name)
    if selected is not None and selected not in raw:
        problems.append(
            f"-c env={selected}: unknown environment; defined: {', '.join(map(str, raw))}"
        )
    if problems:
        raise ConfigError(problems)
    return [c for c in configs if selected is None or c.name == selected]


def tracing_sidecar(tracing: TracingConfig, cache: PullThroughCache | None) -> TracingSidecar:
    """The tracing sidecar that ``tracing.mode`` names, at its configured tag."""
    if tracing.mode == "adot-collector":
        return AdotCollector(pull_through_cache=cache, tag=tracing.adot_collector_tag)
    return XRayDaemon(pull_through_cache=cache, tag=tracing.xray_daemon_tag)


def log_extensions(
    env: EnvironmentConfig, cache: PullThroughCache | None
) -> list[FireLensLogRouter]:
    """The task extensions that ``logging`` names: a FireLens log router, or none."""
    if env.logging == "firelens":
        return [FireLensLogRouter(pull_through_cache=cache)]
    return []


def any_exec(env: EnvironmentConfig) -> bool:
    """Whether a service of the environment has ECS Exec on."""
    return env.frontend.enable_exec or env.backend.enable_exec


def cached_images(env: EnvironmentConfig) -> list[str]:
    """The images the environment's tasks pull through the cache, as ``path:tag``."""
    tracing = tracing_sidecar(env.tracing, None)
    images = [f"{tracing.UPSTREAM_PATH}:{tracing.tag}"]
    images += [f"{router.UPSTREAM_PATH}:{router.tag}" for router in log_extensions(env, None)]
    return sorted(images)


def egress_generation(env: EnvironmentConfig) -> str:
    """``egress.generation`` with a fingerprint of what needs the setup egress again: a new
    image through the cache (its first pull goes upstream) or a new address layout. A
    change re-opens the egress, and the same deploy closes it after the services."""
    fingerprint = json.dumps(
        {
            "images": cached_images(env),
            "vpc_cidr": env.network.vpc_cidr,
            "azs": env.network.max_azs,
        },
        sort_keys=True,
    )
    return f"{env.egress.generation}-{hashlib.sha256(fingerprint.encode()).hexdigest()[:8]}"
