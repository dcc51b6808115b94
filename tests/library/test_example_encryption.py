"""The consumer app in examples/shared_platform is encrypted like the project's own app:
every log group under KMS with a retention, every repository under KMS, every SNS topic
under a key whose policy, like the topic policy, lets its alarms in."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ExampleApp
from tests.encryption_checks import (
    log_group_problems,
    of_type,
    sns_topic_problems,
    topic_publishers,
)

Templates = dict[str, tuple[dict[str, Any], str | None, str | None]]


@pytest.fixture(scope="module")
def templates(shared_platform: ExampleApp) -> Templates:
    found: Templates = {}
    for stack in shared_platform.assembly.stacks:
        environment = stack.environment
        account = None if environment.account.startswith("unknown") else environment.account
        region = None if environment.region.startswith("unknown") else environment.region
        found[stack.stack_name] = (stack.template["Resources"], account, region)
    return found


def test_every_log_group_is_kms_encrypted_with_retention(templates: Templates) -> None:
    problems = [
        f"{name}: {p}" for name, (res, _, _) in templates.items() for p in log_group_problems(res)
    ]
    assert problems == []
    assert sum(len(of_type(r, "AWS::Logs::LogGroup")) for r, _, _ in templates.values()) > 0


def test_every_topic_lets_its_publishers_in(templates: Templates) -> None:
    problems = [
        f"{name}: {p}"
        for name, (resources, account, region) in templates.items()
        for p in sns_topic_problems(resources, account, region)
    ]
    assert problems == []
    publishers = sum(
        len(found)
        for resources, account, region in templates.values()
        for found in topic_publishers(resources, account, region).values()
    )
    assert publishers > 0


def test_every_repository_is_kms_encrypted(templates: Templates) -> None:
    unencrypted = [
        f"{name}: {logical_id}"
        for name, (resources, _, _) in templates.items()
        for logical_id, repository in of_type(resources, "AWS::ECR::Repository").items()
        if repository["Properties"].get("EncryptionConfiguration", {}).get("EncryptionType")
        != "KMS"
    ]
    assert unencrypted == []
