"""How cdk-nag names a finding on a resource whose ARN is a token."""

from __future__ import annotations

import json
from collections.abc import Iterator

from aws_cdk import Stack
from aws_cdk import aws_iam as iam


def nag_resource_text(stack: Stack, value: str) -> str:
    """The text cdk-nag prints for ``value`` in an ``IAM5[Resource::...]`` finding id.

    Pseudo parameters render as ``<AWS::Name>``, attributes as ``<LogicalId.Attribute>``;
    literal parts stay as they are; other intrinsic functions (``Fn::Select``, ...) as
    their JSON, the way cdk-nag writes them.
    """
    return _render(stack.resolve(value))


def _render(resolved: object) -> str:
    if isinstance(resolved, str):
        return resolved
    assert isinstance(resolved, dict), resolved
    if "Ref" in resolved:
        return f"<{resolved['Ref']}>"
    if "Fn::GetAtt" in resolved:
        logical_id, attribute = resolved["Fn::GetAtt"]
        return f"<{logical_id}.{attribute}>"
    if "Fn::Join" in resolved:
        return "".join(_render(part) for part in resolved["Fn::Join"][1])
    return json.dumps(resolved, separators=(",", ":"))


def nag_text_of_resolved(resolved: object) -> str:
    """:func:`nag_resource_text` of a value already resolved (e.g. a policy's
    ``Resource`` as ``Stack.resolve`` gives it)."""
    return _render(resolved)


def statements_of(policy: iam.Policy) -> Iterator[tuple[list[str], list[object]]]:
    """Each statement of ``policy`` as resolved at synth: (actions, resources), as lists."""
    document = Stack.of(policy).resolve(policy.document.to_json()) or {}
    for statement in document.get("Statement", []):
        actions = statement.get("Action", [])
        resources = statement.get("Resource", [])
        yield (
            actions if isinstance(actions, list) else [actions],
            resources if isinstance(resources, list) else [resources],
        )


def actions_on_any(policy: iam.Policy) -> set[str]:
    """The actions ``policy`` allows on ``'*'``: what a wildcard acknowledgment covers."""
    return {a for actions, resources in statements_of(policy) if "*" in resources for a in actions}
