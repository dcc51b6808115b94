"""Create, update and delete a listener rule without ever writing back the action ECS owns.

The table of requests is in the docstring of the handler folder. Each function takes an
Elastic Load Balancing client and returns the provider framework's response.
"""

from __future__ import annotations

import copy
import functools
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


def forward_weights(actions: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """The target groups the forward actions name, each with its weight (a plain forward
    to one group: weight 1)."""
    weights: dict[str, int] = {}
    for action in actions:
        if action.get("Type") != "forward":
            continue
        groups = (action.get("ForwardConfig") or {}).get("TargetGroups")
        if groups:
            weights.update({g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups})
        elif "TargetGroupArn" in action:
            weights[action["TargetGroupArn"]] = 1
    return weights


def replaced_groups(
    live: Sequence[Mapping[str, Any]], target_groups: Sequence[str]
) -> dict[str, str]:
    """Which group the live rule names stands for which new one in ``target_groups``: only
    an idle group (weight 0) is replaced, so no traffic moves. The serving group cannot be:
    its stand-in has no tasks until ECS deploys, and the rule would send everything there."""
    weights = forward_weights(live)
    gone = [g for g in weights if g not in target_groups]
    serving = [g for g in gone if weights[g] > 0]
    if serving:
        raise RuleError(
            f"{TARGET_GROUP_ARNS}: {serving[0]} serves traffic (weight {weights[serving[0]]}) "
            "and is no longer named; a new target group has no tasks until ECS deploys, so "
            "the rule cannot move traffic to it. Replace the idle group only, or deploy the "
            "service anew (a new construct id) when both must change"
        )
    new = [g for g in target_groups if g not in weights]
    if len(new) < len(gone):
        raise RuleError(f"{TARGET_GROUP_ARNS}: no new group stands for {', '.join(gone)}")
    return dict(zip(gone, new, strict=False))


def carried_actions(
    live: Sequence[Mapping[str, Any]], renamed: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The live actions with each group in ``renamed`` replaced, weights unchanged."""
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


def listener_of(rule_arn: str) -> str:
    """The listener ARN of a rule ARN (``...:listener-rule/app/n/id/listener/rule``)."""
    return rule_arn.replace(_RULE_ARN_PART, ":listener/", 1).rsplit("/", 1)[0]


def create(elb: ElasticLoadBalancingv2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    """A new rule forwarding to the first target group. A rule already at that priority
    makes it fail (PriorityInUse), whoever's it is: taking it over would leave it to the
    Delete of the resource that made it."""
    spec = RuleSpec.parse(event["ResourceProperties"])
    return _response(_create_rule(elb, spec, initial_actions(spec)))


def update(elb: ElasticLoadBalancingv2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    """New conditions and priority on the rule, its live action kept.

    Everything is compared with the live rule, not with the old properties: a rollback
    (the old properties sent back as new) then restores what is live, whatever of the
    failed update was applied.
    """
    spec = RuleSpec.parse(event["ResourceProperties"])
    rule_arn = event["PhysicalResourceId"]
    live = _live_rule(elb, rule_arn)
    renamed = replaced_groups(live["Actions"], spec.target_group_arns)
    actions = carried_actions(live["Actions"], renamed)
    if listener_of(rule_arn) != spec.listener_arn:
        logger.info("listener changed: the rule moves, its action carried over")
        return _response(_rule_on_listener(elb, spec, actions))
    changes: dict[str, Any] = {"RuleArn": rule_arn, "Conditions": list(spec.conditions)}
    if renamed:
        # An idle group replaced: only then is the action written, with the live weights.
        changes["Actions"] = actions
    _call(elb.modify_rule, f"modify rule {rule_arn}", **changes)
    if str(spec.priority) != str(live.get("Priority")):
        _call(
            elb.set_rule_priorities,
            f"set the priority of rule {rule_arn} to {spec.priority}",
            RulePriorities=[{"RuleArn": rule_arn, "Priority": spec.priority}],
        )
    logger.info("rule %s updated; its action stays %s", rule_arn, actions)
    return _response(rule_arn)


def delete(elb: ElasticLoadBalancingv2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    """The rule removed; one already gone is fine. (The provider framework answers the
    Delete that follows a failed Create itself: this sees only rules that were made.)"""
    rule_arn = event["PhysicalResourceId"]
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


@functools.cache
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


def _live_rule(elb: ElasticLoadBalancingv2Client, rule_arn: str) -> dict[str, Any]:
    # A rule that is gone raises RuleNotFound, which _call explains.
    described = _call(elb.describe_rules, f"describe rule {rule_arn}", RuleArns=[rule_arn])
    return dict(described["Rules"][0])


def _rule_on_listener(
    elb: ElasticLoadBalancingv2Client, spec: RuleSpec, actions: list[dict[str, Any]]
) -> str:
    """The rule on ``spec``'s listener: the one already there at its priority that forwards
    to both of these groups and nothing else (the original, when a move is rolled back:
    only this resource makes rules over both), with the conditions; else a new one with
    ``actions``."""
    marker: str | None = None
    while True:
        page = _call(
            elb.describe_rules,
            f"describe the rules of {spec.listener_arn}",
            ListenerArn=spec.listener_arn,
            **({"Marker": marker} if marker else {}),
        )
        for existing in page["Rules"]:
            groups = forward_weights(existing.get("Actions", []))
            if existing.get("Priority") == str(spec.priority) and set(groups) == set(
                spec.target_group_arns
            ):
                rule_arn: str = existing["RuleArn"]
                logger.info("rule %s is already there: it stays, with the conditions", rule_arn)
                _call(
                    elb.modify_rule,
                    f"modify rule {rule_arn}",
                    RuleArn=rule_arn,
                    Conditions=list(spec.conditions),
                )
                return rule_arn
        marker = page.get("NextMarker")
        if not marker:
            return _create_rule(elb, spec, actions)


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
