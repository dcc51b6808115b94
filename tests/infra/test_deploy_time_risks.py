"""What a first deploy would trip on and no synth-time check sees: cross-stack values where
CloudFormation does not document them to resolve, SSM Agent's own S3 buckets behind the
gateway endpoint, and HTTPS egress that reaches more than the S3 gateway."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from stacks.config import EnvironmentConfig
from tests.conftest import ENV_NAMES, Synthesized, render
from traced_fargate._ssm_agent_buckets import PATCH_BUCKETS

CROSS_STACK = ("Fn::GetStackOutput", "Fn::ImportValue")
# Fn::GetStackOutput returns InternalFailure in these (its reference page, "Known
# limitations"); it is documented as a resource property value, or inside Fn::Join,
# Fn::If and Fn::Select there.
UNSUPPORTED_AROUND_GET_STACK_OUTPUT = ("Fn::Base64", "Fn::Sub", "Fn::ImportValue", "Fn::Equals")

Templates = list[tuple[str, dict[str, Any]]]


@pytest.fixture(scope="module", params=ENV_NAMES)
def env(request: pytest.FixtureRequest, environments: list[EnvironmentConfig]) -> EnvironmentConfig:
    return next(e for e in environments if e.name == request.param)


@pytest.fixture(scope="module")
def templates(synthesized: Synthesized) -> Templates:
    return [(s.hierarchical_id, s.template) for s in synthesized.assembly.stacks_recursively]


def _functions(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Every intrinsic function in ``value``, with the functions around it."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key.startswith("Fn::") or key == "Ref":
                yield key, path
                yield from _functions(inner, (*path, key))
            else:
                yield from _functions(inner, path)
    elif isinstance(value, list):
        for inner in value:
            yield from _functions(inner, path)


def _resources(template: dict[str, Any], cfn_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == cfn_type}


# --- cross-stack values -------------------------------------------------------------


def test_no_resource_metadata_holds_a_cross_stack_value(templates: Templates) -> None:
    for name, template in templates:
        for logical_id, resource in template["Resources"].items():
            found = {f for f, _ in _functions(resource.get("Metadata", {})) if f in CROSS_STACK}
            assert not found, f"{name}/{logical_id} Metadata: {found}"


def test_cross_stack_values_sit_only_where_cloudformation_resolves_them(
    templates: Templates,
) -> None:
    for name, template in templates:
        for section in ("Outputs", "Conditions", "Mappings", "Parameters"):
            found = {f for f, _ in _functions(template.get(section, {})) if f in CROSS_STACK}
            assert not found, f"{name} {section}: {found}"
        for logical_id, resource in template["Resources"].items():
            for function, around in _functions(resource.get("Properties", {})):
                if function == "Fn::GetStackOutput":
                    bad = set(around) & set(UNSUPPORTED_AROUND_GET_STACK_OUTPUT)
                    assert not bad, f"{name}/{logical_id}: Fn::GetStackOutput inside {bad}"


def test_the_load_client_reads_its_target_from_a_parameter_of_its_own_stack(
    env: EnvironmentConfig, synthesized: Synthesized
) -> None:
    template = synthesized.template_json(env.name, "LoadTest")
    (parameter_id,) = _resources(template, "AWS::SSM::Parameter")
    value = template["Resources"][parameter_id]["Properties"]["Value"]
    # The service's address crosses stacks as a property, inside Fn::Join: documented.
    assert render_join(value).startswith("http://")
    assert '"Fn::GetStackOutput"' in json.dumps(value)
    (instance,) = _resources(template, "AWS::EC2::Instance").values()
    files = instance["Metadata"]["AWS::CloudFormation::Init"]["config"]["files"]
    read_back = {"Fn::GetAtt": [parameter_id, "Value"]}
    assert files["/etc/traced-fargate/target"]["content"] == {"Fn::Join": ["", [read_back, "\n"]]}
    assert read_back in files["/usr/local/bin/loadtest"]["content"]["Fn::Join"][1]
    assert parameter_id in instance["DependsOn"]
    # The user data names no cross-stack value either (it is inside Fn::Base64).
    assert not {f for f, _ in _functions(instance["Properties"]["UserData"]) if f in CROSS_STACK}


def render_join(value: Any) -> str:
    """``render`` with any other function shown as a marker."""
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(render_join(p) for p in parts)
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Ref" in value:
        return render(value)
    return "<token>"


# --- S3 gateway endpoint: SSM Agent's buckets ---------------------------------------


def test_the_s3_gateway_lets_ssm_agent_update_and_patch_read_only(
    env: EnvironmentConfig, synthesized: Synthesized
) -> None:
    template = synthesized.template_json(env.name, "Network")
    (gateway,) = [
        e["Properties"]
        for e in _resources(template, "AWS::EC2::VPCEndpoint").values()
        if e["Properties"]["VpcEndpointType"] == "Gateway"
    ]
    statements = {s["Sid"]: s for s in gateway["PolicyDocument"]["Statement"]}
    ssm = statements["ReadSsmAgentUpdatesAndPatches"]
    assert ssm["Action"] == "s3:GetObject"
    assert ssm["Effect"] == "Allow"
    assert "Condition" not in ssm
    region = env.region
    assert region is not None
    patch_manager, snapshots = PATCH_BUCKETS[region]
    assert ssm["Resource"] == sorted(
        f"arn:aws:s3:::{bucket}/*"
        for bucket in (f"amazon-ssm-{region}", f"aws-ssm-{region}", patch_manager, snapshots)
    )
    # The Tokyo names as the patching page lists them.
    assert (patch_manager, snapshots) == (
        "aws-patch-manager-ap-northeast-1-4849fa78f",
        "patch-baseline-snapshot-ap-northeast-1",
    )
    everything = json.dumps(gateway["PolicyDocument"])
    for left_out in (
        "aws-windows-downloads-",
        "aws-patchmanager-macos-",
        "amazon-ssm-packages-",
        "birdwatcher",
        "aws-ssm-distributor-file-",
        "aws-ssm-document-attachments-",
    ):
        assert left_out not in everything
    for statement in statements.values():
        assert statement["Action"] == "s3:GetObject"
        assert all(str(r).endswith("/*") for r in statement["Resource"])


# --- HTTPS egress -------------------------------------------------------------------


def _prefix_list_lookup(synthesized: Synthesized, env: str) -> tuple[str, dict[str, Any]]:
    network = synthesized.template_json(env, "Network")
    ((logical_id, lookup),) = _resources(network, "Custom::S3PrefixList").items()
    return logical_id, lookup


def test_the_s3_prefix_list_is_looked_up_by_the_regions_name_at_deploy_time(
    env: EnvironmentConfig, synthesized: Synthesized
) -> None:
    network = synthesized.template_json(env.name, "Network")
    _, lookup = _prefix_list_lookup(synthesized, env.name)
    call = json.loads(lookup["Properties"]["Create"])
    assert call["service"] == "EC2"
    assert call["action"] == "describeManagedPrefixLists"
    assert call["parameters"] == {
        "Filters": [{"Name": "prefix-list-name", "Values": [f"com.amazonaws.{env.region}.s3"]}]
    }
    assert json.loads(lookup["Properties"]["Update"]) == call
    assert lookup["Properties"]["InstallLatestAwsSdk"] is False
    # Its function answers CloudFormation's S3 URL: outside the VPC.
    function_id = lookup["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
    function = network["Resources"][function_id]["Properties"]
    assert "VpcConfig" not in function
    assert "LogGroup" in function["LoggingConfig"]


def _egress(template: dict[str, Any], group_id: str) -> list[dict[str, Any]]:
    group = template["Resources"][group_id]["Properties"]
    separate = [
        r["Properties"]
        for r in _resources(template, "AWS::EC2::SecurityGroupEgress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [group_id, "GroupId"]}
    ]
    return [*group.get("SecurityGroupEgress", []), *separate]


def _to_s3_prefix_list(rule: dict[str, Any], lookup_id: str) -> bool:
    target = json.dumps(rule.get("DestinationPrefixListId", ""))
    return lookup_id in target and "PrefixLists0PrefixListId" in target


def test_the_load_client_reaches_only_endpoints_s3_and_the_service(
    env: EnvironmentConfig, synthesized: Synthesized
) -> None:
    template = synthesized.template_json(env.name, "LoadTest")
    (group_id,) = _resources(template, "AWS::EC2::SecurityGroup")
    lookup_id, _ = _prefix_list_lookup(synthesized, env.name)
    rules = _egress(template, group_id)
    # Only the rule that matches no traffic names an address: nothing reaches the internet.
    assert [r for r in rules if "CidrIp" in r or "CidrIpv6" in r] == [
        {
            "CidrIp": "255.255.255.255/32",
            "Description": "Disallow all traffic",
            "FromPort": 252,
            "IpProtocol": "icmp",
            "ToPort": 86,
        }
    ], rules
    (s3,) = [r for r in rules if "DestinationPrefixListId" in r]
    assert _to_s3_prefix_list(s3, lookup_id)
    assert (s3["IpProtocol"], s3["FromPort"], s3["ToPort"]) == ("tcp", 443, 443)


def test_service_tasks_reach_the_internet_only_for_first_pulls_through_the_cache(
    env: EnvironmentConfig, synthesized: Synthesized
) -> None:
    template = synthesized.template_json(env.name, "Service")
    lookup_id, _ = _prefix_list_lookup(synthesized, env.name)
    group_ids = [
        k
        for k, g in _resources(template, "AWS::EC2::SecurityGroup").items()
        if g["Properties"]["GroupDescription"].startswith("Service tasks")
    ]
    assert len(group_ids) == 2  # the frontend's and the backend's
    for group_id in group_ids:
        rules = _egress(template, group_id)
        assert any(_to_s3_prefix_list(r, lookup_id) for r in rules)
        (anywhere,) = [r for r in rules if r.get("CidrIp") == "0.0.0.0/0"]
        # Only HTTPS, and said why: ECR's first pull through the cache goes upstream.
        assert (anywhere["IpProtocol"], anywhere["FromPort"], anywhere["ToPort"]) == (
            "tcp",
            443,
            443,
        )
        assert "first pulls through the cache" in anywhere["Description"]
