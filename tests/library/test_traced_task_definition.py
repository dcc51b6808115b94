"""TracedTaskDefinition and its sidecars as a library consumer uses them, on a bare App
(none of this project's feature flags): the X-Ray daemon and the ADOT collector through
a pull-through cache and from ECR Public, the app container, IAM, the TaskExtension
protocol with a consumer's own extension, prop validation and cdk-nag.

Every task definition of the module lives in one stack, synthesized once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Duration, Environment, Stack, Validations
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ssm as ssm
from cdk_nag import AwsSolutionsChecks

from tests.conftest import bare_app
from traced_fargate import (
    AdotCollector,
    InvalidPropsError,
    PullThroughCache,
    TaskExtension,
    TracedTaskDefinition,
    XRayDaemon,
)

ACCOUNT = "111111111111"
REGION = "eu-west-1"
ENV = Environment(account=ACCOUNT, region=REGION)
PREFIX = "lib-cache"
APP_IMAGE = "public.ecr.aws/docker/library/python:3.13-slim"
PROBE_IMAGE = "public.ecr.aws/docker/library/busybox:1.37"
PARAMETER = "/lib/db-password"
DIGEST = "sha256:" + "0123456789abcdef" * 4
COLLECTOR_CONFIG = "receivers:\n  awsxray:\n    endpoint: 0.0.0.0:2000\n"
TASK_CPU = 512
TASK_MEMORY_MIB = 1024
PROBE_CPU = 64
PROBE_MEMORY_MIB = 128

XRAY_WRITE = {
    "Action": [
        "xray:GetSamplingRules",
        "xray:GetSamplingStatisticSummaries",
        "xray:GetSamplingTargets",
        "xray:PutTelemetryRecords",
        "xray:PutTraceSegments",
    ],
    "Effect": "Allow",
    "Resource": "*",
}


def _arn(rest: str) -> dict[str, Any]:
    """An ARN as a bare app renders it: the partition is a reference."""
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":{rest}"]]}


def _cached(path: str) -> dict[str, Any]:
    """An image URI through the module's pull-through cache."""
    return {
        "Fn::Join": [
            "",
            [f"{ACCOUNT}.dkr.ecr.{REGION}.", {"Ref": "AWS::URLSuffix"}, f"/{PREFIX}/{path}"],
        ]
    }


class Probe(TaskExtension):
    """A consumer's own extension: a probe sidecar that starts after the app, and a log
    group of its own for the app's logs. It records the order its hooks run in."""

    def __init__(self, name: str = "probe", interval_seconds: int = 10) -> None:
        self._name = name
        self.interval_seconds = interval_seconds
        self.calls: list[str] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def cpu(self) -> int:
        return PROBE_CPU

    @property
    def memory_reservation_mib(self) -> int:
        return PROBE_MEMORY_MIB

    def problems(self) -> list[str]:
        self.calls.append("problems")
        if self.interval_seconds < 1:
            return [
                f"Probe.interval_seconds: {self.interval_seconds} is not allowed; allowed: >= 1"
            ]
        return []

    def add_to_task(self, task: TracedTaskDefinition) -> None:
        self.calls.append("add_to_task")
        container = task.task_definition.add_container(
            "Probe",
            container_name=self.name,
            image=ecs.ContainerImage.from_registry(PROBE_IMAGE),
            essential=False,
            cpu=self.cpu,
            memory_reservation_mib=self.memory_reservation_mib,
            command=["probe", f"--interval={self.interval_seconds}"],
            readonly_root_filesystem=True,
            logging=task.container_logging("ProbeLogGroup", self.name),
        )
        task.add_writable_tmp(container)

    def app_environment(self) -> Mapping[str, str]:
        self.calls.append("app_environment")
        return {"PROBE_INTERVAL": str(self.interval_seconds)}

    def app_logging(self, task: TracedTaskDefinition, logging: ecs.LogDriver) -> ecs.LogDriver:
        self.calls.append("app_logging")
        return task.aws_logs(task.new_log_group("RoutedAppLogGroup"), "routed")

    def app_container_added(
        self, task: TracedTaskDefinition, app_container: ecs.ContainerDefinition
    ) -> None:
        self.calls.append("app_container_added")
        task.task_definition.find_container(self.name).add_container_dependencies(
            ecs.ContainerDependency(
                container=app_container, condition=ecs.ContainerDependencyCondition.START
            )
        )


