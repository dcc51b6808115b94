"""checkov's view of the egress: what the provider framework's resources cannot meet, and why."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import custom_resources as cr
from constructs import Construct

from traced_fargate._checkov import (
    CUSTOM_RESOURCE_FUNCTION_SKIPS,
    functions_under,
    skip,
    skip_all,
)
from traced_fargate._nag import actions_on_any

# The provider framework's statement for its waiter state machine's logs, on '*': Step
# Functions' log-delivery actions (none has resource-level permissions) and the two
# log-writing ones that the framework adds to the same statement.
_WAITER_LOG_ACTIONS = frozenset(
    {
        "logs:CreateLogDelivery",
        "logs:CreateLogStream",
        "logs:DeleteLogDelivery",
        "logs:DescribeLogGroups",
        "logs:DescribeResourcePolicies",
        "logs:GetLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutLogEvents",
        "logs:PutResourcePolicy",
        "logs:UpdateLogDelivery",
    }
)


def _only_waiter_logging_on_any(policy: iam.Policy) -> bool:
    """Whether every action that ``policy`` allows on ``'*'`` is one of the waiter's
    logging actions, so that a wildcard added for anything else is still reported."""
    on_any = actions_on_any(policy)
    return bool(on_any) and on_any <= _WAITER_LOG_ACTIONS


def skip_checkov(egress: Construct, provider: cr.Provider) -> None:
    """checkov skips, with reasons, for what aws-cdk-lib's provider framework creates."""
    # Every function here answers CloudFormation: the handlers and the provider's own.
    skip_all(functions_under(egress), CUSTOM_RESOURCE_FUNCTION_SKIPS)
    for function in functions_under(provider):
        skip(
            function,
            "CKV_AWS_173",
            "The provider framework's environment holds only the ARNs of the functions "
            "and the state machine it calls, no secrets; Lambda encrypts it at rest.",
        )
    for machine in provider.node.find_all():
        if not isinstance(machine, cr.WaiterStateMachine):
            continue
        for policy in machine.node.find_all():
            if isinstance(policy, iam.Policy) and _only_waiter_logging_on_any(policy):
                skip(
                    policy,
                    "CKV_AWS_111",
                    "The only actions on '*' are the provider framework's one statement "
                    "for its waiter state machine's logs: Step Functions log delivery "
                    "(logs:CreateLogDelivery and related, no resource-level permissions) "
                    "with logs:CreateLogStream and logs:PutLogEvents. Only "
                    "states.amazonaws.com assumes the role, for this one state machine, "
                    "whose logs go to this construct's log group.",
                )
