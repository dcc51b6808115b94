"""cdk-nag's AwsSolutions pack runs on the whole app; synth fails on any open finding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import Stack, Validations
from aws_cdk import aws_ec2 as ec2
from cdk_nag import AwsSolutionsChecks

from tests.conftest import ENV_NAMES, Synthesized, new_app


def test_app_synthesizes_with_no_open_finding(synthesized: Synthesized) -> None:
    # The session fixture synthesized with the checks registered: reaching here means
    # every finding was fixed or acknowledged; the report lists no failure.
    report = json.loads(
        (Path(synthesized.assembly.directory) / "validation-report.json").read_text()
    )
    failures = [v for r in report.get("pluginReports", []) for v in r.get("violations", [])]
    assert failures == []
    for env in ENV_NAMES:
        assert synthesized.stack_ids(env)


def test_an_open_finding_fails_synth(tmp_path: Path) -> None:
    """The gate can fail: a world-open security group is reported and stops synth."""
    app = new_app(outdir=str(tmp_path))
    stack = Stack(app, "Probe")
    vpc = ec2.Vpc(stack, "Vpc", max_azs=1, nat_gateways=0)
    group = ec2.SecurityGroup(stack, "Open", vpc=vpc)
    group.add_ingress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(22))
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = (tmp_path / "validation-report.json").read_text()
    assert "AwsSolutions-EC23" in report
    assert "AwsSolutions-VPC7" in report
