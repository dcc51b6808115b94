"""The prop checks of :class:`~traced_fargate.TracedFargateService`, all at once."""

from __future__ import annotations

from traced_fargate._exec_grants import EXEC_ENDPOINTS
from traced_fargate._props import bool_problems, has_attributes, kind_problems, str_problems
from traced_fargate._vpc import vpc_problems
from traced_fargate.closed_vpc import ClosedVpc
from traced_fargate.ingress import NewLoadBalancer, ServiceDiscovery, SharedListener
from traced_fargate.service_scaling import (
    arm64_spot_problems,
    capacity_problems,
    count_problems,
    target_problems,
)
from traced_fargate.traced_task_definition import TracedTaskDefinition


def service_prop_problems(
    *,
    task_definition: object,
    vpc: object,
    cluster: object,
    ingress: object,
    health_check_path: object,
    desired_count: object,
    min_count: object,
    max_count: object,
    fargate_base: object,
    fargate_weight: object,
    spot_weight: object,
    cpu_target_percent: object,
    requests_per_target: object,
    enable_exec: object,
) -> list[str]:
    problems = kind_problems(
        "task_definition",
        task_definition,
        lambda v: isinstance(v, TracedTaskDefinition),
        "a TracedTaskDefinition",
    )
    problems += vpc_problems("vpc", vpc)
    problems += kind_problems(
        "cluster",
        cluster,
        has_attributes("cluster_name", "cluster_arn"),
        "an ecs.ICluster",
        optional=True,
    )
    if isinstance(ingress, SharedListener | ServiceDiscovery):
        problems += ingress.problems()
    elif not isinstance(ingress, NewLoadBalancer):
        problems.append(
            "ingress: expected NewLoadBalancer(...), SharedListener(...) or "
            f"ServiceDiscovery(...), got {type(ingress).__name__}"
        )
    problems += str_problems("health_check_path", health_check_path)
    if isinstance(health_check_path, str) and not health_check_path.startswith("/"):
        problems.append(f"health_check_path: {health_check_path!r} must start with '/'")
    problems += count_problems(min_count, max_count, desired_count)
    problems += capacity_problems(fargate_base, fargate_weight, spot_weight)
    if (
        isinstance(task_definition, TracedTaskDefinition)
        and task_definition.cpu_architecture_name == "ARM64"
    ):
        problems += arm64_spot_problems(spot_weight)
    problems += target_problems(cpu_target_percent, requests_per_target)
    problems += bool_problems("enable_exec", enable_exec)
    if enable_exec is True and cluster is not None and hasattr(cluster, "cluster_name"):
        configuration = getattr(cluster, "execute_command_configuration", None)
        if (
            configuration is None
            or configuration.kms_key is None
            or configuration.log_configuration is None
            or configuration.log_configuration.cloud_watch_log_group is None
        ):
            problems.append(
                "enable_exec: the cluster has no execute_command_configuration with a KMS "
                "key and a CloudWatch log group, so sessions would be neither encrypted "
                "with your key nor logged; create the cluster with "
                "execute_command_configuration=ExecuteCommandSessions(...).configuration"
            )
    if enable_exec is True and isinstance(vpc, ClosedVpc):
        problems += [
            f"enable_exec: the ClosedVpc has no {name!r} interface endpoint, which {why}; "
            f"add ec2.InterfaceVpcEndpointAwsService.{member} to its "
            "additional_interface_endpoints"
            for name, member, why in EXEC_ENDPOINTS
            if name not in vpc.interface_endpoints
        ]
    return problems
