"""Checkov skips as the library places them, and the scanner of `make test` failing on a
planted defect while honouring a skip written by the library's helper."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import CfnResource, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk.assertions import Template

from tests.conftest import ROOT, new_app
from traced_fargate._checkov import skip
from traced_fargate.closed_vpc import ClosedVpc
from traced_fargate.internal_load_balancer import (
    ACCESS_LOG_DAYS,
    ACCESS_LOG_NONCURRENT_DAYS,
    InternalLoadBalancer,
)
from traced_fargate.temporary_egress import TemporaryEgress
from traced_fargate.temporary_egress._scanners import _only_waiter_logging_on_any

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


def _skips(resource: dict[str, Any]) -> dict[str, str]:
    entries = resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    return {entry["id"]: entry["comment"] for entry in entries}


# --- the helper --------------------------------------------------------------------------


def test_skip_sets_metadata_on_the_default_child_and_replaces_a_reason() -> None:
    stack = Stack(new_app(), "Helper")
    group = logs.LogGroup(stack, "Logs")
    skip(group, "CKV_AWS_158", "first reason")
    skip(group, "CKV_AWS_66", "kept")
    skip(group, "CKV_AWS_158", "second reason")
    (resource,) = Template.from_stack(stack).find_resources("AWS::Logs::LogGroup").values()
    assert resource["Metadata"]["checkov"]["skip"] == [
        {"id": "CKV_AWS_66", "comment": "kept"},
        {"id": "CKV_AWS_158", "comment": "second reason"},
    ]


@pytest.mark.parametrize(
    ("check_id", "reason", "message"),
    [
        ("AwsSolutions-IAM5", "a reason", "not a checkov check id"),
        ("CKV_AWS_158", "  ", "needs a reason"),
    ],
)
def test_skip_rejects_a_bad_id_or_an_empty_reason(check_id: str, reason: str, message: str) -> None:
    stack = Stack(new_app(), "Bad")
    with pytest.raises(ValueError, match=message):
        skip(logs.LogGroup(stack, "Logs"), check_id, reason)


# --- where the library places them -------------------------------------------------------


@pytest.fixture(scope="module")
def network_template() -> dict[str, Any]:
    stack = Stack(new_app(), "Net")
    network = ClosedVpc(stack, "Network")
    TemporaryEgress(stack, "Egress", network=network)
    return dict(Template.from_stack(stack).to_json()["Resources"])


def test_every_custom_resource_function_skips_the_checks_it_cannot_meet(
    network_template: dict[str, Any],
) -> None:
    functions = {k: r for k, r in network_template.items() if r["Type"] == "AWS::Lambda::Function"}
    # At least CDK's default-security-group handler, the two egress handlers and the
    # provider's three.
    assert len(functions) >= 6
    for logical_id, function in functions.items():
        skips = _skips(function)
        assert {"CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117"} <= set(skips), logical_id
        assert "outside the VPC" in skips["CKV_AWS_117"]
        # Only functions with an environment (the provider's) skip its encryption check.
        assert ("CKV_AWS_173" in skips) == ("Environment" in function["Properties"]), logical_id


def test_the_waiter_policy_skip_needs_only_logging_actions_on_any() -> None:
    stack = Stack(new_app(), "Waiter")
    policy = iam.Policy(
        stack,
        "Policy",
        statements=[
            iam.PolicyStatement(
                actions=["logs:CreateLogDelivery", "logs:PutLogEvents"], resources=["*"]
            )
        ],
    )
    assert _only_waiter_logging_on_any(policy)
    policy.add_statements(iam.PolicyStatement(actions=["ec2:CreateTags"], resources=["*"]))
    assert not _only_waiter_logging_on_any(policy)


def test_http_listener_skips_tls_checks_only_without_a_certificate() -> None:
    stack = Stack(new_app(), "Lb")
    vpc = ec2.Vpc(stack, "Vpc", nat_gateways=0)
    balancer = InternalLoadBalancer(stack, "Lb", vpc=vpc, access_logs=False)
    listener = balancer.listener.node.default_child
    assert isinstance(listener, CfnResource)
    resource = Template.from_stack(stack).to_json()["Resources"][stack.get_logical_id(listener)]
    assert set(_skips(resource)) == {"CKV_AWS_2", "CKV_AWS_103"}
    assert "certificate=" in _skips(resource)["CKV_AWS_2"]


def test_the_access_log_bucket_is_versioned_and_skips_only_its_own_logging() -> None:
    stack = Stack(new_app(), "Logged", env=Environment(account="111111111111", region="eu-west-1"))
    vpc = ec2.Vpc(stack, "Vpc", nat_gateways=0)
    InternalLoadBalancer(stack, "Lb", vpc=vpc)
    (bucket,) = Template.from_stack(stack).find_resources("AWS::S3::Bucket").values()
    properties = bucket["Properties"]
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert properties["LifecycleConfiguration"]["Rules"] == [
        {
            "ExpirationInDays": ACCESS_LOG_DAYS,
            "NoncurrentVersionExpiration": {"NoncurrentDays": ACCESS_LOG_NONCURRENT_DAYS},
            "Status": "Enabled",
        },
        {"ExpiredObjectDeleteMarker": True, "Status": "Enabled"},
    ]
    assert set(_skips(bucket)) == {"CKV_AWS_18"}


# --- the scanner -------------------------------------------------------------------------


def _planted_template(tmp_path: Path) -> Path:
    """One log group without a key (the defect) and one skipped through the helper."""
    app = new_app(outdir=str(tmp_path / "assembly"))
    stack = Stack(app, "Planted")
    logs.CfnLogGroup(stack, "Unencrypted", retention_in_days=30)
    skipped = logs.CfnLogGroup(stack, "Skipped", retention_in_days=30)
    skip(skipped, "CKV_AWS_158", "planted: a skip written by the library's helper")
    artifact = app.synth().get_stack_artifact(stack.artifact_id)
    return Path(artifact.template_full_path)


@pytest.mark.skipif(
    not CHECKOV.exists(),
    reason="no checkov environment (.venv-checkov); `make setup` creates it",
)
def test_checkov_fails_on_a_planted_unencrypted_log_group_and_honours_a_skip(
    tmp_path: Path,
) -> None:
    template = _planted_template(tmp_path)
    run = subprocess.run(
        [
            str(CHECKOV),
            "--framework",
            "cloudformation",
            "--skip-download",
            "--output",
            "json",
            "-f",
            str(template),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"},
        timeout=120,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    results = json.loads(run.stdout)["results"]
    failed = {(c["check_id"], c["resource"]) for c in results["failed_checks"]}
    assert failed == {("CKV_AWS_158", "AWS::Logs::LogGroup.Unencrypted")}
    skipped = {
        (c["check_id"], c["resource"], c["check_result"].get("suppress_comment"))
        for c in results["skipped_checks"]
    }
    assert skipped == {
        (
            "CKV_AWS_158",
            "AWS::Logs::LogGroup.Skipped",
            "planted: a skip written by the library's helper",
        )
    }
