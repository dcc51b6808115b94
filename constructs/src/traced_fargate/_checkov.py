"""Checkov suppressions, placed on the one template resource they are about.

Checkov reads ``Metadata: {checkov: {skip: [{id, comment}]}}`` on a CloudFormation resource
and reports the check as skipped there, with the comment as its reason. Like the cdk-nag
acknowledgments, each skip sits on the narrowest resource and says why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from aws_cdk import CfnResource, CustomResource, CustomResourceProviderBase, Stack
from aws_cdk import aws_ec2 as ec2
from constructs import IConstruct

CHECK_ID = re.compile(r"CKV2?_AWS_[0-9]+")

LAMBDA_TYPE = "AWS::Lambda::Function"

CUSTOM_RESOURCE_FUNCTION_SKIPS: tuple[tuple[str, str], ...] = (
    (
        "CKV_AWS_115",
        "Invoked by CloudFormation only, a few times per deploy. Reserved concurrency would "
        "take capacity from the account's pool, and fails to deploy on an account whose "
        "concurrency quota is the default of new accounts.",
    ),
    (
        "CKV_AWS_116",
        "Answers CloudFormation through the request's presigned response URL: a failure "
        "fails the stack event. A dead-letter queue would keep requests whose response URL "
        "has expired, which nothing can replay.",
    ),
    (
        "CKV_AWS_117",
        "Must stay outside the VPC: its reply to CloudFormation goes to a presigned S3 URL "
        "that the closed VPC (no internet route, a restricted S3 endpoint policy) would "
        "block, and the stack would hang until the custom resource times out.",
    ),
)
"""The checks a custom-resource function skips, each with its reason."""


def skip(construct: IConstruct, check_id: str, reason: str) -> None:
    """Skip checkov's ``check_id`` on ``construct``'s CloudFormation resource (the construct
    itself when it is one, else its default child), giving ``reason`` as the comment.

    Skipping the same check again replaces its reason; other skips stay.
    """
    if not CHECK_ID.fullmatch(check_id):
        raise ValueError(f"check_id: {check_id!r} is not a checkov check id (CKV_AWS_<n>)")
    if not reason.strip():
        raise ValueError(f"{check_id}: a skip needs a reason")
    resource = _resource(construct)
    existing: Any = resource.get_metadata("checkov") or {}
    skips = [entry for entry in existing.get("skip", []) if entry.get("id") != check_id]
    skips.append({"id": check_id, "comment": reason})
    resource.add_metadata("checkov", {**existing, "skip": skips})


def skip_all(constructs: Iterable[IConstruct], skips: Iterable[tuple[str, str]]) -> None:
    """:func:`skip` every ``(check_id, reason)`` of ``skips`` on each of ``constructs``."""
    pairs = list(skips)
    for construct in constructs:
        for check_id, reason in pairs:
            skip(construct, check_id, reason)


def functions_under(scope: IConstruct) -> list[CfnResource]:
    """The ``AWS::Lambda::Function`` resources in ``scope``'s subtree: those of L2
    functions and providers' bare handlers alike."""
    return [
        child
        for child in scope.node.find_all()
        if isinstance(child, CfnResource) and child.cfn_resource_type == LAMBDA_TYPE
    ]


def skip_restrict_default_sg_handler(vpc: ec2.Vpc) -> None:
    """Skip the custom-resource checks on the function that CDK deploys to remove the
    default security group's rules (``restrict_default_security_group=True``).

    That function's provider is a singleton of the stack, not a child of the VPC: it is the
    provider of the VPC's own custom resource, named after that resource's type.
    """
    stack = Stack.of(vpc)
    for custom in vpc.node.children:
        if not isinstance(custom, CustomResource):
            continue
        resource_type = _resource(custom).cfn_resource_type
        provider = stack.node.try_find_child(f"{resource_type}CustomResourceProvider")
        if isinstance(provider, CustomResourceProviderBase):
            skip_all(functions_under(provider), CUSTOM_RESOURCE_FUNCTION_SKIPS)


def _resource(construct: IConstruct) -> CfnResource:
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{construct.node.path}: has no CloudFormation resource to skip on")
    return resource
