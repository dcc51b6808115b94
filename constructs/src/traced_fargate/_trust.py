"""Trust policies that let a service assume a role only on behalf of this account, the
confused-deputy guard AWS recommends (``aws:SourceAccount`` and ``aws:SourceArn``)."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import Construct


def ecs_tasks_principal(scope: Construct) -> iam.ServicePrincipal:
    """``ecs-tasks.amazonaws.com`` for tasks of this account and region. ECS cannot be
    narrowed to one cluster, hence the wildcard ARN
    (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html)."""
    stack = Stack.of(scope)
    return iam.ServicePrincipal(
        "ecs-tasks.amazonaws.com",
        conditions={
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {"aws:SourceArn": stack.format_arn(service="ecs", resource="*")},
        },
    )


def restrict_trust(role: iam.IRole, principal: iam.IPrincipal) -> None:
    """Make ``principal`` (with its conditions) the only one ``role`` trusts: for a role
    that aws-cdk-lib creates itself, whose trust policy takes no conditions."""
    resource = role.node.default_child
    if not isinstance(resource, iam.CfnRole):
        raise TypeError(f"{role.node.path}: not a role created in this app")
    document = iam.PolicyDocument()
    principal.add_to_assume_role_policy(document)
    resource.assume_role_policy_document = document
