"""The target groups a :class:`~traced_fargate.TracedFargateService` serves through."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

DEREGISTRATION_DELAY = Duration.seconds(20)


def app_target_group(
    scope: Construct,
    construct_id: str,
    *,
    vpc: ec2.IVpc,
    port: int,
    health_check_path: str,
    target: elbv2.IApplicationLoadBalancerTarget | None,
) -> elbv2.ApplicationTargetGroup:
    """An HTTP target group of task IPs on ``port``, health-checked on ``health_check_path``;
    ``target`` registers in it (none for a blue/green service's alternate group, in which
    ECS registers each deployment's tasks)."""
    return elbv2.ApplicationTargetGroup(
        scope,
        construct_id,
        vpc=vpc,
        port=port,
        protocol=elbv2.ApplicationProtocol.HTTP,
        target_type=elbv2.TargetType.IP,
        targets=[target] if target is not None else None,
        health_check=elbv2.HealthCheck(
            path=health_check_path,
            healthy_http_codes="200",
            interval=Duration.seconds(15),
            timeout=Duration.seconds(5),
            healthy_threshold_count=2,
            unhealthy_threshold_count=3,
        ),
        # ECS stops a task only once its target is deregistered: in-flight requests
        # get this long to finish, and the app its stop timeout after that.
        deregistration_delay=DEREGISTRATION_DELAY,
    )
