"""How cdk-nag names a finding on a resource whose ARN is a token."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import custom_resources as cr


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


def acknowledge_provider_framework(
    provider: cr.Provider, invoked: Iterable[lambda_.IFunction]
) -> None:
    """The two findings on what aws-cdk-lib's provider framework grants itself: invoking
    any version of each function in ``invoked``, and the AWS basic execution policy of its
    own functions."""
    stack = Stack.of(provider)
    for function in invoked:
        arn = nag_resource_text(stack, function.function_arn)
        Validations.of(provider).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{arn}:*]",
                reason="The provider framework invokes any version of this one function; "
                "the wildcard covers its version qualifiers only.",
            )
        )
    Validations.of(provider).acknowledge(
        Acknowledgment(
            id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
            "service-role/AWSLambdaBasicExecutionRole]",
            reason="The provider framework's own functions use the AWS basic execution "
            "policy, which allows writing their logs only.",
        )
    )
