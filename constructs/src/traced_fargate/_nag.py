"""How cdk-nag names a finding on a resource whose ARN is a token."""

from __future__ import annotations

from aws_cdk import Stack


def nag_resource_text(stack: Stack, value: str) -> str:
    """The text cdk-nag prints for ``value`` in an ``IAM5[Resource::...]`` finding id.

    Pseudo parameters render as ``<AWS::Name>``, attributes as ``<LogicalId.Attribute>``;
    literal parts stay as they are.
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
    return "".join(_render(part) for part in resolved["Fn::Join"][1])


def nag_text_of_resolved(resolved: object) -> str:
    """:func:`nag_resource_text` of a value already resolved (e.g. a policy's
    ``Resource`` as ``Stack.resolve`` gives it)."""
    return _render(resolved)
