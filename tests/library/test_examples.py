"""The consumer app in examples/shared_platform synthesizes under cdk-nag and wires what it
promises: one cluster and one HTTPS listener shared by two services, a backend reached by
Cloud Map that only the frontends may call, and a service in an imported VPC that is
granted nothing on endpoints the library does not know.

It is built once per session on a bare App (no project feature flags): a consumer's app
has none of this project's context.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Stack

from examples.shared_platform.app import (
    CERTIFICATE_ARN,
    IMPORTED_ENDPOINT_SECURITY_GROUP_ID,
    IMPORTED_S3_PREFIX_LIST_ID,
    IMPORTED_SUBNET_IDS,
    NAMESPACE,
    SharedPlatform,
)
from tests.conftest import ExampleApp

APP_PORT = 8080
WORLD = {"0.0.0.0/0", "::/0"}

Resources = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Synthesized:
    built: SharedPlatform
    platform: Resources
    imported: Resources
    assembly_dir: Path

    def logical_id(self, construct: Any) -> str:
        return str(Stack.of(construct).get_logical_id(construct.node.default_child))


@pytest.fixture(scope="module")
def synthesized(shared_platform: ExampleApp) -> Synthesized:
    def resources(stack_name: str) -> Resources:
        template = shared_platform.assembly.get_stack_by_name(stack_name).template
        return dict(template["Resources"])

    return Synthesized(
        shared_platform.built,
        resources("Platform"),
        resources("Imported"),
        shared_platform.directory,
    )


def _templates(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    return {
        stack.stack_name: json.loads((synthesized.assembly_dir / stack.template_file).read_text())
        for stack in (
            synthesized.built.images,
            synthesized.built.platform,
            synthesized.built.imported,
        )
    }


def test_no_retained_resource_of_the_example_has_a_fixed_name(synthesized: Synthesized) -> None:
    from tests.infra.test_deploy_semantics import collisions

    found = [
        str(c)
        for name, template in _templates(synthesized).items()
        for c in collisions(name, template)
    ]
    assert found == []


CACHE_WARMED_BY_TAG = {
    "Imported": "the imported VPC has no route out: its cache is warmed by tag before the "
    "first deploy (the example's docstring gives the command)",
}


def test_every_stack_that_pulls_through_a_cache_opens_an_egress_for_the_first_pull(
    synthesized: Synthesized,
) -> None:
    for name, template in _templates(synthesized).items():
        types = {r["Type"] for r in template["Resources"].values()}
        if "AWS::ECR::PullThroughCacheRule" not in types or name in CACHE_WARMED_BY_TAG:
            continue
        assert {"Custom::TemporaryEgress", "Custom::TemporaryEgressTeardown"} <= types, name


def test_the_services_wait_for_the_egress_and_the_teardown_for_the_services(
    synthesized: Synthesized,
) -> None:
    resources = synthesized.platform
    (egress_id, _) = only(resources, "Custom::TemporaryEgress")
    (_, teardown) = only(resources, "Custom::TemporaryEgressTeardown")
    services = of_type(resources, "AWS::ECS::Service")
    assert len(services) == 3
    for service_id, service in services.items():
        assert egress_id in service["DependsOn"]
        assert service_id in teardown["DependsOn"]


def test_app_images_come_from_the_images_stack(synthesized: Synthesized) -> None:
    repositories = of_type(synthesized.platform, "AWS::ECR::Repository")
    # Only the sidecar cache repositories live with the services.
    assert all("Cache" in logical_id for logical_id in repositories)
    assert synthesized.built.images in synthesized.built.platform.dependencies


def of_type(resources: Resources, resource_type: str) -> Resources:
    return {k: r for k, r in resources.items() if r["Type"] == resource_type}


def only(resources: Resources, resource_type: str) -> tuple[str, dict[str, Any]]:
    found = of_type(resources, resource_type)
    assert len(found) == 1, f"{resource_type}: {sorted(found)}"
    return next(iter(found.items()))


def group_id(value: Any) -> str:
    """The logical id of a security group in ``Fn::GetAtt``, or the literal id."""
    if isinstance(value, dict):
        return str(value["Fn::GetAtt"][0])
    return str(value)


def rules(resources: Resources, group: str, direction: str) -> list[dict[str, Any]]:
    """Every ingress or egress rule of ``group``: inline ones and separate resources."""
    inline_key, resource_type = {
        "ingress": ("SecurityGroupIngress", "AWS::EC2::SecurityGroupIngress"),
        "egress": ("SecurityGroupEgress", "AWS::EC2::SecurityGroupEgress"),
    }[direction]
    found = list(resources[group]["Properties"].get(inline_key) or [])
    found += [
        r["Properties"]
        for r in of_type(resources, resource_type).values()
        if group_id(r["Properties"]["GroupId"]) == group
    ]
    return found


def service_group(resources: Resources, service_id: str) -> str:
    network = resources[service_id]["Properties"]["NetworkConfiguration"]
    (group,) = network["AwsvpcConfiguration"]["SecurityGroups"]
    return group_id(group)


def test_both_stacks_have_an_explicit_environment(synthesized: Synthesized) -> None:
    for stack in (synthesized.built.platform, synthesized.built.imported):
        assert (stack.account, stack.region) == ("111111111111", "eu-west-1")


def test_synth_needs_no_lookup(synthesized: Synthesized) -> None:
    # The zones come from the app's context: no credentials needed, no dummy zones.
    manifest = json.loads((synthesized.assembly_dir / "manifest.json").read_text())
    assert manifest.get("missing") is None
    zones = [
        r["Properties"]["AvailabilityZone"]
        for r in of_type(synthesized.platform, "AWS::EC2::Subnet").values()
    ]
    assert zones == ["eu-west-1a", "eu-west-1b"]


def test_validation_report_has_no_findings(synthesized: Synthesized) -> None:
    report = json.loads((synthesized.assembly_dir / "validation-report.json").read_text())
    findings = [v for r in report.get("pluginReports", []) for v in r.get("violations", [])]
    assert findings == []


def test_three_services_share_one_cluster(synthesized: Synthesized) -> None:
    platform = synthesized.platform
    cluster_id, cluster = only(platform, "AWS::ECS::Cluster")
    assert {"Name": "containerInsights", "Value": "enabled"} in cluster["Properties"][
        "ClusterSettings"
    ]
    _, association = only(platform, "AWS::ECS::ClusterCapacityProviderAssociations")
    assert association["Properties"]["CapacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    services = of_type(platform, "AWS::ECS::Service")
    assert len(services) == 3
    for service in services.values():
        assert service["Properties"]["Cluster"] == {"Ref": cluster_id}


def test_two_services_share_the_https_listener_by_path(synthesized: Synthesized) -> None:
    platform = synthesized.platform
    built = synthesized.built.platform
    only(platform, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    https_id = synthesized.logical_id(built.load_balancer.listener)
    # Users rolls: a CloudFormation rule. Orders deploys blue/green: its rule is the custom
    # resource whose forward action ECS owns, over its two target groups.
    rules = of_type(platform, "AWS::ElasticLoadBalancingV2::ListenerRule")
    (users_rule,) = rules.values()
    (orders_rule,) = of_type(platform, "Custom::ProductionListenerRule").values()
    users_group = {"Ref": synthesized.logical_id(built.users.target_group)}
    assert users_rule["Properties"]["Priority"] == 20
    assert users_rule["Properties"]["Actions"] == [
        {"TargetGroupArn": users_group, "Type": "forward"}
    ]
    assert orders_rule["Properties"]["Priority"] == 10
    assert "Actions" not in orders_rule["Properties"]
    assert orders_rule["Properties"]["TargetGroupArns"] == [
        {"Ref": synthesized.logical_id(g)}
        for g in (built.orders.target_group, built.orders.alternate_target_group)
    ]
    for rule, service, path in (
        (orders_rule, built.orders, "/orders/*"),
        (users_rule, built.users, "/users/*"),
    ):
        assert rule["Properties"]["ListenerArn"] == {"Ref": https_id}
        assert rule["Properties"]["Conditions"] == [
            {"Field": "path-pattern", "PathPatternConfig": {"Values": [path]}}
        ]
        service_id = synthesized.logical_id(service.service)
        (attachment,) = platform[service_id]["Properties"]["LoadBalancers"]
        assert attachment["TargetGroupArn"] == {"Ref": synthesized.logical_id(service.target_group)}


def test_https_uses_the_imported_certificate_and_http_redirects(
    synthesized: Synthesized,
) -> None:
    listeners = of_type(synthesized.platform, "AWS::ElasticLoadBalancingV2::Listener")
    by_port = {r["Properties"]["Port"]: r["Properties"] for r in listeners.values()}
    assert sorted(by_port) == [80, 443]
    https = by_port[443]
    assert https["Protocol"] == "HTTPS"
    assert https["Certificates"] == [{"CertificateArn": CERTIFICATE_ARN}]
    assert https["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert by_port[80]["DefaultActions"] == [
        {
            "RedirectConfig": {"Port": "443", "Protocol": "HTTPS", "StatusCode": "HTTP_301"},
            "Type": "redirect",
        }
    ]


def test_backend_registers_a_records_and_has_no_target_group(
    synthesized: Synthesized,
) -> None:
    platform = synthesized.platform
    inventory = synthesized.built.platform.inventory
    assert inventory.target_group is None
    assert inventory.load_balancer is None
    properties = platform[synthesized.logical_id(inventory.service)]["Properties"]
    assert "LoadBalancers" not in properties
    assert "HealthCheckGracePeriodSeconds" not in properties
    (registry,) = properties["ServiceRegistries"]
    discovery_id = registry["RegistryArn"]["Fn::GetAtt"][0]
    dns = platform[discovery_id]["Properties"]["DnsConfig"]
    assert dns["DnsRecords"] == [{"TTL": 10, "Type": "A"}]
    namespace_id, namespace = only(platform, "AWS::ServiceDiscovery::PrivateDnsNamespace")
    assert namespace["Properties"]["Name"] == NAMESPACE
    assert dns["NamespaceId"] == {"Fn::GetAtt": [namespace_id, "Id"]}
    assert platform[discovery_id]["Properties"]["Name"] == "inventory"
    assert inventory.url == f"http://inventory.{NAMESPACE}:{APP_PORT}"
    # Behind the shared listener: Users' target group and Orders' two (blue/green); none
    # for the backend.
    assert len(of_type(platform, "AWS::ElasticLoadBalancingV2::TargetGroup")) == 3


def test_backend_admits_only_the_frontends_on_the_app_port(synthesized: Synthesized) -> None:
    platform = synthesized.platform
    built = synthesized.built.platform
    backend = service_group(platform, synthesized.logical_id(built.inventory.service))
    frontends = {
        service_group(platform, synthesized.logical_id(s.service))
        for s in (built.orders, built.users)
    }
    ingress = rules(platform, backend, "ingress")
    assert {
        (group_id(r.get("SourceSecurityGroupId")), r["IpProtocol"], r["FromPort"], r["ToPort"])
        for r in ingress
    } == {(f, "tcp", APP_PORT, APP_PORT) for f in frontends}
    assert len(ingress) == 2
    assert all("CidrIp" not in r and "CidrIpv6" not in r for r in ingress)


def test_no_ingress_from_anywhere(synthesized: Synthesized) -> None:
    for resources in (synthesized.platform, synthesized.imported):
        ingress = [
            rule
            for group in of_type(resources, "AWS::EC2::SecurityGroup")
            for rule in rules(resources, group, "ingress")
        ]
        assert ingress, "the check found the ingress rules"
        assert not [r for r in ingress if {r.get("CidrIp"), r.get("CidrIpv6")} & WORLD]


def test_no_service_has_a_desired_count(synthesized: Synthesized) -> None:
    for resources in (synthesized.platform, synthesized.imported):
        for service in of_type(resources, "AWS::ECS::Service").values():
            assert "DesiredCount" not in service["Properties"]


def test_each_service_depends_on_the_capacity_provider_association(
    synthesized: Synthesized,
) -> None:
    for resources in (synthesized.platform, synthesized.imported):
        association_id, _ = only(resources, "AWS::ECS::ClusterCapacityProviderAssociations")
        for service in of_type(resources, "AWS::ECS::Service").values():
            assert association_id in service["DependsOn"]


def test_tracing_sidecars_come_through_the_stacks_caches(synthesized: Synthesized) -> None:
    def images(resources: Resources) -> list[str]:
        return sorted(
            json.dumps(container["Image"])
            for task in of_type(resources, "AWS::ECS::TaskDefinition").values()
            for container in task["Properties"]["ContainerDefinitions"]
            if container["Name"] == "tracing"
        )

    platform = images(synthesized.platform)
    assert len(platform) == 3
    assert sum("/platform-ecr-public/xray/aws-xray-daemon:" in i for i in platform) == 2
    assert (
        sum("/platform-ecr-public/aws-observability/aws-otel-collector:" in i for i in platform)
        == 1
    )
    (imported,) = images(synthesized.imported)
    assert "/imported-ecr-public/xray/aws-xray-daemon:" in imported


def test_imported_vpc_service_reaches_only_the_endpoints_it_was_given(
    synthesized: Synthesized,
) -> None:
    imported = synthesized.imported
    built = synthesized.built.imported
    group = service_group(imported, synthesized.logical_id(built.service.service))
    egress = [
        r for r in rules(imported, group, "egress") if r.get("CidrIp") != "255.255.255.255/32"
    ]
    assert sorted(
        (
            r.get("DestinationSecurityGroupId") or r.get("DestinationPrefixListId"),
            r["IpProtocol"],
            r["FromPort"],
        )
        for r in egress
    ) == sorted(
        [
            (IMPORTED_ENDPOINT_SECURITY_GROUP_ID, "tcp", 443),
            (IMPORTED_S3_PREFIX_LIST_ID, "tcp", 443),
        ]
    ), "only the two rules the example adds: no grant on endpoints the library does not know"
    # The endpoints' group belongs to the VPC's owner: nothing is added to it here.
    assert not [
        r
        for r in of_type(imported, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == IMPORTED_ENDPOINT_SECURITY_GROUP_ID
    ]
    assert not of_type(imported, "AWS::EC2::VPC")
    assert not of_type(imported, "AWS::EC2::VPCEndpoint")
    # Its own load balancer, in the imported isolated subnets.
    _, load_balancer = only(imported, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert load_balancer["Properties"]["Scheme"] == "internal"
    assert sorted(load_balancer["Properties"]["Subnets"]) == sorted(IMPORTED_SUBNET_IDS)
