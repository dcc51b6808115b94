"""What ECS Exec adds to a traced service: the SSM agent's writable volumes, and a narrow
acknowledgment of the grants aws-cdk-lib gives the task role for it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jsii
from aws_cdk import Acknowledgment, Aspects, IAspect, Validations
from aws_cdk import aws_iam as iam
from constructs import IConstruct

from traced_fargate._nag import actions_on_any, statements_of
from traced_fargate._nag import nag_text_of_resolved as nag_text
from traced_fargate.ecs_exec import SSM_MESSAGES_ACTIONS

if TYPE_CHECKING:
    from traced_fargate.traced_task_definition import TracedTaskDefinition

EXEC_WILDCARD_ACTIONS = frozenset({*SSM_MESSAGES_ACTIONS, "logs:DescribeLogGroups"})
EXEC_ENDPOINTS = (
    ("ssmmessages", "SSM_MESSAGES", "the SSM agent opens its session channels through"),
    ("kms", "KMS", "the SSM agent decrypts the session's data key through"),
)
"""The interface endpoints ECS Exec needs in a closed VPC (besides ``logs``)."""
EXEC_LOG_ACTIONS = frozenset(
    {"logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"}
)


def prepare_exec(task_definition: TracedTaskDefinition) -> None:
    """The SSM agent's writable volumes, and the acknowledgment of the grants that
    aws-cdk-lib adds to the task role's default policy: the four ``ssmmessages`` actions
    and ``logs:DescribeLogGroups`` (the agent checks the session log group) on ``*``, none
    of which take a resource ARN, and the session log group's streams."""
    task_definition.add_exec_agent_volumes()
    Aspects.of(task_definition).add(_ExecGrantAcknowledgment(task_definition))


@jsii.implements(IAspect)
class _ExecGrantAcknowledgment:
    """Acknowledges ``AwsSolutions-IAM5[Resource::*]`` on the task role's default policy
    only when the actions on ``*`` there are exactly the exec ones; any other wildcard
    that lands in that policy is still reported."""

    def __init__(self, task: TracedTaskDefinition) -> None:
        self._task = task

    def visit(self, node: IConstruct) -> None:
        if node is not self._task:
            return
        policy = self._task.task_role.node.try_find_child("DefaultPolicy")
        if not isinstance(policy, iam.Policy):
            return
        for actions, resources in statements_of(policy):
            if set(actions) == EXEC_LOG_ACTIONS and len(resources) == 1 and "*" not in resources:
                # The session log group's streams: '<log group ARN>:*'.
                Validations.of(policy).acknowledge(
                    Acknowledgment(
                        id=f"AwsSolutions-IAM5[Resource::{nag_text(resources[0])}]",
                        reason="ECS Exec writes each session's output to a stream of its "
                        "own in the cluster's session log group; the grant covers that "
                        "group's streams only.",
                    )
                )
        wildcard_actions = actions_on_any(policy)
        if wildcard_actions and wildcard_actions <= EXEC_WILDCARD_ACTIONS:
            Validations.of(policy).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-IAM5[Resource::*]",
                    reason="ECS Exec: the ssmmessages channel actions and "
                    "logs:DescribeLogGroups support no resource-level permission; they "
                    "are the only actions on '*' in this policy.",
                )
            )
