"""The prop checks of :class:`~traced_fargate.TracedFargateService`, all at once."""

from __future__ import annotations

from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_servicediscovery as servicediscovery

from traced_fargate._exec_grants import EXEC_ENDPOINTS
from traced_fargate._props import bool_problems, has_attributes, kind_problems, str_problems
from traced_fargate._vpc import vpc_problems
from traced_fargate.closed_vpc import ClosedVpc
from traced_fargate.deployment import deployment_problems
from traced_fargate.errors import raise_if_problems
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
    deployment: object,
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
    problems += deployment_problems(
        deployment, behind_load_balancer=not isinstance(ingress, ServiceDiscovery)
    )
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


def service_namespace(
    path: str, ingress: object, cluster: ecs.ICluster
) -> servicediscovery.INamespace | None:
    """The Cloud Map namespace of a :class:`ServiceDiscovery` ingress (its own, else the
    cluster's default); None for the other ingresses."""
    if not isinstance(ingress, ServiceDiscovery):
        return None
    namespace = ingress.namespace or cluster.default_cloud_map_namespace
    if namespace is None:
        raise_if_problems(
            path,
            [
                "ingress.namespace: none given and the cluster has no default Cloud Map "
                "namespace; pass a PrivateDnsNamespace or call "
                "cluster.add_default_cloud_map_namespace(name=..., vpc=...)"
            ],
        )
    return namespace
