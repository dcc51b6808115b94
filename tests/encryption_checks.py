"""Encryption checks over synthesized templates: log groups, SNS topics and their publishers.

Each ``*_problems`` function takes a template's ``Resources`` and returns one line per
problem, so a test asserts ``== []`` and shows every problem at once.

Publishers are what the template itself wires to a topic: CloudWatch alarm actions
(``AlarmActions``, ``OKActions``, ``InsufficientDataActions``). For each, the topic policy
and the topic's key policy are evaluated as IAM would for that service principal calling
from that alarm: an Allow must match (principal, action, resource, conditions) and no Deny
may. The evaluator knows the condition operators these policies use and reports any other
as a problem instead of guessing.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Resources = Mapping[str, Mapping[str, Any]]

ALARM_ACTION_KEYS = ("AlarmActions", "OKActions", "InsufficientDataActions")
CLOUDWATCH = "cloudwatch.amazonaws.com"
PARTITION = "aws"
# Stand-ins for an environment-agnostic stack's account and region.
SOME_ACCOUNT = "123456789012"
SOME_REGION = "eu-west-1"


def of_type(resources: Resources, resource_type: str) -> dict[str, Mapping[str, Any]]:
    return {k: r for k, r in resources.items() if r["Type"] == resource_type}


def log_group_problems(resources: Resources) -> list[str]:
    """Every log group is KMS-encrypted, has a retention, and, when its key is in the same
    template, the key's policy lets CloudWatch Logs use it."""
    problems = []
    for logical_id, group in of_type(resources, "AWS::Logs::LogGroup").items():
        properties = group.get("Properties", {})
        if "RetentionInDays" not in properties:
            problems.append(f"{logical_id}: no RetentionInDays (logs are kept forever)")
        key = properties.get("KmsKeyId")
        if key is None:
            problems.append(f"{logical_id}: no KmsKeyId")
            continue
        key_id = _local_key(key, resources)
        if key_id is None:
            continue  # a key of another stack: its own template is checked
        if not any(
            _names_service(s, "logs.") and _allows_actions(s, "kms:GenerateDataKey", "kms:Decrypt")
            for s in _statements(resources[key_id], "KeyPolicy")
        ):
            problems.append(f"{logical_id}: the policy of key {key_id} does not let Logs use it")
    return problems


@dataclass(frozen=True)
class Publisher:
    """A service that publishes to a topic, and the request context it publishes with."""

    description: str
    service: str
    context: Mapping[str, str]


def topic_publishers(
    resources: Resources, account: str | None, region: str | None
) -> dict[str, list[Publisher]]:
    """The publishers wired to each SNS topic of the template, keyed by the topic's id."""
    topics = of_type(resources, "AWS::SNS::Topic")
    found: dict[str, list[Publisher]] = {topic: [] for topic in topics}
    account = account or SOME_ACCOUNT
    region = region or SOME_REGION
    for alarm_id, alarm in of_type(resources, "AWS::CloudWatch::Alarm").items():
        properties = alarm.get("Properties", {})
        name = properties.get("AlarmName", f"generated-{alarm_id}")
        arn = f"arn:{PARTITION}:cloudwatch:{region}:{account}:alarm:{name}"
        for key in ALARM_ACTION_KEYS:
            for action in properties.get(key, []):
                topic = action.get("Ref") if isinstance(action, Mapping) else None
                if topic not in topics:
                    raise AssertionError(
                        f"{alarm_id}.{key}: {action!r} is no SNS topic of this template; "
                        "extend the check to follow it"
                    )
                found[topic].append(
                    Publisher(
                        f"alarm {alarm_id}",
                        CLOUDWATCH,
                        {
                            "aws:SourceAccount": account,
                            "aws:SourceArn": arn,
                            "aws:SecureTransport": "true",
                        },
                    )
                )
    return found


def sns_topic_problems(resources: Resources, account: str | None, region: str | None) -> list[str]:
    """Every topic is under a customer managed key of this template; every publisher wired
    to it is allowed by the topic policy and by the key policy."""
    problems = []
    context = _Context(account or SOME_ACCOUNT, region or SOME_REGION)
    for topic_id, publishers in topic_publishers(resources, account, region).items():
        key = resources[topic_id].get("Properties", {}).get("KmsMasterKeyId")
        key_id = _local_key(key, resources) if key is not None else None
        if key_id is None:
            problems.append(
                f"{topic_id}: not under a customer managed key of this stack ({key!r}); "
                "AWS services cannot publish to a topic under the AWS managed key"
            )
        topic_statements = [
            statement
            for policy in of_type(resources, "AWS::SNS::TopicPolicy").values()
            if {"Ref": topic_id} in policy["Properties"]["Topics"]
            for statement in _statements(policy, "PolicyDocument")
        ]
        for publisher in publishers:
            topic_arn = f"arn:{PARTITION}:sns:{context.region}:{context.account}:{topic_id}"
            request = _Request(publisher, "sns:Publish", topic_arn, {"Ref": topic_id})
            problems += [
                f"{topic_id}: topic policy, {publisher.description}: {p}"
                for p in _decision_problems(topic_statements, request, context)
            ]
            if key_id is None:
                continue
            key_statements = _statements(resources[key_id], "KeyPolicy")
            for action in ("kms:GenerateDataKey", "kms:Decrypt"):
                request = _Request(publisher, action, "*", None)
                problems += [
                    f"{topic_id}: key {key_id} policy, {publisher.description}, {action}: {p}"
                    for p in _decision_problems(key_statements, request, context)
                ]
    return problems


