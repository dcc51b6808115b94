"""Target-tracking auto scaling of a Fargate service on CPU and, behind an ALB, requests."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

from traced_fargate._props import int_problems
from traced_fargate.errors import raise_if_problems

MAX_TASKS = 5000
CPU_TARGET_PERCENT = (1, 100)
"""What target tracking accepts as a utilization target."""


def count_problems(
    min_count: object, max_count: object, desired_count: object = None, *, prefix: str = ""
) -> list[str]:
    """Problems of the task-count bounds (and of a desired count within them).

    ``prefix`` goes before each prop name, e.g. a config key path ending in ``.``.
    """
    problems = int_problems(f"{prefix}min_count", min_count, 1, MAX_TASKS)
    problems += int_problems(f"{prefix}max_count", max_count, 1, MAX_TASKS)
    if desired_count is not None:
        problems += int_problems(f"{prefix}desired_count", desired_count, 0, MAX_TASKS)
    if problems:
        return problems
    assert isinstance(min_count, int) and isinstance(max_count, int)
    if min_count > max_count:
        problems.append(f"{prefix}min_count: {min_count} is above max_count {max_count}")
    if isinstance(desired_count, int) and not min_count <= desired_count <= max_count:
        problems.append(
            f"{prefix}desired_count: {desired_count} must lie within min_count {min_count} "
            f"and max_count {max_count}"
        )
    return problems


def target_problems(
    cpu_target_percent: object, requests_per_target: object, *, prefix: str = ""
) -> list[str]:
    """Problems of the scaling targets."""
    low, high = CPU_TARGET_PERCENT
    return int_problems(
        f"{prefix}cpu_target_percent", cpu_target_percent, low, high
    ) + int_problems(f"{prefix}requests_per_target", requests_per_target, 1)


def capacity_problems(
    fargate_base: object, fargate_weight: object, spot_weight: object, *, prefix: str = ""
) -> list[str]:
    """Problems of the FARGATE / FARGATE_SPOT capacity provider strategy."""
    problems = int_problems(f"{prefix}fargate_base", fargate_base, 0, 100000)
    problems += int_problems(f"{prefix}fargate_weight", fargate_weight, 0, 1000)
    problems += int_problems(f"{prefix}spot_weight", spot_weight, 0, 1000)
    if not problems and fargate_weight == 0 and spot_weight == 0:
        problems.append(
            f"{prefix}fargate_weight / spot_weight: both 0; at least one must be above 0"
        )
    return problems


def capacity_strategies(
    fargate_base: int, fargate_weight: int, spot_weight: int
) -> list[ecs.CapacityProviderStrategy]:
    """FARGATE with its base and weight, and FARGATE_SPOT when ``spot_weight`` is not 0."""
    strategies = [
        ecs.CapacityProviderStrategy(
            capacity_provider="FARGATE", base=fargate_base, weight=fargate_weight
        )
    ]
    if spot_weight:
        strategies.append(
            ecs.CapacityProviderStrategy(capacity_provider="FARGATE_SPOT", weight=spot_weight)
        )
    return strategies


def arm64_spot_problems(spot_weight: object, *, prefix: str = "") -> list[str]:
    """Problems of Spot capacity for an ARM64 task: FARGATE_SPOT runs no ARM64 tasks."""
    if isinstance(spot_weight, int) and spot_weight > 0:
        return [
            f"{prefix}spot_weight: {spot_weight} places ARM64 tasks on FARGATE_SPOT, which "
            "does not run ARM64; use spot_weight 0 or cpu_architecture X86_64"
        ]
    return []


class ServiceScaling(Construct):
    """Keeps a service between ``min_count`` and ``max_count`` tasks, tracking a CPU target
    and, when a target group is given, a request count per task.

    Scaling out reacts after 60 s, scaling in after 120 s. The scalable target owns the
    task count: leave the service's ``desired_count`` unset, or every deploy resets it.
    A service has one scalable target: use one ServiceScaling per service.

    The scalable target and its policies are children of the service
    (``<service>/TaskCount/Target``, ``.../CpuTarget``, ``.../RequestsTarget``), as
    aws-cdk-lib places them.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        service: ecs.BaseService,
        min_count: int = 1,
        max_count: int = 2,
        cpu_target_percent: int = 60,
        target_group: elbv2.ApplicationTargetGroup | None = None,
        requests_per_target: int = 500,
    ) -> None:
        """
        :param service: the service to scale.
        :param min_count: lower bound of tasks. Default: 1.
        :param max_count: upper bound of tasks. Default: 2.
        :param cpu_target_percent: average CPU utilization to hold, 1-100. Default: 60.
        :param target_group: the service's target group behind an ALB. Default: none, and
            no request-count tracking.
        :param requests_per_target: ALB requests per task per minute to hold. Default: 500.
        """
        super().__init__(scope, construct_id)
        raise_if_problems(
            self.node.path,
            count_problems(min_count, max_count)
            + target_problems(cpu_target_percent, requests_per_target),
        )
        self.task_count = service.auto_scale_task_count(
            min_capacity=min_count, max_capacity=max_count
        )
        """The service's ``ScalableTaskCount``."""
        cooldowns = {
            "scale_in_cooldown": Duration.seconds(120),
            "scale_out_cooldown": Duration.seconds(60),
        }
        self.task_count.scale_on_cpu_utilization(
            "CpuTarget", target_utilization_percent=cpu_target_percent, **cooldowns
        )
        if target_group is not None:
            self.task_count.scale_on_request_count(
                "RequestsTarget",
                requests_per_target=requests_per_target,
                target_group=target_group,
                **cooldowns,
            )
