"""Create, update and delete a listener rule without ever writing back the action ECS owns.

The table of requests is in the docstring of the handler folder. Each function takes an
Elastic Load Balancing client and returns the provider framework's response.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from .contract import CONDITIONS, LISTENER_ARN, PRIORITY, RULE_ARN, TARGET_GROUP_ARNS

if TYPE_CHECKING:
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client

logger = logging.getLogger(__name__)

PRIORITIES = (1, 50000)
_RULE_ARN_PART = ":listener-rule/"


class RuleError(Exception):
    """A request this handler refuses or cannot complete; the message says why."""


@dataclass(frozen=True)
class RuleSpec:
    """The resource's properties, checked before any call."""

    listener_arn: str
    priority: int
    conditions: tuple[Mapping[str, Any], ...]
    target_group_arns: tuple[str, str]

    @classmethod
    def parse(cls, properties: Mapping[str, Any]) -> RuleSpec:
        """The spec in ``properties``, or a RuleError naming every bad key."""
        problems = []
        listener = properties.get(LISTENER_ARN)
        if not isinstance(listener, str) or ":listener/" not in listener:
            problems.append(f"{LISTENER_ARN}: {listener!r} is not a listener ARN")
        priority = _priority(properties.get(PRIORITY))
        if priority is None:
            problems.append(
                f"{PRIORITY}: {properties.get(PRIORITY)!r} is not allowed; expected an "
                f"integer from {PRIORITIES[0]} to {PRIORITIES[1]}"
            )
        conditions = properties.get(CONDITIONS)
        if (
            not isinstance(conditions, list)
            or not conditions
            or not all(isinstance(c, dict) and "Field" in c for c in conditions)
        ):
            problems.append(f"{CONDITIONS}: expected a non-empty list of rule conditions")
        groups = properties.get(TARGET_GROUP_ARNS)
        if (
            not isinstance(groups, list)
            or len(groups) != 2
            or not all(isinstance(g, str) and ":targetgroup/" in g for g in groups)
            or groups[0] == groups[1]
        ):
            problems.append(f"{TARGET_GROUP_ARNS}: expected two different target group ARNs")
        if problems:
            raise RuleError("; ".join(problems))
        assert isinstance(listener, str)
        assert priority is not None
        assert isinstance(conditions, list)
        assert isinstance(groups, list)
        return cls(listener, priority, tuple(conditions), (groups[0], groups[1]))


def _priority(value: object) -> int | None:
    # CloudFormation passes every custom resource property as a string.
    try:
        number = int(str(value))
    except ValueError:
        return None
    return number if PRIORITIES[0] <= number <= PRIORITIES[1] else None


def initial_actions(spec: RuleSpec) -> list[dict[str, Any]]:
    """Forward to the first target group; the second is on the rule with weight 0, as ECS
    leaves it after a deployment, so both are associated with the load balancer."""
    primary, alternate = spec.target_group_arns
    return [
        {
            "Type": "forward",
            "ForwardConfig": {
                "TargetGroups": [
                    {"TargetGroupArn": primary, "Weight": 100},
                    {"TargetGroupArn": alternate, "Weight": 0},
                ]
            },
        }
    ]


def carried_actions(
    live: Sequence[Mapping[str, Any]], old_groups: Sequence[str], new_groups: Sequence[str]
) -> list[dict[str, Any]]:
    """The live actions, each old target group that is gone replaced by the new one in its
    place (first by first), weights unchanged. A group still named (the same two in another
    order, say) and groups that are neither stay as they are."""
    renamed = {
        old: new for old, new in zip(old_groups, new_groups, strict=True) if old not in new_groups
    }
    actions = []
    for live_action in live:
        action = copy.deepcopy(dict(live_action))
        forward = action.get("ForwardConfig")
        if action.get("Type") == "forward" and forward and forward.get("TargetGroups"):
            # The weighted form says it all; the single ARN beside it may name an old group.
            action.pop("TargetGroupArn", None)
            for group in forward["TargetGroups"]:
                group["TargetGroupArn"] = renamed.get(
                    group["TargetGroupArn"], group["TargetGroupArn"]
                )
        elif action.get("Type") == "forward" and "TargetGroupArn" in action:
            action["TargetGroupArn"] = renamed.get(
                action["TargetGroupArn"], action["TargetGroupArn"]
            )
        actions.append(action)
    return actions