# --- a small policy evaluator -------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    account: str
    region: str


@dataclass(frozen=True)
class _Request:
    publisher: Publisher
    action: str
    resource_arn: str
    resource_ref: Any


def _decision_problems(
    statements: list[Mapping[str, Any]], request: _Request, context: _Context
) -> list[str]:
    problems: list[str] = []
    allowed = False
    for statement in statements:
        matched, unknown = _matches(statement, request, context)
        problems += unknown
        if matched and statement["Effect"] == "Deny":
            problems.append(f"denied by {statement.get('Sid', statement)!r}")
        allowed = allowed or (matched and statement["Effect"] == "Allow")
    if not allowed:
        problems.append("no statement allows it")
    return problems


def _matches(
    statement: Mapping[str, Any], request: _Request, context: _Context
) -> tuple[bool, list[str]]:
    if not _principal_matches(statement.get("Principal"), request.publisher.service):
        return False, []
    if not any(_wildcard(pattern, request.action, fold=True) for pattern in _actions(statement)):
        return False, []
    resources = statement.get("Resource", [])
    resources = resources if isinstance(resources, list) else [resources]
    if not any(
        resource == request.resource_ref
        or (isinstance(resource, str) and _wildcard(resource, request.resource_arn))
        for resource in resources
    ):
        return False, []
    return _conditions_match(statement.get("Condition", {}), request.publisher.context, context)


def _conditions_match(
    conditions: Mapping[str, Mapping[str, Any]], request_context: Mapping[str, str], ctx: _Context
) -> tuple[bool, list[str]]:
    operators: dict[str, Callable[[str, str], bool]] = {
        "StringEquals": _equals,
        "StringLike": _wildcard,
        "ArnEquals": _equals,
        "ArnLike": _wildcard,
        "Bool": lambda pattern, value: pattern.lower() == value.lower(),
    }
    for operator, entries in conditions.items():
        if operator not in operators:
            return False, [f"condition operator {operator} is unknown to this check"]
        for key, expected in entries.items():
            value = request_context.get(key)
            if value is None:
                return False, []  # the key is absent: the condition does not match
            patterns = expected if isinstance(expected, list) else [expected]
            if not any(operators[operator](_render(p, ctx), value) for p in patterns):
                return False, []
    return True, []


def _equals(pattern: str, value: str) -> bool:
    return pattern == value


def _render(value: Any, ctx: _Context) -> str:
    """A template value as the text IAM sees, pseudo parameters filled in."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    pseudo = {"AWS::Partition": PARTITION, "AWS::AccountId": ctx.account, "AWS::Region": ctx.region}
    if "Ref" in value and value["Ref"] in pseudo:
        return pseudo[value["Ref"]]
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(_render(part, ctx) for part in parts)
    raise AssertionError(f"cannot render {value!r}; extend the check")


def _principal_matches(principal: Any, service: str) -> bool:
    if principal == "*" or (isinstance(principal, Mapping) and principal.get("AWS") == "*"):
        return True
    if not isinstance(principal, Mapping):
        return False
    services = principal.get("Service", [])
    return service in (services if isinstance(services, list) else [services])


def _wildcard(pattern: str, value: str, *, fold: bool = False) -> bool:
    if fold:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern)


def _actions(statement: Mapping[str, Any]) -> list[str]:
    actions = statement.get("Action", [])
    return actions if isinstance(actions, list) else [actions]


def _statements(resource: Mapping[str, Any], document_key: str) -> list[Mapping[str, Any]]:
    statements: list[Mapping[str, Any]] = resource["Properties"][document_key]["Statement"]
    return statements


def _names_service(statement: Mapping[str, Any], prefix: str) -> bool:
    principal = statement.get("Principal")
    if statement.get("Effect") != "Allow" or not isinstance(principal, Mapping):
        return False
    services = principal.get("Service", [])
    services = services if isinstance(services, list) else [services]
    return any(str(s).startswith(prefix) for s in _texts(services))


def _texts(values: list[Any]) -> Iterator[str]:
    for value in values:
        if isinstance(value, str):
            yield value
        elif isinstance(value, Mapping) and "Fn::Join" in value:
            yield "".join(p if isinstance(p, str) else "<token>" for p in value["Fn::Join"][1])


def _allows_actions(statement: Mapping[str, Any], *actions: str) -> bool:
    return all(
        any(_wildcard(pattern, action, fold=True) for pattern in _actions(statement))
        for action in actions
    )


def _local_key(reference: Any, resources: Resources) -> str | None:
    """The logical id of the AWS::KMS::Key that ``reference`` names in this template."""
    if isinstance(reference, Mapping):
        target = reference.get("Ref") or (reference.get("Fn::GetAtt") or [None])[0]
        if target in resources and resources[target]["Type"] == "AWS::KMS::Key":
            return str(target)
    return None
