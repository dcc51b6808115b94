"""The prop checks of :class:`~traced_fargate.TracedTaskDefinition`.

Every problem is collected before the task adds anything: the checks of single props,
then the checks across props (the app's share of the task size, the app environment
against what the construct and the extensions set) whenever the props they read are
well-formed, so that a user sees every problem in one run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration
from aws_cdk import aws_ecs as ecs

from traced_fargate._props import int_problems, kind_problems, str_mapping_problems, str_problems
from traced_fargate.extensions import TaskExtension
from traced_fargate.fargate_sizes import fargate_size_problem
from traced_fargate.tracing import TracingSidecar

ROOT_USERS = frozenset({"0", "root"})

STOP_TIMEOUT_SECONDS = (2, 120)
"""What Fargate accepts for a container's stop timeout."""


def task_prop_problems(
    *,
    construct_id: str,
    tracing: object,
    extensions: object,
    service_name: object,
    cpu: object,
    memory_mib: object,
    cpu_architecture: object,
    app_cpu: object,
    app_memory_reservation_mib: object,
    app_port: object,
    app_user: object,
    app_environment: object,
    stop_timeout: object,
) -> tuple[list[str], dict[str, str]]:
    """The props' problems, and the app environment that the construct and the
    extensions set (computed once here, so each extension's ``app_environment`` is
    called once)."""
    problems = _extension_problems(tracing, extensions)
    extensions_ok = not problems
    name_types = [] if service_name is None else str_problems("service_name", service_name)
    size_types = int_problems("cpu", cpu) + int_problems("memory_mib", memory_mib)
    problems += name_types + size_types
    if not size_types and isinstance(cpu, int) and isinstance(memory_mib, int):
        size = fargate_size_problem(cpu, memory_mib)
        if size:
            problems.append(f"cpu {cpu} / memory_mib {memory_mib}: not a Fargate task size; {size}")
    problems += kind_problems(
        "cpu_architecture",
        cpu_architecture,
        lambda v: isinstance(v, ecs.CpuArchitecture),
        "ecs.CpuArchitecture.X86_64 or ecs.CpuArchitecture.ARM64",
    )
    app_types = [] if app_cpu is None else int_problems("app_cpu", app_cpu, 0)
    if app_memory_reservation_mib is not None:
        app_types += int_problems("app_memory_reservation_mib", app_memory_reservation_mib, 6)
    port_types = int_problems("app_port", app_port, 1, 65535)
    env_types = str_mapping_problems("app_environment", app_environment)
    problems += app_types + port_types
    problems += str_problems("app_user", app_user) or _user_problems(str(app_user))
    problems += env_types + _stop_timeout_problems(stop_timeout)

    environment: dict[str, str] = {}
    if not extensions_ok:
        return problems, environment
    assert isinstance(tracing, TracingSidecar) and isinstance(extensions, Sequence)
    all_extensions: list[TaskExtension] = [tracing, *extensions]
    if (
        not size_types
        and not app_types
        and isinstance(cpu, int)
        and isinstance(memory_mib, int)
        and isinstance(app_cpu, int | None)
        and isinstance(app_memory_reservation_mib, int | None)
    ):
        problems += _fit_problems(
            all_extensions, cpu, memory_mib, app_cpu, app_memory_reservation_mib
        )
    if not name_types and not port_types:
        environment = {"SERVICE_NAME": str(service_name or construct_id), "PORT": str(app_port)}
        for extension in all_extensions:
            environment.update(extension.app_environment())
        if not env_types and isinstance(app_environment, Mapping | None):
            problems += _collision_problems(app_environment, environment)
    return problems, environment


def app_size(
    extensions: Sequence[TaskExtension],
    cpu: int,
    memory_mib: int,
    app_cpu: int | None,
    app_memory_mib: int | None,
) -> tuple[int, int]:
    """The app's cpu and memory reservations: as given, or what the extensions leave."""
    if app_cpu is None:
        app_cpu = cpu - sum(e.cpu for e in extensions)
    if app_memory_mib is None:
        app_memory_mib = memory_mib - sum(e.memory_reservation_mib for e in extensions)
    return app_cpu, app_memory_mib


def _extension_problems(tracing: object, extensions: object) -> list[str]:
    problems = kind_problems(
        "tracing",
        tracing,
        lambda v: isinstance(v, TracingSidecar),
        "a tracing sidecar such as XRayDaemon(...) or AdotCollector(...)",
    )
    if isinstance(extensions, str | bytes) or not isinstance(extensions, Sequence):
        problems.append(f"extensions: expected a sequence of TaskExtension, got {extensions!r}")
        return problems
    for index, extension in enumerate(extensions):
        problems += kind_problems(
            f"extensions[{index}]",
            extension,
            lambda v: isinstance(v, TaskExtension) and not isinstance(v, TracingSidecar),
            "a TaskExtension that is not a second tracing sidecar (give it as tracing=)",
        )
    valid = [e for e in [tracing, *extensions] if isinstance(e, TaskExtension)]
    names = [e.name for e in valid]
    problems += [
        f"extensions: two extensions are named {name!r}; names are unique within a task"
        for name in sorted({n for n in names if names.count(n) > 1})
    ]
    for extension in valid:
        problems += extension.problems()
    return problems


def _user_problems(user: str) -> list[str]:
    if user.split(":", 1)[0] in ROOT_USERS:
        return [
            f"app_user: {user!r} runs the app as root, which is not allowed; give a non-root "
            "uid such as '10001'"
        ]
    if not user:
        return ["app_user: the empty string is not a user; give a non-root uid such as '10001'"]
    return []


def _stop_timeout_problems(stop_timeout: object) -> list[str]:
    if stop_timeout is None:
        return []
    if not isinstance(stop_timeout, Duration):
        return [f"stop_timeout: expected a Duration, got {type(stop_timeout).__name__}"]
    if stop_timeout.is_unresolved():
        return []
    seconds = stop_timeout.to_seconds()
    low, high = STOP_TIMEOUT_SECONDS
    if not low <= seconds <= high:
        return [f"stop_timeout: {seconds} s is not allowed; Fargate accepts {low} to {high} s"]
    return []


def _fit_problems(
    extensions: Sequence[TaskExtension],
    cpu: int,
    memory_mib: int,
    app_cpu: int | None,
    app_memory_mib: int | None,
) -> list[str]:
    reserved_cpu = sum(e.cpu for e in extensions)
    reserved_memory = sum(e.memory_reservation_mib for e in extensions)
    app_cpu, app_memory_mib = app_size(extensions, cpu, memory_mib, app_cpu, app_memory_mib)
    problems = []
    if app_cpu < 0 or app_cpu + reserved_cpu > cpu:
        problems.append(
            f"app_cpu: {app_cpu} plus the sidecars' {reserved_cpu} must fit the task's cpu {cpu}"
        )
    if app_memory_mib < 6 or app_memory_mib + reserved_memory > memory_mib:
        problems.append(
            f"app_memory_reservation_mib: {app_memory_mib} plus the sidecars' {reserved_memory} "
            f"must fit the task's memory_mib {memory_mib}"
        )
    return problems


def _collision_problems(
    app_environment: Mapping[str, str] | None, construct_set: Mapping[str, str]
) -> list[str]:
    return [
        f"app_environment: {key!r} is set by the construct (to {construct_set[key]!r}); "
        "remove it from app_environment or change the prop that sets it"
        for key in sorted(set(app_environment or {}) & set(construct_set))
    ]
