"""cdk-nag acknowledgments and checkov skips for the resources CDK Pipelines creates itself.

Each wildcard in those roles' policies is matched against a known grant of CDK Pipelines
(its artifact bucket and key, CodeBuild's own log groups and report groups, the bootstrap
roles, registry login) and acknowledged on that one policy with the grant's reason. A
wildcard that matches none stays a finding, so a new one is reviewed, not absorbed.
"""

from __future__ import annotations

import re
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations, pipelines
from aws_cdk import aws_iam as iam

from traced_fargate import _checkov
from traced_fargate._nag import nag_resource_text

_ARTIFACTS = (
    "CDK Pipelines' grant on its own artifact bucket and that bucket's key: object and key "
    "actions of the read/write grant, on this pipeline's artifacts only."
)
_BUILD_OUTPUT = (
    "CodeBuild writes its own log streams and test reports: the log group and report groups "
    "named after this project, whose stream and report names exist only at run time."
)
_ACTION_REASONS = {
    "s3:Abort*": _ARTIFACTS,
    "s3:DeleteObject*": _ARTIFACTS,
    "s3:GetBucket*": _ARTIFACTS,
    "s3:GetObject*": _ARTIFACTS,
    "s3:List*": _ARTIFACTS,
    "kms:GenerateDataKey*": _ARTIFACTS,
    "kms:ReEncrypt*": _ARTIFACTS,
}
_RESOURCE_ONLY_ACTIONS = {
    frozenset({"ecr:GetAuthorizationToken"}): (
        "ecr:GetAuthorizationToken supports no resource-level permissions; pushes and "
        "pulls are limited to the environments' repositories by their tag."
    ),
    frozenset({"cloudformation:DescribeStacks", "s3:ListBucket"}): (
        "Self-mutation reads the stacks it compares (the CDK CLI's own lookups); read-only."
    ),
    frozenset({"codebuild:BatchGetBuilds", "codebuild:StartBuild", "codebuild:StopBuild"}): (
        "CDK Pipelines' asset publishing drives its own CodeBuild builds."
    ),
}
_RESOURCE_PATTERNS = (
    (re.compile(r"<[A-Za-z0-9]+ArtifactsBucket[A-Za-z0-9]+\.Arn>/\*"), _ARTIFACTS),
    (
        re.compile(r"arn:aws[a-z-]*:logs:[a-z0-9-]+:\d{12}:log-group:/aws/codebuild/.*"),
        _BUILD_OUTPUT,
    ),
    (re.compile(r"arn:aws[a-z-]*:codebuild:[a-z0-9-]+:\d{12}:report-group/.*"), _BUILD_OUTPUT),
    (
        re.compile(r"arn:\*:iam::\d{12}:role/\*"),
        "Self-mutation assumes the CDK bootstrap roles, chosen by their bootstrap-role tag "
        "(the statement's condition), whose names depend on the bootstrap qualifier.",
    ),
    (
        re.compile(r"arn:aws[a-z-]*:ecr:[a-z0-9-]+:\d{12}:repository/\*"),
        "The app repository's name is generated in another stack; the statement applies "
        "only to the repository that carries that environment's release tag.",
    ),
)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _findings(stack: Stack, statement: dict[str, Any]) -> dict[str, str]:
    """Finding id -> reason, for each wildcard of ``statement`` that a known grant explains."""
    found: dict[str, str] = {}
    actions = [str(a) for a in _as_list(statement.get("Action", []))]
    for action in actions:
        if "*" in action and action in _ACTION_REASONS:
            found[f"AwsSolutions-IAM5[Action::{action}]"] = _ACTION_REASONS[action]
    for resource in _as_list(statement.get("Resource", [])):
        if isinstance(resource, dict) and "Fn::Sub" in resource:
            continue  # CDK Pipelines' bootstrap role names: no wildcard
        text = nag_resource_text(stack, resource) if not isinstance(resource, str) else resource
        if "*" not in text:
            continue
        if text == "*":
            reason = _RESOURCE_ONLY_ACTIONS.get(frozenset(actions))
        else:
            reason = next((r for p, r in _RESOURCE_PATTERNS if p.fullmatch(text)), None)
        if reason is not None:
            found[f"AwsSolutions-IAM5[Resource::{text}]"] = reason
    return found


def acknowledge_pipeline(pipeline: pipelines.CodePipeline) -> None:
    """Acknowledge, on each policy of the pipeline, the wildcards its known grants need, and
    the artifact bucket's access logs."""
    stack = Stack.of(pipeline)
    for construct in pipeline.node.find_all():
        if not isinstance(construct, iam.CfnPolicy):
            continue
        document = stack.resolve(construct.policy_document)
        found: dict[str, str] = {}
        for statement in document.get("Statement", []):
            found.update(_findings(stack, statement))
        for finding, reason in found.items():
            Validations.of(construct).acknowledge(Acknowledgment(id=finding, reason=reason))
        if "/Assets/FileRole/" in construct.node.path:
            _checkov.skip(
                construct,
                "CKV_AWS_111",
                "CDK Pipelines' asset publishing role starts and stops the builds of its own "
                "asset projects; CodeBuild names them at synth, the grant is CDK's.",
            )
    bucket = pipeline.pipeline.artifact_bucket
    access_logs = (
        "Holds only build artifacts that the pipeline itself reads and writes "
        "(KMS-encrypted, SSL-only); every access is a CodePipeline or CodeBuild action "
        "recorded in CloudTrail."
    )
    Validations.of(bucket).acknowledge(Acknowledgment(id="AwsSolutions-S1", reason=access_logs))
    _checkov.skip(bucket, "CKV_AWS_18", access_logs)
    _checkov.skip(
        bucket,
        "CKV_AWS_21",
        "Each execution writes new artifact objects and the source is in the repository: "
        "versions of old artifacts would restore nothing.",
    )
