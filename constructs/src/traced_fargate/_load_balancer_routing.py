"""How a :class:`~traced_fargate.TracedFargateService` behind an ALB gets its requests: its
target groups, and a load balancer of its own or a rule on a shared listener."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_kms as kms
from constructs import Construct

from traced_fargate._blue_green import shift_traffic_on_rule
from traced_fargate._target_groups import app_target_group
from traced_fargate.closed_vpc import ClosedVpc
from traced_fargate.ingress import NewLoadBalancer, SharedListener
from traced_fargate.internal_load_balancer import InternalLoadBalancer
from traced_fargate.production_listener_rule import ProductionListenerRule
from traced_fargate.traced_task_definition import APP_CONTAINER_NAME

EVERY_PATH = "/*"


@dataclass(frozen=True)
class Routing:
    """What :func:`route_through_load_balancer` made; all None without a load balancer."""

    target_group: elbv2.ApplicationTargetGroup | None = None
    alternate_target_group: elbv2.ApplicationTargetGroup | None = None
    load_balancer: InternalLoadBalancer | None = None
    listener: elbv2.IApplicationListener | None = None
    production_rule: ProductionListenerRule | None = None


def route_through_load_balancer(
    scope: Construct,
    *,
    service: ecs.FargateService,
    ingress: NewLoadBalancer | SharedListener,
    vpc: ec2.IVpc | ClosedVpc,
    vpc_subnets: ec2.SubnetSelection | None,
    network_vpc: ec2.IVpc,
    port: int,
    health_check_path: str,
    blue_green: bool,
    log_encryption_key: kms.IKey,
) -> Routing:
    """``network_vpc`` is the VPC of ``vpc``; ``port`` the app container's.

    Children of ``scope``: ``TargetGroup`` (``AlternateTargetGroup`` with blue/green),
    then ``LoadBalancer`` (:class:`NewLoadBalancer`) or ``ListenerRule``
    (:class:`SharedListener`), or with blue/green ``ProductionRule`` and
    ``TrafficShiftRole`` for either."""
    groups = {"vpc": network_vpc, "port": port, "health_check_path": health_check_path}
    target_group = app_target_group(
        scope,
        "TargetGroup",
        target=service.load_balancer_target(container_name=APP_CONTAINER_NAME, container_port=port),
        **groups,
    )
    alternate = (
        app_target_group(scope, "AlternateTargetGroup", target=None, **groups)
        if blue_green
        else None
    )
    load_balancer = None
    if isinstance(ingress, NewLoadBalancer):
        load_balancer = InternalLoadBalancer(
            scope,
            "LoadBalancer",
            vpc=vpc,
            vpc_subnets=vpc_subnets,
            certificate=ingress.certificate,
            ssl_policy=ingress.ssl_policy,
            access_logs=ingress.access_logs,
            access_logs_bucket=ingress.access_logs_bucket,
            idle_timeout=ingress.idle_timeout,
            removal_policy=ingress.removal_policy,
            # With blue/green too: every request matches the production rule first, and
            # switching to blue/green leaves the listener as it was, never unrouted.
            default_action=elbv2.ListenerAction.forward([target_group]),
        )
        listener: elbv2.IApplicationListener = load_balancer.listener
        priority, conditions = 1, [elbv2.ListenerCondition.path_patterns([EVERY_PATH])]
    else:
        listener = ingress.listener
        priority, conditions = ingress.priority, list(ingress.conditions)
    rule = None
    if alternate is not None:
        rule = shift_traffic_on_rule(
            scope,
            service=service,
            target_groups=[target_group, alternate],
            listener=listener,
            priority=priority,
            conditions=conditions,
            log_encryption_key=log_encryption_key,
        )
    elif isinstance(ingress, SharedListener):
        elbv2.ApplicationListenerRule(
            scope,
            "ListenerRule",
            listener=listener,
            priority=priority,
            conditions=conditions,
            target_groups=[target_group],
        )
    return Routing(target_group, alternate, load_balancer, listener, rule)
