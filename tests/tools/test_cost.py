"""tools/cost.py: the monthly estimate read from the synthesized templates."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Synthesized
from tools.cost import (
    Assumptions,
    estimate,
    load_prices,
    main,
    price_table_region,
    read_assembly,
    services,
    split_tasks,
)

PRICES = load_prices()
TOKYO = PRICES["regions"]["ap-northeast-1"]
HOURS = Assumptions().hours_per_month


def templates_of(synthesized: Synthesized, env: str) -> dict[str, Any]:
    return {sid: synthesized.template_json(env, sid) for sid in synthesized.stack_ids(env)}


def count(templates: dict[str, Any], cfn_type: str) -> int:
    return sum(r["Type"] == cfn_type for t in templates.values() for r in t["Resources"].values())


@pytest.mark.parametrize(
    ("tasks", "strategy", "expected"),
    [
        # dev: one base task On-Demand, everything above it on Spot
        (1, [{"CapacityProvider": "FARGATE", "Base": 1, "Weight": 0},
             {"CapacityProvider": "FARGATE_SPOT", "Weight": 1}], (1, 0)),
        (2, [{"CapacityProvider": "FARGATE", "Base": 1, "Weight": 0},
             {"CapacityProvider": "FARGATE_SPOT", "Weight": 1}], (1, 1)),
        # prod: two base tasks, the rest split 1:1
        (2, [{"CapacityProvider": "FARGATE", "Base": 2, "Weight": 1},
             {"CapacityProvider": "FARGATE_SPOT", "Weight": 1}], (2, 0)),
        (6, [{"CapacityProvider": "FARGATE", "Base": 2, "Weight": 1},
             {"CapacityProvider": "FARGATE_SPOT", "Weight": 1}], (4, 2)),
        (3, [{"CapacityProvider": "FARGATE_SPOT", "Weight": 3},
             {"CapacityProvider": "FARGATE", "Weight": 1}], (0.75, 2.25)),
        (2, [], (2, 0)),  # a launch type, no strategy
    ],
)  # fmt: skip
def test_tasks_split_by_base_then_weight(
    tasks: int, strategy: list[dict[str, Any]], expected: tuple[float, float]
) -> None:
    assert split_tasks(tasks, strategy) == pytest.approx(expected)


def test_a_non_fargate_capacity_provider_has_no_price() -> None:
    with pytest.raises(ValueError, match="'MyAsgProvider' has no Fargate price"):
        split_tasks(1, [{"CapacityProvider": "MyAsgProvider", "Weight": 1}])


def _service_template(**service: Any) -> dict[str, Any]:
    resources: dict[str, Any] = {
        "Task": {
            "Type": "AWS::ECS::TaskDefinition",
            "Properties": {
                "Cpu": "1024",
                "Memory": "3072",
                "RuntimePlatform": {"CpuArchitecture": "ARM64"},
                "ContainerDefinitions": [
                    {"LogConfiguration": {"Options": {"awslogs-group": {"Ref": "Logs"}}}}
                ],
            },
        },
        "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 90}},
        "Svc": {
            "Type": "AWS::ECS::Service",
            "Properties": {"TaskDefinition": {"Ref": "Task"}, **service},
        },
    }
    return {"Resources": resources}


def test_service_without_scaling_runs_its_desired_count_on_demand() -> None:
    (svc,) = services({"S": _service_template(DesiredCount=3, LaunchType="FARGATE")})
    assert (svc.vcpu, svc.gb, svc.arm) == (1, 3, True)
    assert (svc.min_count, svc.max_count) == (3, 3)
    assert svc.strategy == ()
    assert svc.log_groups == ("Logs",)
    est = estimate(
        "t", {"S": _service_template(DesiredCount=3)}, region="ap-northeast-1", prices=PRICES
    )
    (fargate,) = [line for line in est.lines if line.name.startswith("Fargate")]
    task_hour = TOKYO["fargate_arm_vcpu_hour"] + 3 * TOKYO["fargate_arm_gb_hour"]
    assert fargate.usd == pytest.approx(3 * task_hour * HOURS)
    (logs,) = [line for line in est.lines if line.name == "CloudWatch Logs (containers)"]
    monthly = 3 * Assumptions().log_gb_per_task
    stored = monthly * 90 / (365 / 12)
    assert logs.usd == pytest.approx(
        monthly * TOKYO["logs_ingest_gb"] + stored * TOKYO["logs_storage_gb_month"]
    )


def test_dev_estimate_from_its_templates(synthesized: Synthesized) -> None:
    templates = templates_of(synthesized, "dev")
    est = estimate("dev", templates, region="ap-northeast-1", prices=PRICES)
    lines = {line.name: line for line in est.lines}
    endpoint_azs = [
        len(r["Properties"]["SubnetIds"])
        for r in templates["Network"]["Resources"].values()
        if r["Type"] == "AWS::EC2::VPCEndpoint"
        and r["Properties"]["VpcEndpointType"] == "Interface"
    ]
    # cdk.json: dev.network.endpoint_azs = 1; the ninth is kms, for dev's ECS Exec sessions.
    assert endpoint_azs == [1] * 9
    # Half the calls come from the AZ without endpoints: 2.5 GB cross-AZ, charged both ways.
    assert lines["Interface endpoints"].usd == pytest.approx(
        9 * HOURS * TOKYO["interface_endpoint_hour"]
        + 5 * TOKYO["interface_endpoint_gb"]
        + 2.5 * 2 * TOKYO["cross_az_gb"]
    )
    assert lines["Interface endpoints"].quantity == (
        "9 endpoints x 1 AZ = 6,570 endpoint-h; 5 GB (2.5 GB cross-AZ)"
    )
    assert lines["KMS keys"].usd == count(templates, "AWS::KMS::Key") * 1.0
    # dev: frontend and backend, each 1 task of 0.5 vCPU / 1 GB, the base task On-Demand;
    # max 2 each, the second on Spot
    task_hour = 0.5 * TOKYO["fargate_vcpu_hour"] + 1 * TOKYO["fargate_gb_hour"]
    assert lines["Fargate tasks (min_count)"].usd == pytest.approx(2 * task_hour * HOURS)
    assert est.max_total - est.total == pytest.approx(2 * task_hour * HOURS * 0.3)
    assert lines["Load client (EC2 + EBS)"].usd == pytest.approx(
        TOKYO["ec2_hour"]["t3.micro"] * HOURS + 16 * TOKYO["ebs_gp3_gb_month"]
    )
    assert lines["Setup NAT + Elastic IP"].usd == pytest.approx(
        TOKYO["nat_gateway_hour"] + TOKYO["public_ipv4_hour"] + TOKYO["nat_gateway_gb"]
    )
    assert est.total == pytest.approx(sum(line.usd for line in est.lines))
    assert est.biggest.usd == max(line.usd for line in est.lines)


def test_prod_estimate_counts_every_endpoint_az_and_both_base_tasks(
    synthesized: Synthesized,
) -> None:
    est = estimate(
        "prod", templates_of(synthesized, "prod"), region="ap-northeast-1", prices=PRICES
    )
    lines = {line.name: line for line in est.lines}
    assert lines["Interface endpoints"].quantity == "8 endpoints x 2 AZs = 11,680 endpoint-h; 5 GB"
    assert lines["Interface endpoints"].usd == pytest.approx(
        16 * HOURS * TOKYO["interface_endpoint_hour"] + 5 * TOKYO["interface_endpoint_gb"]
    )
    frontend = 1 * TOKYO["fargate_vcpu_hour"] + 2 * TOKYO["fargate_gb_hour"]
    backend = 0.5 * TOKYO["fargate_vcpu_hour"] + 1 * TOKYO["fargate_gb_hour"]
    assert lines["Fargate tasks (min_count)"].usd == pytest.approx(2 * (frontend + backend) * HOURS)
    # frontend max 6: 2 base + 4 split 1:1, so 4 On-Demand and 2 Spot at 30 %;
    # backend max 4: 2 base + 2 split 1:1, so 3 On-Demand and 1 Spot
    assert est.max_total - est.total == pytest.approx(
        ((2 + 2 * 0.3) * frontend + (1 + 1 * 0.3) * backend) * HOURS
    )
    assert est.biggest.name == "Interface endpoints"


def test_every_region_prices_every_line_and_names_its_sources() -> None:
    datetime.date.fromisoformat(PRICES["researched"])
    regions = PRICES["regions"]
    assert {"us-east-1", "ap-northeast-1"} <= set(regions)
    keys = {k for table in regions.values() for k in table}
    for name, table in regions.items():
        assert set(table) == keys, name
        assert "t3.micro" in table["ec2_hour"], name
    for source in PRICES["sources"].values():
        assert source["page"].startswith("https://aws.amazon.com/")
    assert PRICES["default_region"] in regions


def test_env_agnostic_stacks_use_the_default_table_and_say_so() -> None:
    assert price_table_region(PRICES, None) == (
        "us-east-1",
        "env-agnostic stacks priced with the us-east-1 table",
    )
    assert price_table_region(PRICES, None, "ap-northeast-1")[0] == "ap-northeast-1"
    with pytest.raises(ValueError, match="no price table for eu-west-1; tables: us-east-1"):
        price_table_region(PRICES, "eu-west-1")


def test_an_instance_type_without_a_price_is_named() -> None:
    template = {
        "Resources": {
            "I": {"Type": "AWS::EC2::Instance", "Properties": {"InstanceType": "x9.huge"}}
        }
    }
    with pytest.raises(ValueError, match=r"no price for instance type 'x9\.huge'"):
        estimate("t", {"S": template}, region="us-east-1", prices=PRICES)


def test_command_prints_a_table_per_environment_with_one_biggest_line(
    synthesized: Synthesized, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = synthesized.assembly.directory
    stages = read_assembly(Path(directory))
    assert {"dev", "prod"} <= set(stages)
    assert stages["dev"].region == "ap-northeast-1"
    assert main(["--assembly", directory]) == 0
    out = capsys.readouterr().out
    for env in ("dev", "prod"):
        assert f"### {env}: ap-northeast-1 (ap-northeast-1 table" in out
    assert out.count("(biggest)") == len(stages)
    assert out.count("| **Total** |") == len(stages)
    assert "`setup_hours` = 1" in out
    assert main(["--assembly", directory, "staging"]) == 2
