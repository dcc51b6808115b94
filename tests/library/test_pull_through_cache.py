"""PullThroughCache: the rule, the pre-created cache repositories, the grant, image URIs."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from aws_cdk import (
    Acknowledgment,
    App,
    CfnParameter,
    Environment,
    RemovalPolicy,
    Stack,
    Validations,
)
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from tests.conftest import new_app
from traced_fargate.errors import InvalidPropsError
from traced_fargate.pull_through_cache import PullThroughCache

XRAY = "xray/aws-xray-daemon"
OTEL = "aws-observability/aws-otel-collector"
NODE_EXPORTER = "prometheus/node-exporter"
DIGEST = "sha256:" + "0123456789abcdef" * 4
ACCOUNT = "111111111111"
REGION = "eu-west-1"

PULL_ACTIONS = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:BatchImportUpstreamImage",
    "ecr:CreateRepository",
    "ecr:GetDownloadUrlForLayer",
]
TOKEN_STATEMENT = {"Action": "ecr:GetAuthorizationToken", "Effect": "Allow", "Resource": "*"}


@dataclass(frozen=True)
class Built:
    agnostic_stack: Stack
    agnostic_cache: PullThroughCache
    agnostic: Template
    pinned_stack: Stack
    pinned_cache: PullThroughCache
    pinned: Template


@pytest.fixture(scope="module")
def built() -> Built:
    app = new_app()

    agnostic_stack = Stack(app, "Agnostic")
    agnostic_cache = PullThroughCache(
        agnostic_stack,
        "Cache",
        repository_prefix="dev-ecr-public",
        cached_repositories=[XRAY, OTEL],
    )
    puller = iam.Role(
        agnostic_stack, "Puller", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com")
    )
    agnostic_cache.grant_pull(puller)
    task = ecs.FargateTaskDefinition(agnostic_stack, "Task")
    task.add_container("xray", image=agnostic_cache.container_image(XRAY, "3.3.14"))
    task.add_container("otel", image=agnostic_cache.container_image(OTEL, DIGEST))

    pinned_stack = Stack(app, "Pinned", env=Environment(account=ACCOUNT, region=REGION))
    key = kms.Key(pinned_stack, "Key", enable_key_rotation=True)
    pinned_cache = PullThroughCache(
        pinned_stack,
        "Cache",
        repository_prefix="prod/ecr-public",
        upstream_registry_url="quay.io",
        cached_repositories=[NODE_EXPORTER],
        max_image_count=3,
        removal_policy=RemovalPolicy.RETAIN,
        encryption_key=key,
    )
    pinned_puller = iam.Role(
        pinned_stack, "Puller", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com")
    )
    pinned_cache.grant_pull(pinned_puller)

    assembly = app.synth()
    return Built(
        agnostic_stack=agnostic_stack,
        agnostic_cache=agnostic_cache,
        agnostic=Template.from_json(assembly.get_stack_by_name("Agnostic").template),
        pinned_stack=pinned_stack,
        pinned_cache=pinned_cache,
        pinned=Template.from_json(assembly.get_stack_by_name("Pinned").template),
    )


def _repositories(template: Template) -> dict[str, Mapping[str, Any]]:
    """Cache repositories keyed by their RepositoryName."""
    found = template.find_resources("AWS::ECR::Repository")
    return {r["Properties"]["RepositoryName"]: r for r in found.values()}


def _logical_id(stack: Stack, construct: Any) -> str:
    return str(stack.resolve(construct.node.default_child.logical_id))


def _policy_statements(template: Template, role_id: str) -> list[dict[str, Any]]:
    policies = template.find_resources(
        "AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": Match.string_like_regexp(role_id)}]}}
    )
    assert len(policies) == 1
    statements: list[dict[str, Any]] = next(iter(policies.values()))["Properties"][
        "PolicyDocument"
    ]["Statement"]
    return statements


# --- the rule ---------------------------------------------------------------


def test_rule_maps_the_prefix_to_the_upstream_registry(built: Built) -> None:
    built.agnostic.resource_count_is("AWS::ECR::PullThroughCacheRule", 1)
    rule = built.agnostic.find_resources("AWS::ECR::PullThroughCacheRule")
    assert next(iter(rule.values()))["Properties"] == {
        "EcrRepositoryPrefix": "dev-ecr-public",
        "UpstreamRegistryUrl": "public.ecr.aws",
    }
    built.pinned.has_resource_properties(
        "AWS::ECR::PullThroughCacheRule",
        {"EcrRepositoryPrefix": "prod/ecr-public", "UpstreamRegistryUrl": "quay.io"},
    )


def test_attributes_expose_the_props_and_children(built: Built) -> None:
    cache = built.agnostic_cache
    assert cache.repository_prefix == "dev-ecr-public"
    assert cache.upstream_registry_url == "public.ecr.aws"
    assert isinstance(cache.rule, ecr.CfnPullThroughCacheRule)
    assert cache.rule.node.id == "Rule"
    assert list(cache.repositories) == [XRAY, OTEL]
    assert [r.node.id for r in cache.repositories.values()] == [
        "xray--aws-xray-daemon",
        "aws-observability--aws-otel-collector",
    ]
    with pytest.raises(TypeError):
        cache.repositories["x/y"] = cache.repositories[XRAY]  # type: ignore[index]


# --- the pre-created cache repositories -------------------------------------


def test_one_repository_per_cached_path_named_prefix_slash_path(built: Built) -> None:
    assert set(_repositories(built.agnostic)) == {
        "dev-ecr-public/xray/aws-xray-daemon",
        "dev-ecr-public/aws-observability/aws-otel-collector",
    }
    assert set(_repositories(built.pinned)) == {"prod/ecr-public/prometheus/node-exporter"}
    resolved = built.agnostic_stack.resolve(built.agnostic_cache.repositories[XRAY].repository_name)
    assert resolved == {
        "Ref": _logical_id(built.agnostic_stack, built.agnostic_cache.repositories[XRAY])
    }


def test_repositories_scan_on_push_and_keep_mutable_tags(built: Built) -> None:
    for repository in _repositories(built.agnostic).values():
        properties = repository["Properties"]
        assert properties["ImageScanningConfiguration"] == {"ScanOnPush": True}
        assert properties["ImageTagMutability"] == "MUTABLE"
        # KMS under the AWS managed key aws/ecr: no key in the template.
        assert properties["EncryptionConfiguration"] == {"EncryptionType": "KMS"}
        # The cache must be able to move a tag: checkov's immutability check is skipped.
        skips = repository["Metadata"]["checkov"]["skip"]
        assert [s["id"] for s in skips] == ["CKV_AWS_51"]
        assert "updates a cached tag" in skips[0]["comment"]


def test_aes256_only_when_chosen() -> None:
    stack = Stack(new_app(), "Aes")
    PullThroughCache(
        stack,
        "Cache",
        repository_prefix="ecr-public",
        cached_repositories=[XRAY],
        encryption=ecr.RepositoryEncryption.AES_256,
    )
    (repository,) = Template.from_stack(stack).find_resources("AWS::ECR::Repository").values()
    # CDK leaves AES-256 out: it is ECR's default.
    assert "EncryptionConfiguration" not in repository["Properties"]


def test_a_key_with_aes256_is_rejected() -> None:
    stack = Stack(new_app(), "AesKey")
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    with pytest.raises(InvalidPropsError, match="encryption_key: a key needs encryption KMS"):
        PullThroughCache(
            stack,
            "Cache",
            repository_prefix="ecr-public",
            encryption=ecr.RepositoryEncryption.AES_256,
            encryption_key=key,
        )


def test_pulling_through_a_customer_key_needs_no_kms_permission(built: Built) -> None:
    """ECR fills and serves the repositories through the grants it creates on the key."""
    for policy in built.pinned.find_resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            actions = actions if isinstance(actions, list) else [actions]
            assert not [a for a in actions if a.startswith("kms:")]


def test_repositories_are_emptied_and_deleted_by_default(built: Built) -> None:
    """Their names are fixed: a retained one would make the next create of the stack fail."""
    repositories = _repositories(built.agnostic).values()
    assert repositories
    for repository in repositories:
        assert repository["DeletionPolicy"] == "Delete"
        assert repository["UpdateReplacePolicy"] == "Delete"
        assert repository["Properties"]["EmptyOnDelete"] is True


def test_emptying_is_cloudformations_own_not_a_custom_resource(built: Built) -> None:
    # EmptyOnDelete is a property of AWS::ECR::Repository: no Lambda empties the repository.
    types = {r["Type"] for r in built.agnostic.to_json()["Resources"].values()}
    assert types == {
        "AWS::ECR::PullThroughCacheRule",
        "AWS::ECR::Repository",
        "AWS::ECS::TaskDefinition",
        "AWS::IAM::Policy",
        "AWS::IAM::Role",
    }


@pytest.mark.parametrize(
    ("policy", "deletion", "update_replace"),
    [
        (RemovalPolicy.RETAIN, "Retain", "Retain"),
        (RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE, "RetainExceptOnCreate", "Retain"),
    ],
)
def test_a_retaining_policy_keeps_the_repositories_and_their_images(
    policy: RemovalPolicy, deletion: str, update_replace: str
) -> None:
    stack = Stack(new_app(), "Kept")
    PullThroughCache(
        stack,
        "Cache",
        repository_prefix="ecr-public",
        cached_repositories=[XRAY],
        removal_policy=policy,
    )
    (repository,) = _repositories(Template.from_stack(stack)).values()
    assert repository["DeletionPolicy"] == deletion
    assert repository["UpdateReplacePolicy"] == update_replace
    assert "EmptyOnDelete" not in repository["Properties"]


def test_snapshot_removal_policy_is_rejected() -> None:
    with pytest.raises(InvalidPropsError) as error:
        _cache(cached_repositories=[XRAY], removal_policy=RemovalPolicy.SNAPSHOT)
    (problem,) = error.value.problems
    assert problem.startswith("removal_policy: SNAPSHOT is not supported")


def test_repositories_keep_the_newest_max_image_count_images(built: Built) -> None:
    for template, count in ((built.agnostic, 10), (built.pinned, 3)):
        for repository in _repositories(template).values():
            policy = json.loads(repository["Properties"]["LifecyclePolicy"]["LifecyclePolicyText"])
            assert policy == {
                "rules": [
                    {
                        "rulePriority": 1,
                        "description": f"Keep the newest {count} cached images",
                        "selection": {
                            "tagStatus": "any",
                            "countType": "imageCountMoreThan",
                            "countNumber": count,
                        },
                        "action": {"type": "expire"},
                    }
                ]
            }


def test_encryption_key_and_removal_policy_apply_to_the_repositories(built: Built) -> None:
    (repository,) = _repositories(built.pinned).values()
    key_id = next(iter(built.pinned.find_resources("AWS::KMS::Key")))
    assert repository["Properties"]["EncryptionConfiguration"] == {
        "EncryptionType": "KMS",
        "KmsKey": {"Fn::GetAtt": [key_id, "Arn"]},
    }
    assert repository["DeletionPolicy"] == "Retain"
    assert repository["UpdateReplacePolicy"] == "Retain"
    assert "EmptyOnDelete" not in repository["Properties"]


def test_no_cached_repositories_creates_only_the_rule() -> None:
    stack = Stack(new_app(), "Bare")
    cache = PullThroughCache(stack, "Cache", repository_prefix="ecr-public")
    assert dict(cache.repositories) == {}
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::ECR::Repository", 0)
    template.resource_count_is("AWS::ECR::PullThroughCacheRule", 1)


# --- grant_pull --------------------------------------------------------------


def test_grant_pull_in_an_explicit_environment(built: Built) -> None:
    assert _policy_statements(built.pinned, "Puller") == [
        {
            "Action": PULL_ACTIONS,
            "Effect": "Allow",
            # A known region turns the partition into a literal
            # (@aws-cdk/core:enablePartitionLiterals).
            "Resource": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/prod/ecr-public/*",
        },
        TOKEN_STATEMENT,
    ]


def test_grant_pull_in_an_environment_agnostic_stack(built: Built) -> None:
    assert _policy_statements(built.agnostic, "Puller") == [
        {
            "Action": PULL_ACTIONS,
            "Effect": "Allow",
            "Resource": {
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        ":ecr:",
                        {"Ref": "AWS::Region"},
                        ":",
                        {"Ref": "AWS::AccountId"},
                        ":repository/dev-ecr-public/*",
                    ],
                ]
            },
        },
        TOKEN_STATEMENT,
    ]


def test_grant_pull_returns_a_grant_on_the_principal_policy() -> None:
    stack = Stack(new_app(), "Grant")
    cache = PullThroughCache(stack, "Cache", repository_prefix="ecr-public")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"))
    grant = cache.grant_pull(role)
    assert grant.success
    assert grant.principal_statements  # statements went to the role, not a resource policy


# --- image URIs and container images -----------------------------------------


def test_image_uri_joins_registry_prefix_path_and_pinned_tag(built: Built) -> None:
    uri = built.agnostic_cache.image_uri(XRAY, "3.3.14")
    assert built.agnostic_stack.resolve(uri) == {
        "Fn::Join": [
            "",
            [
                {"Ref": "AWS::AccountId"},
                ".dkr.ecr.",
                {"Ref": "AWS::Region"},
                ".",
                {"Ref": "AWS::URLSuffix"},
                "/dev-ecr-public/xray/aws-xray-daemon:3.3.14",
            ],
        ]
    }


def test_image_uri_in_an_explicit_environment(built: Built) -> None:
    uri = built.pinned_cache.image_uri(NODE_EXPORTER, "v1.8.2")
    assert built.pinned_stack.resolve(uri) == {
        "Fn::Join": [
            "",
            [
                f"{ACCOUNT}.dkr.ecr.{REGION}.",
                {"Ref": "AWS::URLSuffix"},
                "/prod/ecr-public/prometheus/node-exporter:v1.8.2",
            ],
        ]
    }


def test_a_digest_is_referenced_with_an_at_sign(built: Built) -> None:
    resolved = built.agnostic_stack.resolve(built.agnostic_cache.image_uri(OTEL, DIGEST))
    assert resolved["Fn::Join"][1][-1] == f"/dev-ecr-public/{OTEL}@{DIGEST}"


def test_container_definitions_use_the_cache_uris(built: Built) -> None:
    (task,) = built.agnostic.find_resources("AWS::ECS::TaskDefinition").values()
    images = {c["Name"]: c["Image"] for c in task["Properties"]["ContainerDefinitions"]}
    stack, cache = built.agnostic_stack, built.agnostic_cache
    assert images == {
        "xray": stack.resolve(cache.image_uri(XRAY, "3.3.14")),
        "otel": stack.resolve(cache.image_uri(OTEL, DIGEST)),
    }


def test_container_image_grants_pull_to_the_execution_role(built: Built) -> None:
    statements = _policy_statements(built.agnostic, "TaskExecutionRole")
    assert statements == _policy_statements(built.agnostic, "Puller")


def test_only_the_task_definition_resource_waits_for_the_cache(built: Built) -> None:
    stack, cache = built.agnostic_stack, built.agnostic_cache
    cache_ids = sorted(
        [str(stack.resolve(cache.rule.logical_id))]
        + [_logical_id(stack, r) for r in cache.repositories.values()]
    )
    (task,) = built.agnostic.find_resources("AWS::ECS::TaskDefinition").values()
    assert sorted(task["DependsOn"]) == cache_ids
    for role in built.agnostic.find_resources("AWS::IAM::Role").values():
        assert "DependsOn" not in role


def test_an_unresolved_tag_is_left_to_deploy_time() -> None:
    stack = Stack(new_app(), "Param")
    tag = CfnParameter(stack, "DaemonTag").value_as_string
    cache = PullThroughCache(stack, "Cache", repository_prefix="ecr-public")
    resolved = stack.resolve(cache.image_uri(XRAY, tag))
    assert resolved["Fn::Join"][1][-2:] == [
        "/ecr-public/xray/aws-xray-daemon:",
        {"Ref": "DaemonTag"},
    ]


# --- validation --------------------------------------------------------------


def _cache(**props: Any) -> PullThroughCache:
    props.setdefault("repository_prefix", "ecr-public")
    return PullThroughCache(Stack(new_app(), "Invalid"), "Cache", **props)


@pytest.mark.parametrize(
    "prefix",
    [
        "e",  # too short
        "e" * 31,  # too long
        "Ecr-public",  # uppercase
        "-ecr",
        "ecr-",
        "ecr--public",  # separators are single
        "ecr/",  # ECR appends the /
        "ecr//public",
        "ecr public",
        "",
        "ROOT",  # the whole registry, not a namespace
    ],
)
def test_invalid_prefix_is_rejected(prefix: str) -> None:
    with pytest.raises(InvalidPropsError, match="repository_prefix") as error:
        _cache(repository_prefix=prefix)
    assert all(p.startswith(f"repository_prefix: {prefix!r}") for p in error.value.problems)


@pytest.mark.parametrize("prefix", ["ec", "e" * 30, "dev-ecr-public", "team.a/ecr_public"])
def test_valid_prefix_is_accepted(prefix: str) -> None:
    assert _cache(repository_prefix=prefix).repository_prefix == prefix


@pytest.mark.parametrize(
    "url", ["registry-1.docker.io", "ghcr.io", "https://public.ecr.aws", "public.ecr.aws/xray"]
)
def test_upstream_registry_needing_credentials_or_malformed_is_rejected(url: str) -> None:
    with pytest.raises(InvalidPropsError, match=r"upstream_registry_url: '.*' is not supported"):
        _cache(upstream_registry_url=url)


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        (["Xray/aws-xray-daemon"], "'Xray/aws-xray-daemon' is not a valid repository path"),
        (["/xray"], "'/xray' is not a valid repository path"),
        (["x"], "'x' has 1 characters"),
        ([XRAY, XRAY], f"{XRAY!r} is listed twice"),
        ("xray/aws-xray-daemon", "is a string"),
        (["a" * 250], "makes the cache repository name 261 characters long"),
    ],
)
def test_invalid_cached_repositories_are_rejected(paths: Any, expected: str) -> None:
    with pytest.raises(InvalidPropsError, match="cached_repositories") as error:
        _cache(cached_repositories=paths)
    assert any(expected in p for p in error.value.problems), error.value.problems


@pytest.mark.parametrize("count", [0, -1, True, 2.5])
def test_invalid_max_image_count_is_rejected(count: Any) -> None:
    with pytest.raises(InvalidPropsError, match=f"max_image_count: {re.escape(repr(count))}"):
        _cache(max_image_count=count)


def test_every_problem_is_reported_on_its_own_line() -> None:
    with pytest.raises(InvalidPropsError) as error:
        _cache(
            repository_prefix="A",
            upstream_registry_url="docker.io",
            cached_repositories=["Bad"],
            max_image_count=0,
        )
    lines = str(error.value).splitlines()
    assert len(error.value.problems) == len(lines) == 5  # the prefix breaks two rules
    assert all(line.startswith("Invalid/Cache: ") for line in lines)
    assert [line.split(": ")[1] for line in lines] == [
        "repository_prefix",
        "repository_prefix",
        "upstream_registry_url",
        "cached_repositories",
        "max_image_count",
    ]


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("latest", "'latest' is a floating tag"),
        ("Latest", "'Latest' is a floating tag"),
        ("", "the empty string is not a tag"),
        (".hidden", "'.hidden' is not a valid image tag"),
        ("-rc1", "'-rc1' is not a valid image tag"),
        ("3.3.14:amd64", "is not a valid image tag"),
        ("v" * 129, "is not a valid image tag"),
        ("sha256:abc", "'sha256:abc' is not a digest"),
        ("sha256:" + "A" * 64, "is not a digest"),
    ],
)
def test_unpinned_or_invalid_tag_is_rejected(built: Built, tag: str, expected: str) -> None:
    for method in (built.agnostic_cache.image_uri, built.agnostic_cache.container_image):
        with pytest.raises(InvalidPropsError) as error:
            method(XRAY, tag)
        (problem,) = error.value.problems
        assert problem.startswith("tag: ")
        assert expected in problem


@pytest.mark.parametrize("tag", ["3.3.14", "_x", "v" * 128, "latest-3.3", DIGEST])
def test_pinned_tags_are_accepted(built: Built, tag: str) -> None:
    uri = built.agnostic_stack.resolve(built.agnostic_cache.image_uri(XRAY, tag))
    assert uri["Fn::Join"][1][-1].endswith(tag)


@pytest.mark.parametrize("path", ["Xray/daemon", "", "xray/", "xray//daemon", "xray daemon"])
def test_invalid_upstream_path_is_rejected(built: Built, path: str) -> None:
    with pytest.raises(InvalidPropsError, match=f"upstream_path: {re.escape(repr(path))}"):
        built.agnostic_cache.image_uri(path, "3.3.14")


def test_bad_path_and_bad_tag_are_reported_together(built: Built) -> None:
    with pytest.raises(InvalidPropsError) as error:
        built.agnostic_cache.container_image("Xray", "latest")
    assert [p.split(":")[0] for p in error.value.problems] == ["upstream_path", "tag"]


# --- cdk-nag -----------------------------------------------------------------

GRANTEE_FINDINGS = (
    "AwsSolutions-IAM5[Resource::*]",
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecr:<AWS::Region>:<AWS::AccountId>"
    ":repository/dev-ecr-public/*]",
)


def _nag_app(*, acknowledge: bool) -> App:
    app = new_app()
    stack = Stack(app, "Nag")
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    cache = PullThroughCache(
        stack, "Cache", repository_prefix="dev-ecr-public", cached_repositories=[XRAY]
    )
    PullThroughCache(
        stack,
        "KmsCache",
        repository_prefix="dev-quay",
        upstream_registry_url="quay.io",
        cached_repositories=[NODE_EXPORTER],
        encryption_key=key,
    )
    role = iam.Role(
        stack, "ExecutionRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com")
    )
    cache.grant_pull(role)
    if acknowledge:
        Validations.of(role).acknowledge(
            *(
                Acknowledgment(id=finding, reason="ECR pull through the cache prefix")
                for finding in GRANTEE_FINDINGS
            )
        )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def test_nag_finds_only_the_wildcards_of_the_grantee() -> None:
    app = _nag_app(acknowledge=False)
    with pytest.raises(RuntimeError, match="ValidationFailed") as error:
        app.synth()
    report = str(error.value)
    ids = set(re.findall(r"Acknowledge with '(?:AwsSolutions::)?([^']+)'", report))
    assert ids == set(GRANTEE_FINDINGS)
    assert set(re.findall(r"^\s+(Nag/\S+)", report, flags=re.MULTILINE)) == {
        "Nag/ExecutionRole/DefaultPolicy/Resource"
    }


def test_nag_passes_with_the_grantee_acknowledging_its_findings() -> None:
    _nag_app(acknowledge=True).synth()
