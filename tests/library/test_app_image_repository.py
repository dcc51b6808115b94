"""AppImageRepository: immutable, scanned, expiring by tag prefix; grants and pinned images."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from aws_cdk import (
    Acknowledgment,
    App,
    CfnElement,
    Environment,
    RemovalPolicy,
    Stack,
    Validations,
)
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from tests.conftest import new_app
from traced_fargate.app_image_repository import AppImageRepository
from traced_fargate.errors import InvalidPropsError

DIGEST = "sha256:" + "fedcba9876543210" * 4
ACCOUNT = "111111111111"
REGION = "eu-west-1"

# Sorted, as @aws-cdk/aws-iam:minimizePolicies renders them.
PULL_ACTIONS = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
]
PULL_PUSH_ACTIONS = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:CompleteLayerUpload",
    "ecr:GetDownloadUrlForLayer",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
]
TOKEN_STATEMENT = {"Action": "ecr:GetAuthorizationToken", "Effect": "Allow", "Resource": "*"}


@dataclass(frozen=True)
class Built:
    stack: Stack
    default: AppImageRepository
    custom: AppImageRepository
    untagged_only: AppImageRepository
    puller: iam.Role
    pusher: iam.Role
    execution_role: iam.IRole
    template: Template


@pytest.fixture(scope="module")
def built() -> Built:
    app = new_app()
    stack = Stack(app, "Images", env=Environment(account=ACCOUNT, region=REGION))
    default = AppImageRepository(stack, "Standard")
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    custom = AppImageRepository(
        stack,
        "Custom",
        repository_name="traced-fargate/app",
        untagged_expiry_days=3,
        # Deliberately not in retention order.
        tag_prefix_expiry_days={"feature": 7, "r": 400, "release": 30, "hotfix": 30},
        encryption_key=key,
        removal_policy=RemovalPolicy.DESTROY,
    )
    untagged_only = AppImageRepository(stack, "UntaggedOnly", tag_prefix_expiry_days={})

    puller = iam.Role(stack, "Puller", assumed_by=iam.AccountRootPrincipal())
    default.grant_pull(puller)
    pusher = iam.Role(stack, "Pusher", assumed_by=iam.AccountRootPrincipal())
    default.grant_pull_push(pusher)
    task = ecs.FargateTaskDefinition(stack, "Task")
    task.add_container("app", image=default.container_image("prod-1.4.2"))
    task.add_container("pinned", image=custom.container_image(DIGEST))

    assembly = app.synth()
    return Built(
        stack=stack,
        default=default,
        custom=custom,
        untagged_only=untagged_only,
        puller=puller,
        pusher=pusher,
        execution_role=task.obtain_execution_role(),
        template=Template.from_json(assembly.get_stack_by_name("Images").template),
    )


def _resource(built: Built, repository: AppImageRepository) -> dict[str, Any]:
    resource: dict[str, Any] = built.template.to_json()["Resources"][
        _logical_id(built, repository.repository)
    ]
    return resource


def _lifecycle_rules(built: Built, repository: AppImageRepository) -> list[dict[str, Any]]:
    text = _resource(built, repository)["Properties"]["LifecyclePolicy"]["LifecyclePolicyText"]
    rules: list[dict[str, Any]] = json.loads(text)["rules"]
    return rules


def _untagged(priority: int, days: int) -> dict[str, Any]:
    return {
        "rulePriority": priority,
        "description": f"Expire untagged images {days} days after push",
        "selection": {
            "tagStatus": "untagged",
            "countType": "sinceImagePushed",
            "countNumber": days,
            "countUnit": "days",
        },
        "action": {"type": "expire"},
    }


def _tagged(priority: int, prefix: str, days: int) -> dict[str, Any]:
    return {
        "rulePriority": priority,
        "description": f"Expire images tagged {prefix}* {days} days after push",
        "selection": {
            "tagStatus": "tagged",
            "tagPrefixList": [prefix],
            "countType": "sinceImagePushed",
            "countNumber": days,
            "countUnit": "days",
        },
        "action": {"type": "expire"},
    }


def _logical_id(built: Built, construct: IConstruct) -> str:
    resource = construct.node.default_child
    assert isinstance(resource, CfnElement)
    return str(built.stack.resolve(resource.logical_id))


def _policy_statements(built: Built, role: IConstruct) -> list[dict[str, Any]]:
    role_ref = {"Ref": _logical_id(built, role)}
    policies = [
        p
        for p in built.template.find_resources("AWS::IAM::Policy").values()
        if p["Properties"]["Roles"] == [role_ref]
    ]
    assert len(policies) == 1
    statements: list[dict[str, Any]] = policies[0]["Properties"]["PolicyDocument"]["Statement"]
    return statements


# --- the repository ----------------------------------------------------------


def test_repository_is_immutable_scanned_and_retained(built: Built) -> None:
    resource = _resource(built, built.default)
    assert resource["Properties"]["ImageTagMutability"] == "IMMUTABLE"
    assert resource["Properties"]["ImageScanningConfiguration"] == {"ScanOnPush": True}
    assert resource["DeletionPolicy"] == "Retain"
    assert resource["UpdateReplacePolicy"] == "Retain"


def test_default_name_is_left_to_cloudformation_and_images_are_kms_encrypted(
    built: Built,
) -> None:
    properties = _resource(built, built.default)["Properties"]
    assert "RepositoryName" not in properties
    # KMS under the AWS managed key aws/ecr: no key in the template.
    assert properties["EncryptionConfiguration"] == {"EncryptionType": "KMS"}


def test_aes256_only_when_chosen() -> None:
    stack = Stack(new_app(), "Aes")
    AppImageRepository(stack, "Images", encryption=ecr.RepositoryEncryption.AES_256)
    (repository,) = Template.from_stack(stack).find_resources("AWS::ECR::Repository").values()
    # CDK leaves AES-256 out: it is ECR's default.
    assert "EncryptionConfiguration" not in repository["Properties"]


def test_a_key_with_aes256_is_rejected() -> None:
    stack = Stack(new_app(), "AesKey")
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    with pytest.raises(InvalidPropsError, match="encryption_key: a key needs encryption KMS"):
        AppImageRepository(
            stack, "Images", encryption=ecr.RepositoryEncryption.AES_256, encryption_key=key
        )


def test_pulling_needs_no_kms_permission(built: Built) -> None:
    """ECR decrypts through the grants it creates on the key: pullers get ECR actions only."""
    for role in (built.puller, built.execution_role):
        for statement in _policy_statements(built, role):
            actions = statement["Action"]
            actions = actions if isinstance(actions, list) else [actions]
            assert not [a for a in actions if a.startswith("kms:")]


def test_name_key_and_removal_policy_when_given(built: Built) -> None:
    resource = _resource(built, built.custom)
    key_id = next(iter(built.template.find_resources("AWS::KMS::Key")))
    assert resource["Properties"]["RepositoryName"] == "traced-fargate/app"
    assert resource["Properties"]["EncryptionConfiguration"] == {
        "EncryptionType": "KMS",
        "KmsKey": {"Fn::GetAtt": [key_id, "Arn"]},
    }
    assert resource["DeletionPolicy"] == "Delete"
    assert resource["Properties"]["ImageTagMutability"] == "IMMUTABLE"


def test_repository_attribute_and_construct_id(built: Built) -> None:
    assert isinstance(built.default.repository, ecr.Repository)
    assert built.default.repository.node.path == "Images/Standard/Repository"


# --- lifecycle policy --------------------------------------------------------


def test_default_lifecycle_expires_untagged_then_prefixes_longest_retention_first(
    built: Built,
) -> None:
    assert _lifecycle_rules(built, built.default) == [
        _untagged(1, 10),
        _tagged(2, "prod", 100),
        _tagged(3, "dev", 10),  # ties in retention are ordered by prefix
        _tagged(4, "stage", 10),
    ]


def test_custom_lifecycle_orders_by_retention_not_by_mapping_order(built: Built) -> None:
    assert _lifecycle_rules(built, built.custom) == [
        _untagged(1, 3),
        _tagged(2, "r", 400),
        _tagged(3, "hotfix", 30),
        _tagged(4, "release", 30),
        _tagged(5, "feature", 7),
    ]


def test_every_prefix_has_its_own_rule(built: Built) -> None:
    # ECR selects an image for a multi-prefix rule only when it has all of them.
    for repository in (built.default, built.custom):
        for rule in _lifecycle_rules(built, repository)[1:]:
            assert len(rule["selection"]["tagPrefixList"]) == 1


def test_empty_mapping_keeps_every_tagged_image(built: Built) -> None:
    assert _lifecycle_rules(built, built.untagged_only) == [_untagged(1, 10)]


# --- grants and images -------------------------------------------------------


def test_grant_pull(built: Built) -> None:
    assert _policy_statements(built, built.puller) == [
        {
            "Action": PULL_ACTIONS,
            "Effect": "Allow",
            "Resource": built.stack.resolve(built.default.repository.repository_arn),
        },
        TOKEN_STATEMENT,
    ]


def test_grant_pull_push(built: Built) -> None:
    assert _policy_statements(built, built.pusher) == [
        {
            "Action": PULL_PUSH_ACTIONS,
            "Effect": "Allow",
            "Resource": built.stack.resolve(built.default.repository.repository_arn),
        },
        TOKEN_STATEMENT,
    ]


def test_container_images_reference_the_repository_by_tag_and_digest(built: Built) -> None:
    (task,) = built.template.find_resources("AWS::ECS::TaskDefinition").values()
    images = {c["Name"]: c["Image"] for c in task["Properties"]["ContainerDefinitions"]}
    default_ref = {"Ref": _logical_id(built, built.default.repository)}
    custom_ref = {"Ref": _logical_id(built, built.custom.repository)}
    assert images["app"]["Fn::Join"][1][-3:] == ["/", default_ref, ":prod-1.4.2"]
    assert images["pinned"]["Fn::Join"][1][-3:] == ["/", custom_ref, f"@{DIGEST}"]


def test_container_image_grants_pull_to_the_execution_role(built: Built) -> None:
    statements = _policy_statements(built, built.execution_role)
    assert [s["Action"] for s in statements] == [PULL_ACTIONS, "ecr:GetAuthorizationToken"]
    resources = statements[0]["Resource"]
    assert sorted(resources, key=json.dumps) == sorted(
        (
            built.stack.resolve(built.default.repository.repository_arn),
            built.stack.resolve(built.custom.repository.repository_arn),
        ),
        key=json.dumps,
    )


# --- validation --------------------------------------------------------------


def _repository(**props: Any) -> AppImageRepository:
    return AppImageRepository(Stack(new_app(), "Invalid"), "Repo", **props)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Traced-fargate", "'Traced-fargate' is not a valid repository name"),
        ("a", "'a' has 1 characters"),
        ("app/", "'app/' is not a valid repository name"),
        ("app__image", "'app__image' is not a valid repository name"),
        ("a" * 257, "has 257 characters"),
    ],
)
def test_invalid_repository_name_is_rejected(name: str, expected: str) -> None:
    with pytest.raises(InvalidPropsError) as error:
        _repository(repository_name=name)
    assert any(p.startswith("repository_name: ") and expected in p for p in error.value.problems)


@pytest.mark.parametrize("days", [0, -5, True, 1.5])
def test_invalid_untagged_expiry_days_is_rejected(days: Any) -> None:
    with pytest.raises(InvalidPropsError, match=f"untagged_expiry_days: {re.escape(repr(days))}"):
        _repository(untagged_expiry_days=days)


@pytest.mark.parametrize("prefix", ["", "-dev", ".dev", "dev*", "dev/x", "d" * 129])
def test_invalid_tag_prefix_is_rejected(prefix: str) -> None:
    with pytest.raises(InvalidPropsError) as error:
        _repository(tag_prefix_expiry_days={prefix: 10})
    (problem,) = error.value.problems
    assert problem.startswith(f"tag_prefix_expiry_days: {prefix!r} is not a valid tag prefix")


@pytest.mark.parametrize("days", [0, -1, False, "10"])
def test_invalid_prefix_expiry_days_are_rejected(days: Any) -> None:
    with pytest.raises(InvalidPropsError) as error:
        _repository(tag_prefix_expiry_days={"prod": 100, "dev": days})
    (problem,) = error.value.problems
    assert problem.startswith(f"tag_prefix_expiry_days['dev']: {days!r}")


def test_every_problem_is_reported_on_its_own_line() -> None:
    with pytest.raises(InvalidPropsError) as error:
        _repository(
            repository_name="App",
            untagged_expiry_days=0,
            tag_prefix_expiry_days={"*": 0},
        )
    lines = str(error.value).splitlines()
    assert len(lines) == len(error.value.problems) == 4
    assert all(line.startswith("Invalid/Repo: ") for line in lines)
    assert [line.split(": ")[1] for line in lines] == [
        "repository_name",
        "untagged_expiry_days",
        "tag_prefix_expiry_days",
        "tag_prefix_expiry_days['*']",
    ]


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("latest", "'latest' is a floating tag"),
        ("", "the empty string is not a tag"),
        ("prod 1.4", "'prod 1.4' is not a valid image tag"),
        ("sha256:" + "0" * 63, "is not a digest"),
    ],
)
def test_container_image_rejects_unpinned_or_invalid_tags(
    built: Built, tag: str, expected: str
) -> None:
    with pytest.raises(InvalidPropsError) as error:
        built.default.container_image(tag)
    (problem,) = error.value.problems
    assert problem.startswith("tag: ")
    assert expected in problem
    assert str(error.value).startswith("Images/Standard: tag: ")


# --- cdk-nag -----------------------------------------------------------------

GRANTEE_FINDINGS = ("AwsSolutions-IAM5[Resource::*]",)


def _nag_app(*, acknowledge: bool) -> App:
    app = new_app()
    stack = Stack(app, "Nag")
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    repository = AppImageRepository(stack, "Images")
    AppImageRepository(stack, "KmsImages", repository_name="nag/app", encryption_key=key)
    role = iam.Role(stack, "CiRole", assumed_by=iam.AccountRootPrincipal())
    repository.grant_pull_push(role)
    if acknowledge:
        Validations.of(role).acknowledge(
            *(
                Acknowledgment(id=finding, reason="ecr:GetAuthorizationToken has no resource")
                for finding in GRANTEE_FINDINGS
            )
        )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def test_nag_finds_only_the_token_wildcard_of_the_grantee() -> None:
    app = _nag_app(acknowledge=False)
    with pytest.raises(RuntimeError, match="ValidationFailed") as error:
        app.synth()
    report = str(error.value)
    ids = set(re.findall(r"Acknowledge with '(?:AwsSolutions::)?([^']+)'", report))
    assert ids == set(GRANTEE_FINDINGS)
    assert set(re.findall(r"^\s+(Nag/\S+)", report, flags=re.MULTILINE)) == {
        "Nag/CiRole/DefaultPolicy/Resource"
    }


def test_nag_passes_with_the_grantee_acknowledging_its_finding() -> None:
    _nag_app(acknowledge=True).synth()