@dataclass(frozen=True)
class Built:
    stack: Stack
    cache: PullThroughCache
    daemon: TracedTaskDefinition
    public: TracedTaskDefinition
    collector: TracedTaskDefinition
    configured: TracedTaskDefinition
    extended: TracedTaskDefinition
    probe: Probe
    template: dict[str, Any]
    assembly_dir: Path

    @property
    def tasks(self) -> list[TracedTaskDefinition]:
        return [self.daemon, self.public, self.collector, self.configured, self.extended]


@pytest.fixture(scope="module")
def built() -> Built:
    app = bare_app()
    stack = Stack(app, "Lib", env=ENV)
    cache = PullThroughCache(stack, "Cache", repository_prefix=PREFIX)
    image = ecs.ContainerImage.from_registry(APP_IMAGE)
    parameter = ssm.StringParameter.from_secure_string_parameter_attributes(
        stack, "DbPassword", parameter_name=PARAMETER
    )
    daemon = TracedTaskDefinition(
        stack,
        "Daemon",
        app_image=image,
        tracing=XRayDaemon(pull_through_cache=cache),
        app_secrets={"DB_PASSWORD": ecs.Secret.from_ssm_parameter(parameter)},
    )
    public = TracedTaskDefinition(
        stack,
        "Public",
        app_image=image,
        tracing=XRayDaemon(),
        service_name="orders",
        cpu=1024,
        memory_mib=2048,
        cpu_architecture=ecs.CpuArchitecture.ARM64,
        app_cpu=512,
        app_memory_reservation_mib=1024,
        app_port=9000,
        app_user="10002:10002",
        app_environment={"LOG_LEVEL": "debug"},
        app_health_check=ecs.HealthCheck(
            command=["CMD", "/app/healthcheck"],
            interval=Duration.seconds(15),
            timeout=Duration.seconds(3),
            retries=2,
            start_period=Duration.seconds(20),
        ),
        stop_timeout=Duration.seconds(90),
    )
    collector = TracedTaskDefinition(
        stack, "Collector", app_image=image, tracing=AdotCollector(pull_through_cache=cache)
    )
    configured = TracedTaskDefinition(
        stack,
        "Configured",
        app_image=image,
        tracing=AdotCollector(config=COLLECTOR_CONFIG, tag=DIGEST),
    )
    probe = Probe()
    extended = TracedTaskDefinition(
        stack,
        "Extended",
        app_image=image,
        tracing=XRayDaemon(pull_through_cache=cache),
        extensions=[probe],
    )

    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    # Raises on any unacknowledged nag finding.
    assembly = app.synth()
    return Built(
        stack=stack,
        cache=cache,
        daemon=daemon,
        public=public,
        collector=collector,
        configured=configured,
        extended=extended,
        probe=probe,
        template=assembly.get_stack_by_name("Lib").template,
        assembly_dir=Path(assembly.directory),
    )


def _logical_id(built: Built, construct: Any) -> str:
    element = construct.node.default_child or construct
    return str(built.stack.resolve(element.logical_id))


def _resources(built: Built, kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in built.template["Resources"].items() if r["Type"] == kind}


def _resource(built: Built, construct: Any) -> dict[str, Any]:
    resource: dict[str, Any] = built.template["Resources"][_logical_id(built, construct)]
    return resource


def _task(built: Built, task: TracedTaskDefinition) -> dict[str, Any]:
    return _resource(built, task.task_definition)


def _containers(built: Built, task: TracedTaskDefinition) -> dict[str, dict[str, Any]]:
    definitions = _task(built, task)["Properties"]["ContainerDefinitions"]
    return {c["Name"]: c for c in definitions}


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["Name"]: e["Value"] for e in container.get("Environment", [])}


