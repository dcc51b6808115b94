"""ECS native blue/green for a service behind an ALB: the parts aws-cdk-lib's L2 cannot give.

See :mod:`traced_fargate.deployment` for why each part is as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, Validations
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from traced_fargate.production_listener_rule import READ_ACTIONS, ProductionListenerRule


def shift_traffic_on_rule(
    scope: Construct,
    *,
    service: ecs.FargateService,
    target_groups: Sequence[elbv2.ApplicationTargetGroup],
    listener: elbv2.IApplicationListener,
    priority: int,
    conditions: Sequence[elbv2.ListenerCondition],
    log_encryption_key: kms.IKey,
) -> ProductionListenerRule:
    """Give ``service`` (deployment strategy BLUE_GREEN, attached to the first target group)
    a production rule over both target groups and a role for ECS to shift traffic on it.

    Children of ``scope``: ``ProductionRule`` and ``TrafficShiftRole``.
    """
    rule = ProductionListenerRule(
        scope,
        "ProductionRule",
        listener=listener,
        priority=priority,
        conditions=conditions,
        target_groups=target_groups,
        log_encryption_key=log_encryption_key,
    )
    role = iam.Role(
        scope,
        "TrafficShiftRole",
        assumed_by=iam.ServicePrincipal("ecs.amazonaws.com"),
        description="ECS blue/green: registers tasks in the service's target groups and "
        "shifts its production rule",
    )
    role.add_to_policy(
        iam.PolicyStatement(sid="ReadLoadBalancing", actions=list(READ_ACTIONS), resources=["*"])
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="RegisterInTheServiceTargetGroups",
            actions=[
                "elasticloadbalancing:DeregisterTargets",
                "elasticloadbalancing:RegisterTargets",
            ],
            resources=[group.target_group_arn for group in target_groups],
        )
    )
    rule.grant_traffic_shift(role)
    Validations.of(role).acknowledge(
        Acknowledgment(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="The Elastic Load Balancing Describe* calls ECS makes while it shifts "
            "traffic support no resource-level permission; they are read-only and the only "
            "actions on '*'.",
        )
    )
    cfn_service = service.node.default_child
    assert isinstance(cfn_service, ecs.CfnService)
    # aws-cdk-lib's AlternateTarget takes only an elbv2.ApplicationListenerRule, which is
    # what must not own this rule: the L1 escape hatch sets the advanced configuration.
    cfn_service.add_property_override(
        "LoadBalancers.0.AdvancedConfiguration",
        {
            "AlternateTargetGroupArn": target_groups[1].target_group_arn,
            "ProductionListenerRule": rule.rule_arn,
            "RoleArn": role.role_arn,
        },
    )
    # ECS uses the role as soon as the service exists: its policy must be there first.
    service.node.add_dependency(role)
    return rule