def create(elb: ElasticLoadBalancingv2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    """A new rule forwarding to the first target group."""
    spec = RuleSpec.parse(event["ResourceProperties"])
    return _response(_create_rule(elb, spec, initial_actions(spec)))


def update(elb: ElasticLoadBalancingv2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    """New conditions and priority on the rule, its live action kept."""
    spec = RuleSpec.parse(event["ResourceProperties"])
    try:
        old = RuleSpec.parse(event["OldResourceProperties"])
    except RuleError:
        # The rollback of an update this handler refused before any call: the live rule
        # is still as the properties being restored describe it.
        logger.info("old properties refused earlier: the rule is as the new ones say")
        old = spec
    rule_arn = event["PhysicalResourceId"]
    live = _live_actions(elb, rule_arn)
    actions = carried_actions(live, old.target_group_arns, spec.target_group_arns)
    if spec.listener_arn != old.listener_arn:
        logger.info("listener changed: the rule moves, its action carried over")
        return _response(_create_rule(elb, spec, actions))
    changes: dict[str, Any] = {"RuleArn": rule_arn, "Conditions": list(spec.conditions)}
    if set(old.target_group_arns) - set(spec.target_group_arns):
        # A replaced target group: only then is the action written, with the live weights.
        changes["Actions"] = actions
    _call(elb.modify_rule, f"modify rule {rule_arn}", **changes)
    if spec.priority != old.priority:
        _call(
            elb.set_rule_priorities,
            f"set the priority of rule {rule_arn} to {spec.priority}",
            RulePriorities=[{"RuleArn": rule_arn, "Priority": spec.priority}],
        )
    logger.info("rule %s updated; its action stays %s", rule_arn, actions)
    return _response(rule_arn)


def delete(elb: ElasticLoadBalancingv2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    """The rule removed; one already gone, or a physical id that is no rule, is fine."""
    rule_arn = event["PhysicalResourceId"]
    if _RULE_ARN_PART not in rule_arn:
        logger.info("%s names no rule: nothing to delete", rule_arn)
        return {"PhysicalResourceId": rule_arn}
    try:
        elb.delete_rule(RuleArn=rule_arn)
    except ClientError as error:
        if _code(error) != "RuleNotFound":
            raise RuleError(f"delete rule {rule_arn}: {error}") from error
        logger.info("rule %s is already gone", rule_arn)
    return {"PhysicalResourceId": rule_arn}


def handle(elb: ElasticLoadBalancingv2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    """One request of any type."""
    request = event.get("RequestType")
    actions = {"Create": create, "Update": update, "Delete": delete}
    if request not in actions:
        raise RuleError(f"RequestType: {request!r} is not one of Create, Update, Delete")
    return actions[request](elb, event)


def client() -> ElasticLoadBalancingv2Client:
    """The function's Elastic Load Balancing client, made once per execution environment."""
    return boto3.client("elbv2", config=Config(retries={"mode": "standard"}))


def _create_rule(
    elb: ElasticLoadBalancingv2Client, spec: RuleSpec, actions: list[dict[str, Any]]
) -> str:
    created = _call(
        elb.create_rule,
        f"create a rule with priority {spec.priority} on {spec.listener_arn}",
        ListenerArn=spec.listener_arn,
        Priority=spec.priority,
        Conditions=list(spec.conditions),
        Actions=actions,
    )
    rule_arn: str = created["Rules"][0]["RuleArn"]
    logger.info("created rule %s with %s", rule_arn, actions)
    return rule_arn


def _live_actions(elb: ElasticLoadBalancingv2Client, rule_arn: str) -> list[dict[str, Any]]:
    described = _call(elb.describe_rules, f"describe rule {rule_arn}", RuleArns=[rule_arn])
    rules = described["Rules"]
    if not rules:
        raise RuleError(f"rule {rule_arn} no longer exists")
    return [dict(action) for action in rules[0]["Actions"]]


def _call(operation: Any, what: str, **arguments: Any) -> Any:
    try:
        return operation(**arguments)
    except ClientError as error:
        hints = {
            "PriorityInUse": "another rule on the listener has that priority",
            "RuleNotFound": "the rule was deleted outside CloudFormation; recreate it with "
            "the same priority and conditions, forwarding to the target group that serves, "
            "or remove the resource from the stack",
            "TargetGroupAssociationLimit": "a target group can serve one load balancer "
            "only; a rule on another load balancer needs target groups of its own",
        }
        hint = hints.get(_code(error))
        raise RuleError(f"{what}: {error}" + (f" ({hint})" if hint else "")) from error


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _response(rule_arn: str) -> dict[str, Any]:
    return {"PhysicalResourceId": rule_arn, "Data": {RULE_ARN: rule_arn}}