def _role_statements(built: Built, role: Any) -> list[dict[str, Any]]:
    role_ref = {"Ref": _logical_id(built, role)}
    policies = [
        p
        for p in _resources(built, "AWS::IAM::Policy").values()
        if role_ref in p["Properties"]["Roles"]
    ]
    assert len(policies) == 1
    statements: list[dict[str, Any]] = policies[0]["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _logs_statement(built: Built, log_group: Any) -> dict[str, Any]:
    return {
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Effect": "Allow",
        "Resource": {"Fn::GetAtt": [_logical_id(built, log_group), "Arn"]},
    }


def _log_group(task: TracedTaskDefinition, construct_id: str) -> Any:
    return task.node.find_child(construct_id)


PULL_STATEMENTS = [
    {
        "Action": [
            "ecr:BatchCheckLayerAvailability",
            "ecr:BatchGetImage",
            "ecr:BatchImportUpstreamImage",
            "ecr:CreateRepository",
            "ecr:GetDownloadUrlForLayer",
        ],
        "Effect": "Allow",
        "Resource": _arn(f"ecr:{REGION}:{ACCOUNT}:repository/{PREFIX}/*"),
    },
    {"Action": "ecr:GetAuthorizationToken", "Effect": "Allow", "Resource": "*"},
]


# --- the X-Ray daemon -----------------------------------------------------------


def test_daemon_image_comes_through_the_cache_at_the_pinned_default_tag(built: Built) -> None:
    tracing = _containers(built, built.daemon)["tracing"]
    assert tracing["Image"] == _cached(f"xray/aws-xray-daemon:{XRayDaemon.DEFAULT_TAG}")
    # The task is created after the cache rule it pulls through.
    assert _task(built, built.daemon)["DependsOn"] == [_logical_id(built, built.cache.rule)]


def test_daemon_without_a_cache_comes_from_ecr_public(built: Built) -> None:
    tracing = _containers(built, built.public)["tracing"]
    assert tracing["Image"] == f"public.ecr.aws/xray/aws-xray-daemon:{XRayDaemon.DEFAULT_TAG}"
    assert "DependsOn" not in _task(built, built.public)


def test_daemon_container_health_check_ports_region_and_reservations(built: Built) -> None:
    tracing = _containers(built, built.daemon)["tracing"]
    assert tracing["HealthCheck"] == {
        "Command": ["CMD", "/xray", "--version"],
        "Interval": 30,
        "Retries": 3,
        "StartPeriod": 10,
        "Timeout": 5,
    }
    assert tracing["PortMappings"] == [
        {"ContainerPort": 2000, "Protocol": "udp"},
        {"ContainerPort": 2000, "Protocol": "tcp"},
    ]
    assert tracing["Environment"] == [{"Name": "AWS_REGION", "Value": REGION}]
    assert "Command" not in tracing
    assert tracing["Essential"] is True
    assert tracing["ReadonlyRootFilesystem"] is True
    assert tracing["Cpu"] == 32
    assert tracing["MemoryReservation"] == 256


def test_app_gets_what_the_daemon_leaves_of_the_task_size(built: Built) -> None:
    task = _task(built, built.daemon)["Properties"]
    assert (task["Cpu"], task["Memory"]) == (str(TASK_CPU), str(TASK_MEMORY_MIB))
    app = _containers(built, built.daemon)["app"]
    assert app["Cpu"] == TASK_CPU - 32
    assert app["MemoryReservation"] == TASK_MEMORY_MIB - 256


def test_given_app_reservations_are_used_as_given(built: Built) -> None:
    app = _containers(built, built.public)["app"]
    assert (app["Cpu"], app["MemoryReservation"]) == (512, 1024)


# --- the ADOT collector -----------------------------------------------------------


def test_collector_runs_the_default_config_through_the_cache(built: Built) -> None:
    tracing = _containers(built, built.collector)["tracing"]
    assert tracing["Image"] == _cached(
        f"aws-observability/aws-otel-collector:{AdotCollector.DEFAULT_TAG}"
    )
    assert "Command" not in tracing
    assert tracing["HealthCheck"]["Command"] == ["CMD", "/healthcheck"]
    assert _env(tracing) == {
        "AWS_REGION": REGION,
        "AOT_CONFIG_CONTENT": AdotCollector.DEFAULT_CONFIG,
    }
    assert (tracing["Cpu"], tracing["MemoryReservation"]) == (128, 256)
    assert _containers(built, built.collector)["app"]["Cpu"] == TASK_CPU - 128


def test_collector_listens_for_xray_segments_sampling_and_otlp(built: Built) -> None:
    assert _containers(built, built.collector)["tracing"]["PortMappings"] == [
        {"ContainerPort": 2000, "Protocol": "udp"},
        {"ContainerPort": 2000, "Protocol": "tcp"},
        {"ContainerPort": 4317, "Protocol": "tcp"},
        {"ContainerPort": 4318, "Protocol": "tcp"},
    ]


def test_default_collector_config_serves_sampling_on_tcp_2000_and_traces_only() -> None:
    import yaml

    config = yaml.safe_load(AdotCollector.DEFAULT_CONFIG)
    # Without awsproxy nothing answers the SDK's sampling requests on TCP 2000.
    assert config["extensions"]["awsproxy"] == {"endpoint": "127.0.0.1:2000"}
    assert config["receivers"]["awsxray"] == {"endpoint": "127.0.0.1:2000", "transport": "udp"}
    assert set(config["service"]["extensions"]) == {"health_check", "awsproxy"}
    assert set(config["service"]["pipelines"]) == {"traces"}
    traces = config["service"]["pipelines"]["traces"]
    assert set(traces["receivers"]) == {"awsxray", "otlp"}
    assert traces["exporters"] == ["awsxray"]
    endpoints = [p["endpoint"] for p in config["receivers"]["otlp"]["protocols"].values()]
    assert endpoints == ["127.0.0.1:4317", "127.0.0.1:4318"]


def test_app_reaches_the_collector_over_xray_and_otlp(built: Built) -> None:
    env = _env(_containers(built, built.collector)["app"])
    assert env["AWS_XRAY_DAEMON_ADDRESS"] == "127.0.0.1:2000"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"


def test_collector_config_is_passed_as_content_without_a_command(built: Built) -> None:
    tracing = _containers(built, built.configured)["tracing"]
    assert "Command" not in tracing
    assert _env(tracing) == {"AWS_REGION": REGION, "AOT_CONFIG_CONTENT": COLLECTOR_CONFIG}
    # A digest pins the image by content.
    assert tracing["Image"] == f"public.ecr.aws/aws-observability/aws-otel-collector@{DIGEST}"


# --- the app container ------------------------------------------------------------


def test_app_runs_non_root_on_a_read_only_root_with_its_own_tmp(built: Built) -> None:
    containers = _containers(built, built.daemon)
    app = containers["app"]
    assert app["Image"] == APP_IMAGE
    assert app["Essential"] is True
    assert app["User"] == "10001"
    assert app["ReadonlyRootFilesystem"] is True
    for name, container in containers.items():
        assert container["MountPoints"] == [
            {"ContainerPath": "/tmp", "ReadOnly": False, "SourceVolume": f"{name}-tmp"}
        ]
    assert _task(built, built.daemon)["Properties"]["Volumes"] == [
        {"Name": "tracing-tmp"},
        {"Name": "app-tmp"},
    ]


def test_app_environment_port_and_start_order(built: Built) -> None:
    app = _containers(built, built.daemon)["app"]
    assert _env(app) == {
        "SERVICE_NAME": "Daemon",
        "PORT": "8080",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
    }
    assert app["PortMappings"] == [{"ContainerPort": 8080, "Name": "app", "Protocol": "tcp"}]
    assert app["DependsOn"] == [{"Condition": "START", "ContainerName": "tracing"}]


def test_app_defaults_no_health_check_and_a_30_s_stop_timeout(built: Built) -> None:
    app = _containers(built, built.daemon)["app"]
    assert "HealthCheck" not in app
    assert app["StopTimeout"] == 30
    assert built.daemon.has_app_health_check is False


def test_app_props_are_rendered_as_given(built: Built) -> None:
    app = _containers(built, built.public)["app"]
    assert app["HealthCheck"] == {
        "Command": ["CMD", "/app/healthcheck"],
        "Interval": 15,
        "Retries": 2,
        "StartPeriod": 20,
        "Timeout": 3,
    }
    assert built.public.has_app_health_check is True
    assert app["StopTimeout"] == 90
    assert app["User"] == "10002:10002"
    assert _env(app) == {
        "SERVICE_NAME": "orders",
        "PORT": "9000",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "LOG_LEVEL": "debug",
    }
    assert app["PortMappings"] == [{"ContainerPort": 9000, "Name": "app", "Protocol": "tcp"}]


def test_app_logs_non_blocking_to_its_encrypted_log_group(built: Built) -> None:
    app = _containers(built, built.daemon)["app"]
    assert app["LogConfiguration"] == {
        "LogDriver": "awslogs",
        "Options": {
            "awslogs-group": {"Ref": _logical_id(built, built.daemon.app_log_group)},
            "awslogs-stream-prefix": "app",
            "awslogs-region": REGION,
            "mode": "non-blocking",
            "max-buffer-size": "26214400b",
        },
    }
    group = _resource(built, built.daemon.app_log_group)
    assert group["Properties"] == {
        "KmsKeyId": {"Fn::GetAtt": [_logical_id(built, built.daemon.log_encryption_key), "Arn"]},
        "RetentionInDays": 30,
    }


def test_secrets_are_read_from_the_parameter_at_start(built: Built) -> None:
    app = _containers(built, built.daemon)["app"]
    assert app["Secrets"] == [
        {"Name": "DB_PASSWORD", "ValueFrom": _arn(f"ssm:{REGION}:{ACCOUNT}:parameter{PARAMETER}")}
    ]
    assert "DB_PASSWORD" not in _env(app)


@pytest.mark.parametrize(("attribute", "architecture"), [("daemon", "X86_64"), ("public", "ARM64")])
def test_cpu_architecture_renders_the_runtime_platform(
    built: Built, attribute: str, architecture: str
) -> None:
    task = _task(built, getattr(built, attribute))["Properties"]
    assert task["RuntimePlatform"] == {
        "CpuArchitecture": architecture,
        "OperatingSystemFamily": "LINUX",
    }
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert task["NetworkMode"] == "awsvpc"


# --- IAM ----------------------------------------------------------------------------


def test_every_task_role_may_only_write_traces(built: Built) -> None:
    roles = _resources(built, "AWS::IAM::Role")
    for task in built.tasks:
        assert _role_statements(built, task.task_role) == [XRAY_WRITE]
        properties = roles[_logical_id(built, task.task_role)]["Properties"]
        assert "ManagedPolicyArns" not in properties
        assert "Policies" not in properties


def test_execution_role_holds_exactly_pull_logs_and_the_parameter(built: Built) -> None:
    task = built.daemon
    assert _role_statements(built, task.execution_role) == [
        *PULL_STATEMENTS,
        _logs_statement(built, _log_group(task, "TracingLogGroup")),
        _logs_statement(built, task.app_log_group),
        {
            "Action": [
                "ssm:DescribeParameters",
                "ssm:GetParameters",
                "ssm:GetParameter",
                "ssm:GetParameterHistory",
            ],
            "Effect": "Allow",
            "Resource": _arn(f"ssm:{REGION}:{ACCOUNT}:parameter{PARAMETER}"),
        },
    ]


def test_execution_role_without_a_cache_only_writes_logs(built: Built) -> None:
    task = built.public
    assert _role_statements(built, task.execution_role) == [
        _logs_statement(built, _log_group(task, "TracingLogGroup")),
        _logs_statement(built, task.app_log_group),
    ]


def test_no_role_has_a_managed_or_inline_policy(built: Built) -> None:
    assert _resources(built, "AWS::IAM::ManagedPolicy") == {}
    for role in _resources(built, "AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"]
        assert "Policies" not in role["Properties"]


# --- the extension protocol --------------------------------------------------------


def test_extension_hooks_run_once_in_the_documented_order(built: Built) -> None:
    assert built.probe.calls == [
        "problems",
        "app_environment",
        "add_to_task",
        "app_logging",
        "app_container_added",
    ]
    assert built.extended.extensions == (built.extended.tracing, built.probe)


def test_extension_adds_its_container_with_its_reservations(built: Built) -> None:
    containers = _containers(built, built.extended)
    assert list(containers) == ["tracing", "probe", "app"]
    probe = containers["probe"]
    assert probe["Image"] == PROBE_IMAGE
    assert probe["Essential"] is False
    assert probe["Command"] == ["probe", "--interval=10"]
    assert (probe["Cpu"], probe["MemoryReservation"]) == (PROBE_CPU, PROBE_MEMORY_MIB)
    assert probe["LogConfiguration"]["Options"]["awslogs-group"] == {
        "Ref": _logical_id(built, _log_group(built.extended, "ProbeLogGroup"))
    }
    assert probe["MountPoints"] == [
        {"ContainerPath": "/tmp", "ReadOnly": False, "SourceVolume": "probe-tmp"}
    ]
    # The extension's reservations count toward the task size.
    app = containers["app"]
    assert app["Cpu"] == TASK_CPU - 32 - PROBE_CPU
    assert app["MemoryReservation"] == TASK_MEMORY_MIB - 256 - PROBE_MEMORY_MIB


def test_extension_sets_the_app_environment(built: Built) -> None:
    assert _env(_containers(built, built.extended)["app"]) == {
        "SERVICE_NAME": "Extended",
        "PORT": "8080",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "PROBE_INTERVAL": "10",
    }


def test_extension_replaces_the_app_log_driver(built: Built) -> None:
    routed = _log_group(built.extended, "RoutedAppLogGroup")
    options = _containers(built, built.extended)["app"]["LogConfiguration"]["Options"]
    assert options["awslogs-group"] == {"Ref": _logical_id(built, routed)}
    assert options["awslogs-stream-prefix"] == "routed"
    # The execution role writes to the log groups in use, not to the replaced one.
    assert _role_statements(built, built.extended.execution_role) == [
        *PULL_STATEMENTS,
        _logs_statement(built, _log_group(built.extended, "TracingLogGroup")),
        _logs_statement(built, _log_group(built.extended, "ProbeLogGroup")),
        _logs_statement(built, routed),
    ]


def test_extension_orders_start_up_after_the_app_exists(built: Built) -> None:
    containers = _containers(built, built.extended)
    assert containers["probe"]["DependsOn"] == [{"Condition": "START", "ContainerName": "app"}]
    assert containers["app"]["DependsOn"] == [{"Condition": "START", "ContainerName": "tracing"}]


# --- cdk-nag ------------------------------------------------------------------------


def test_nag_passes_with_only_the_narrow_acknowledgments(built: Built) -> None:
    # The module's synth ran with AwsSolutionsChecks registered: an open finding would
    # have failed it. What remains to check is that nothing was waved through broadly.
    report = json.loads((built.assembly_dir / "validation-report.json").read_text())
    assert report["pluginReports"] == []
    key = Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    acknowledged = {
        (c.node.path, rule_id.removeprefix("Annotation::")): reason
        for c in built.stack.node.find_all()
        for m in c.node.metadata
        if m.type == key
        for rule_id, reason in m.data.items()
        if rule_id.startswith("Annotation::AwsSolutions-")
    }
    assert all(acknowledged.values()), "every acknowledgment gives a reason"
    cache_arn = f"arn:<AWS::Partition>:ecr:{REGION}:{ACCOUNT}:repository/{PREFIX}/*"
    expected = set()
    for task in ["Daemon", "Public", "Collector", "Configured", "Extended"]:
        expected |= {
            (f"Lib/{task}/TracingPolicy", "AwsSolutions-IAM5[Resource::*]"),
            (f"Lib/{task}/TaskDefinition", "AwsSolutions-ECS2"),
        }
    for task in ["Daemon", "Collector", "Extended"]:
        expected |= {
            (f"Lib/{task}/TaskDefinition/ExecutionRole", "AwsSolutions-IAM5[Resource::*]"),
            (
                f"Lib/{task}/TaskDefinition/ExecutionRole",
                f"AwsSolutions-IAM5[Resource::{cache_arn}]",
            ),
        }
    assert set(acknowledged) == expected


# --- validation -----------------------------------------------------------------------


def _task_definition(stack: Stack, **props: Any) -> TracedTaskDefinition:
    props.setdefault("tracing", XRayDaemon())
    return TracedTaskDefinition(
        stack, "Task", app_image=ecs.ContainerImage.from_registry(APP_IMAGE), **props
    )


def _problems(**props: Any) -> tuple[str, ...]:
    stack = Stack(bare_app(), "Invalid", env=ENV)
    with pytest.raises(InvalidPropsError) as error:
        _task_definition(stack, **props)
    lines = str(error.value).splitlines()
    assert lines == [f"Invalid/Task: {p}" for p in error.value.problems]
    # Nothing was added before the props were rejected.
    assert stack.node.find_child("Task").node.children == []
    return error.value.problems


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({"cpu": "512"}, "cpu: '512' is not an integer; allowed: a whole number"),
        ({"memory_mib": 1024.0}, "memory_mib: 1024.0 is not an integer; allowed: a whole number"),
        (
            {"cpu": 512, "memory_mib": 8192},
            "cpu 512 / memory_mib 8192: not a Fargate task size; with cpu 512, memory must be "
            "one of: 1024, 2048, 3072, 4096 MiB",
        ),
        (
            {"cpu": 300},
            "cpu 300 / memory_mib 1024: not a Fargate task size; cpu must be one of 256, 512, "
            "1024, 2048, 4096, 8192, 16384",
        ),
        ({"app_cpu": 481}, "app_cpu: 481 plus the sidecars' 32 must fit the task's cpu 512"),
        (
            {"tracing": AdotCollector(), "app_cpu": 400},
            "app_cpu: 400 plus the sidecars' 128 must fit the task's cpu 512",
        ),
        (
            {"app_memory_reservation_mib": 769},
            "app_memory_reservation_mib: 769 plus the sidecars' 256 must fit the task's "
            "memory_mib 1024",
        ),
        (
            {
                "cpu": 256,
                "memory_mib": 512,
                "tracing": AdotCollector(),
                "extensions": [Probe()],
                "app_memory_reservation_mib": 200,
            },
            "app_memory_reservation_mib: 200 plus the sidecars' 384 must fit the task's "
            "memory_mib 512",
        ),
        (
            {"stop_timeout": Duration.seconds(121)},
            "stop_timeout: 121 s is not allowed; Fargate accepts 2 to 120 s",
        ),
        (
            {"stop_timeout": Duration.seconds(1)},
            "stop_timeout: 1 s is not allowed; Fargate accepts 2 to 120 s",
        ),
        ({"stop_timeout": 30}, "stop_timeout: expected a Duration, got int"),
        (
            {"tracing": "xray"},
            "tracing: expected a tracing sidecar such as XRayDaemon(...) or AdotCollector(...), "
            "got str",
        ),
        (
            {"cpu_architecture": "ARM64"},
            "cpu_architecture: expected ecs.CpuArchitecture.X86_64 or "
            "ecs.CpuArchitecture.ARM64, got str",
        ),
        ({"extensions": 5}, "extensions: expected a sequence of TaskExtension, got 5"),
        (
            {"app_port": "8080"},
            "app_port: '8080' is not an integer; allowed: a whole number from 1 to 65535",
        ),
        (
            {"app_environment": {"WORKERS": 4}},
            "app_environment: 'WORKERS': 4 is not a string; environment values are strings",
        ),
    ],
)
def test_invalid_props_are_rejected_naming_the_prop(props: dict[str, Any], expected: str) -> None:
    assert _problems(**props) == (expected,)


