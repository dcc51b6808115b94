"""An ALB listener rule whose traffic split belongs to ECS blue/green deployments."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aws_cdk import (
    Acknowledgment,
    CustomResource,
    Duration,
    Fn,
    RemovalPolicy,
    Stack,
    Token,
    Validations,
)
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from traced_fargate._checkov import CUSTOM_RESOURCE_FUNCTION_SKIPS, functions_under, skip, skip_all
from traced_fargate._functions import handler_code, python_function
from traced_fargate._log_encryption import log_encryption_key
from traced_fargate._nag import acknowledge_provider_framework, nag_resource_text
from traced_fargate._props import has_attributes, int_problems, kind_problems
from traced_fargate.errors import raise_if_problems
from traced_fargate.ingress import LISTENER_PRIORITY
from traced_fargate.internal_load_balancer import is_listener
from traced_fargate.production_listener_rule.handler.index import contract

HANDLER_DIR = Path(__file__).resolve().parent / "handler"

READ_ACTIONS = (
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
)
"""What ECS reads while it shifts traffic; none takes a resource ARN."""


class ProductionListenerRule(Construct):
    """A listener rule that forwards to two target groups, for ECS to shift traffic on.

    ECS blue/green deployments rewrite the rule's forward action (the target groups'
    weights) on every deployment. An ``elbv2.ApplicationListenerRule`` would have
    CloudFormation write its own action back whenever the rule's properties change
    (aws-cdk#36649), sending traffic to a target group whose tasks ECS may have stopped.
    This rule is a custom resource instead: CloudFormation owns its listener, priority and
    conditions, and the action is written only at create (100 to the first target group,
    0 to the second). A change of conditions or priority keeps the live action; replacing
    the idle target group (weight 0) carries the live weights over, and replacing the
    serving one is refused, since its stand-in has no tasks; a new listener gets a new rule
    with the live action, and the old one is deleted.

    The function runs outside any VPC: it calls the Elastic Load Balancing API, and its
    reply to CloudFormation goes to a presigned S3 URL that a closed VPC would block.

    Children: ``Function``, ``FunctionRole``, ``Provider``, ``Logs``, ``LogKey`` (without
    ``log_encryption_key``), ``Resource`` (the ``Custom::ProductionListenerRule``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        listener: elbv2.IApplicationListener,
        priority: int,
        conditions: Sequence[elbv2.ListenerCondition],
        target_groups: Sequence[elbv2.IApplicationTargetGroup],
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        log_encryption_key: kms.IKey | None = None,
    ) -> None:
        """
        :param listener: the ALB listener the rule is on.
        :param priority: the rule's priority on the listener, 1-50000.
        :param conditions: when the rule matches, at least one
            (``ListenerCondition.path_patterns(["/*"])`` for every request).
        :param target_groups: two: the one that serves first, and the alternate one that
            each deployment's new tasks register in.
        :param log_retention: retention of the function's logs. Default: one month.
        :param log_encryption_key: KMS key of the function's log group; its policy must let
            CloudWatch Logs use it. Default: a new rotated key.
        """
        super().__init__(scope, construct_id)
        groups = list(target_groups) if isinstance(target_groups, Sequence) else []
        problems = [
            *kind_problems("listener", listener, is_listener, "an elbv2.IApplicationListener"),
            *int_problems("priority", priority, *LISTENER_PRIORITY),
        ]
        if (
            not isinstance(conditions, Sequence)
            or not conditions
            or not all(isinstance(c, elbv2.ListenerCondition) for c in conditions)
        ):
            problems.append(
                "conditions: expected at least one elbv2.ListenerCondition, e.g. "
                "ListenerCondition.path_patterns(['/*'])"
            )
        if len(groups) != 2 or not all(has_attributes("target_group_arn")(g) for g in groups):
            problems.append("target_groups: expected two elbv2.IApplicationTargetGroup")
        raise_if_problems(self.node.path, problems)

        stack = Stack.of(self)
        self.listener = listener
        """The listener the rule is on."""
        self.target_groups: tuple[elbv2.IApplicationTargetGroup, ...] = tuple(groups)
        """The two target groups: the first one served at create, then the alternate."""
        self.log_encryption_key: kms.IKey = log_encryption_key or log_encryption_key_of(self)
        """The KMS key of the function's log group."""
        log_group = logs.LogGroup(
            self,
            "Logs",
            retention=log_retention,
            encryption_key=self.log_encryption_key,
            removal_policy=RemovalPolicy.DESTROY,
        )
        role = iam.Role(
            self,
            "FunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Creates, changes and deletes one production listener rule",
        )
        log_group.grant_write(role)
        self.function = python_function(
            self,
            "Function",
            code=handler_code(HANDLER_DIR),
            handler="index.on_event",
            role=role,
            timeout=Duration.minutes(1),
            log_group=log_group,
            description="Keeps a listener rule's conditions; ECS owns its forward action",
        )
        """The function that creates, changes and deletes the rule."""
        self._rules = rules_of_load_balancer(listener.listener_arn)
        self._grant_rule_calls()
        self.provider = cr.Provider(
            self, "Provider", on_event_handler=self.function, log_group=log_group
        )
        """The custom-resource provider."""
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=self.provider.service_token,
            resource_type=contract.RESOURCE_TYPE,
            properties={
                contract.LISTENER_ARN: listener.listener_arn,
                contract.PRIORITY: priority,
                contract.CONDITIONS: [api_condition(stack, c) for c in conditions],
                contract.TARGET_GROUP_ARNS: [g.target_group_arn for g in groups],
            },
        )
        """The ``Custom::ProductionListenerRule`` resource."""
        for group in groups:
            # The target groups serve this load balancer through this rule: whatever
            # registers targets in them (an ECS service) waits for it.
            if isinstance(group, elbv2.ApplicationTargetGroup):
                group.register_listener(listener, self.resource)
        self._acknowledge(stack)
        skip_all(functions_under(self), CUSTOM_RESOURCE_FUNCTION_SKIPS)
        for function in functions_under(self.provider):
            skip(
                function,
                "CKV_AWS_173",
                "The provider framework's environment holds only the ARN of the function "
                "it calls, no secrets; Lambda encrypts it at rest.",
            )

    @property
    def rule_arn(self) -> str:
        """The rule's ARN: the ECS service's production (or test) listener rule."""
        return self.resource.get_att_string(contract.RULE_ARN)

    def grant_traffic_shift(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` (ECS's infrastructure role) shift traffic on this rule."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["elasticloadbalancing:ModifyRule"],
            resource_arns=[self.rule_arn],
        )

    def _grant_rule_calls(self) -> None:
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                sid="ReadRules", actions=["elasticloadbalancing:DescribeRules"], resources=["*"]
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                sid="CreateOnThisListener",
                actions=["elasticloadbalancing:CreateRule"],
                resources=[self.listener.listener_arn],
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                sid="ChangeRulesOfThisLoadBalancer",
                actions=[
                    "elasticloadbalancing:DeleteRule",
                    "elasticloadbalancing:ModifyRule",
                    "elasticloadbalancing:SetRulePriorities",
                ],
                resources=[self._rules],
            )
        )

    def _acknowledge(self, stack: Stack) -> None:
        role = self.function.role
        assert role is not None
        Validations.of(role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="elasticloadbalancing:DescribeRules supports no resource-level "
                "permission; it is read-only and the only action on '*'.",
            )
        )
        Validations.of(role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{nag_resource_text(stack, self._rules)}]",
                reason="A rule's id is unknown before it exists; the wildcard covers the "
                "rules of this one load balancer, which the function moves between its "
                "listeners.",
            )
        )
        acknowledge_provider_framework(self.provider, [self.function])


def rules_of_load_balancer(listener_arn: str) -> str:
    """The ARN pattern of every rule on the listener's load balancer:
    ``...:listener/app/<name>/<id>/<listener>`` -> ``...:listener-rule/app/<name>/<id>/*``."""
    if not Token.is_unresolved(listener_arn):
        prefix, path = listener_arn.split(":listener/", 1)
        return f"{prefix}:listener-rule/{'/'.join(path.split('/')[:3])}/*"
    path = Fn.select(1, Fn.split(":listener/", listener_arn))
    return Fn.join(
        "",
        [
            Fn.select(0, Fn.split(":listener/", listener_arn)),
            ":listener-rule/app/",
            Fn.select(1, Fn.split("/", path)),
            "/",
            Fn.select(2, Fn.split("/", path)),
            "/*",
        ],
    )


def api_condition(stack: Stack, condition: elbv2.ListenerCondition) -> dict[str, Any]:
    """``condition`` in the Elastic Load Balancing API's shape (``Field``,
    ``PathPatternConfig: {Values}``, ...), as ``CreateRule`` and ``ModifyRule`` take it."""
    rendered = stack.resolve(condition.render_raw_condition())
    return _pascal_keys(rendered)


def _pascal_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {_pascal(k): _pascal_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_pascal_keys(v) for v in value]
    return value


def _pascal(key: str) -> str:
    # Intrinsic functions (Ref, Fn::GetAtt, ...) keep their names.
    return key if key.startswith(("Fn::", "Ref")) else key[:1].upper() + key[1:]


def log_encryption_key_of(rule: ProductionListenerRule) -> kms.Key:
    """A new key for the rule function's logs."""
    return log_encryption_key(
        rule,
        "LogKey",
        description="Encrypts the logs of a production listener rule's function",
        removal_policy=RemovalPolicy.DESTROY,
    )