@pytest.mark.parametrize("user", ["0", "root", "0:0", "root:10001"])
def test_root_app_user_is_rejected(user: str) -> None:
    assert _problems(app_user=user) == (
        f"app_user: {user!r} runs the app as root, which is not allowed; give a non-root "
        "uid such as '10001'",
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [("PORT", "8080"), ("SERVICE_NAME", "Task"), ("AWS_XRAY_DAEMON_ADDRESS", "127.0.0.1:2000")],
)
def test_app_environment_may_not_override_what_the_construct_sets(key: str, value: str) -> None:
    assert _problems(app_environment={key: "mine"}) == (
        f"app_environment: {key!r} is set by the construct (to {value!r}); remove it from "
        "app_environment or change the prop that sets it",
    )


def test_app_environment_may_not_override_what_an_extension_sets() -> None:
    (problem,) = _problems(app_environment={"PROBE_INTERVAL": "1"}, extensions=[Probe()])
    assert problem.startswith("app_environment: 'PROBE_INTERVAL' is set by the construct")


def test_a_second_tracing_sidecar_is_rejected() -> None:
    assert _problems(extensions=[AdotCollector()]) == (
        "extensions[0]: expected a TaskExtension that is not a second tracing sidecar "
        "(give it as tracing=), got AdotCollector",
        "extensions: two extensions are named 'tracing'; names are unique within a task",
    )


def test_two_extensions_with_one_name_are_rejected() -> None:
    assert _problems(extensions=[Probe(), Probe()]) == (
        "extensions: two extensions are named 'probe'; names are unique within a task",
    )


def test_extension_problems_are_reported_with_the_tasks_own() -> None:
    assert _problems(extensions=[Probe(interval_seconds=0)], app_user="root") == (
        "Probe.interval_seconds: 0 is not allowed; allowed: >= 1",
        "app_user: 'root' runs the app as root, which is not allowed; give a non-root "
        "uid such as '10001'",
    )


def test_every_problem_is_reported_at_once_on_its_own_line() -> None:
    problems = _problems(
        memory_mib=8192,
        cpu_architecture="arm64",
        app_cpu=600,
        app_user="0",
        app_environment={"PORT": "80"},
        stop_timeout=Duration.seconds(121),
    )
    assert [p.split(" ")[0].rstrip(":") for p in problems] == [
        "cpu",
        "cpu_architecture",
        "app_user",
        "stop_timeout",
        "app_cpu",
        "app_environment",
    ]


@pytest.mark.parametrize("sidecar", [XRayDaemon, AdotCollector])
@pytest.mark.parametrize("tag", ["latest", "LATEST"])
def test_floating_sidecar_tag_is_rejected_naming_the_prop(
    sidecar: type[XRayDaemon | AdotCollector], tag: str
) -> None:
    with pytest.raises(InvalidPropsError) as error:
        sidecar(tag=tag)
    (problem,) = error.value.problems
    assert problem.startswith(f"tag: {tag!r} is a floating tag and is not allowed")
    assert str(error.value).startswith(f"{sidecar.__name__}: tag: ")


def test_sidecar_props_are_checked_all_at_once() -> None:
    with pytest.raises(InvalidPropsError) as error:
        XRayDaemon(pull_through_cache="lib-cache", cpu="32")  # type: ignore[arg-type]
    assert [p.split(":")[0] for p in error.value.problems] == [
        "pull_through_cache",
        "cpu",
    ]


def test_empty_collector_config_is_rejected() -> None:
    with pytest.raises(InvalidPropsError) as error:
        AdotCollector(config="")
    (problem,) = error.value.problems
    assert problem.startswith("config: '' is not allowed")


def test_boundary_values_are_accepted() -> None:
    stack = Stack(bare_app(), "Edges", env=ENV)
    task = _task_definition(
        stack,
        app_cpu=TASK_CPU - 32,
        app_memory_reservation_mib=TASK_MEMORY_MIB - 256,
        stop_timeout=Duration.seconds(120),
        app_user="10001:10001",
    )
    assert task.app_container.container_name == "app"
