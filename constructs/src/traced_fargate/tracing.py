"""Tracing sidecars: the X-Ray daemon and the ADOT collector, as task extensions.

Both listen on ``127.0.0.1:2000`` (UDP segments, TCP sampling) inside the task, so an
app on the X-Ray SDK runs unchanged on either: switching the sidecar is a change of one
object, never of the app. Each class carries its tested, pinned default tag
(:attr:`XRayDaemon.DEFAULT_TAG`, :attr:`AdotCollector.DEFAULT_TAG`) in this one place.

The images come through a :class:`~traced_fargate.PullThroughCache` when one is given
(the way into a closed VPC), else straight from ECR Public (the task then needs a route
to the internet).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from aws_cdk import Acknowledgment, Duration, Stack, Validations
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam

from traced_fargate._image_tags import image_reference_problems
from traced_fargate._props import int_problems, kind_problems, str_problems
from traced_fargate.errors import InvalidPropsError
from traced_fargate.extensions import TaskExtension
from traced_fargate.pull_through_cache import PullThroughCache, cached_or_public_image

if TYPE_CHECKING:
    from traced_fargate.traced_task_definition import TracedTaskDefinition

DAEMON_PORT = 2000
"""UDP for segments and TCP for sampling requests, on both sidecars."""

OTLP_GRPC_PORT = 4317
OTLP_HTTP_PORT = 4318

XRAY_WRITE_ACTIONS = (
    "xray:GetSamplingRules",
    "xray:GetSamplingStatisticSummaries",
    "xray:GetSamplingTargets",
    "xray:PutTelemetryRecords",
    "xray:PutTraceSegments",
)
"""What a daemon or collector needs to send segments and use centralized sampling."""


DEFAULT_ADOT_CONFIG = (Path(__file__).parent / "adot_collector.yaml").read_text()
"""The collector configuration :class:`AdotCollector` runs unless given another."""

CONTAINER_NAME = "tracing"
"""The container name of every tracing sidecar: the app's dependency and log prefix."""


class TracingSidecar(TaskExtension):
    """A sidecar that receives the app's traces on ``127.0.0.1:2000`` and sends them to
    X-Ray with the task role, which it is granted to do (:data:`XRAY_WRITE_ACTIONS`)."""

    UPSTREAM_PATH: ClassVar[str]
    """The image's repository path in ECR Public."""
    DEFAULT_TAG: ClassVar[str]
    """The tested tag used when ``tag`` is left out."""

    pull_through_cache: PullThroughCache | None
    """The cache the image is pulled through; None: straight from ECR Public."""
    tag: str
    """The pinned image tag or ``sha256:`` digest."""

    @property
    def name(self) -> str:
        return CONTAINER_NAME

    @property
    @abc.abstractmethod
    def health_check_command(self) -> tuple[str, ...]:
        """The container health check."""

    @property
    def command(self) -> tuple[str, ...]:
        """Arguments to the image's entry point. Default: none."""
        return ()

    @property
    def tcp_ports(self) -> tuple[int, ...]:
        """TCP ports it listens on besides UDP 2000."""
        return (DAEMON_PORT,)

    def environment(self, region: str) -> dict[str, str]:
        """The sidecar's own environment."""
        return {"AWS_REGION": region}

    def image(self) -> ecs.ContainerImage:
        """The sidecar image: through the cache if one is given, else from ECR Public."""
        return cached_or_public_image(self.pull_through_cache, self.UPSTREAM_PATH, self.tag)

    def problems(self) -> list[str]:
        kind = type(self).__name__
        problems = kind_problems(
            f"{kind}.pull_through_cache",
            self.pull_through_cache,
            lambda v: isinstance(v, PullThroughCache),
            "a PullThroughCache",
            optional=True,
        )
        problems += str_problems(f"{kind}.tag", self.tag) or image_reference_problems(
            f"{kind}.tag", self.tag
        )
        problems += int_problems(f"{kind}.cpu", self.cpu, 0, 16384)
        problems += int_problems(f"{kind}.memory_reservation_mib", self.memory_reservation_mib, 6)
        return problems

    def _raise_if_problems(self) -> None:
        kind = type(self).__name__
        problems = [p.removeprefix(f"{kind}.") for p in self.problems()]
        if problems:
            raise InvalidPropsError(kind, problems)

    def add_to_task(self, task: TracedTaskDefinition) -> None:
        container = task.task_definition.add_container(
            "Tracing",
            container_name=CONTAINER_NAME,
            image=self.image(),
            essential=True,
            cpu=self.cpu,
            memory_reservation_mib=self.memory_reservation_mib,
            command=list(self.command) or None,
            environment=self.environment(Stack.of(task).region),
            readonly_root_filesystem=True,
            port_mappings=[
                ecs.PortMapping(container_port=DAEMON_PORT, protocol=ecs.Protocol.UDP),
                *(
                    ecs.PortMapping(container_port=p, protocol=ecs.Protocol.TCP)
                    for p in self.tcp_ports
                ),
            ],
            health_check=ecs.HealthCheck(
                command=list(self.health_check_command),
                interval=Duration.seconds(30),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=Duration.seconds(10),
            ),
            logging=task.container_logging("TracingLogGroup", CONTAINER_NAME),
        )
        task.add_writable_tmp(container)
        # A policy of its own, acknowledged alone: a wildcard that anything else adds to
        # the task role lands in the role's default policy and is still reported.
        policy = iam.Policy(
            task,
            "TracingPolicy",
            statements=[iam.PolicyStatement(actions=list(XRAY_WRITE_ACTIONS), resources=["*"])],
            roles=[task.task_role],
        )
        Validations.of(policy).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="X-Ray's PutTraceSegments, PutTelemetryRecords and sampling actions "
                "support no resource-level permissions; the policy holds only those.",
            )
        )

    def app_environment(self) -> Mapping[str, str]:
        return {"AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{DAEMON_PORT}"}

    def app_container_added(
        self, task: TracedTaskDefinition, app_container: ecs.ContainerDefinition
    ) -> None:
        app_container.add_container_dependencies(
            ecs.ContainerDependency(
                container=task.task_definition.find_container(CONTAINER_NAME),
                condition=ecs.ContainerDependencyCondition.START,
            )
        )


@dataclass(frozen=True, eq=False)
class XRayDaemon(TracingSidecar):
    """The AWS X-Ray daemon (``public.ecr.aws/xray/aws-xray-daemon``).

    In maintenance since 2026-02-25, end of support 2027-02-25: :class:`AdotCollector`
    is AWS's path forward and takes the same segments. The image is ``FROM scratch``
    (no shell), so its health check runs the binary itself.

    :param pull_through_cache: the cache the image is pulled through. Default: none, the
        image comes straight from ECR Public (needs an internet route).
    :param tag: pinned image tag or ``sha256:`` digest; ``latest`` is rejected.
        Default: :attr:`DEFAULT_TAG`.
    :param cpu: cpu units reserved. Default: 32.
    :param memory_reservation_mib: memory reserved. Default: 256.
    """

    UPSTREAM_PATH: ClassVar[str] = "xray/aws-xray-daemon"
    DEFAULT_TAG: ClassVar[str] = "3.3.15"

    pull_through_cache: PullThroughCache | None = None
    """The cache the image is pulled through; None: straight from ECR Public."""
    tag: str = DEFAULT_TAG
    """The pinned image tag or ``sha256:`` digest."""
    cpu: int = 32
    memory_reservation_mib: int = 256

    def __post_init__(self) -> None:
        self._raise_if_problems()

    @property
    def health_check_command(self) -> tuple[str, ...]:
        return ("CMD", "/xray", "--version")


@dataclass(frozen=True, eq=False)
class AdotCollector(TracingSidecar):
    """The AWS Distro for OpenTelemetry collector
    (``public.ecr.aws/aws-observability/aws-otel-collector``).

    With ``config`` left out it runs :data:`DEFAULT_CONFIG` (``adot_collector.yaml`` next
    to this module), which takes X-Ray segments on UDP 2000 (so an app on the X-Ray SDK
    works unchanged), serves the SDK's sampling requests on TCP 2000 (``awsproxy``), takes
    OTLP on 4317 (gRPC) and 4318 (HTTP), all on loopback, and exports traces to X-Ray.
    The image's own ECS default configuration has no TCP 2000 listener (centralized
    sampling rules would be silently ignored) and a metrics pipeline that the task role
    is not granted.

    :param pull_through_cache: the cache the image is pulled through. Default: none, the
        image comes straight from ECR Public (needs an internet route).
    :param tag: pinned image tag or ``sha256:`` digest; ``latest`` is rejected.
        Default: :attr:`DEFAULT_TAG`.
    :param config: a collector configuration (YAML), passed as ``AOT_CONFIG_CONTENT``,
        so changing it is a task-definition change, not an image rebuild. It must keep
        the ``health_check`` extension for the container health check. Grants beyond
        X-Ray writes are the caller's (``task.task_role``). Default: :data:`DEFAULT_CONFIG`.
    :param cpu: cpu units reserved. Default: 128.
    :param memory_reservation_mib: memory reserved. Default: 256.
    """

    UPSTREAM_PATH: ClassVar[str] = "aws-observability/aws-otel-collector"
    DEFAULT_TAG: ClassVar[str] = "v0.49.0"
    DEFAULT_CONFIG: ClassVar[str] = DEFAULT_ADOT_CONFIG
    """Traces only, on loopback, with sampling on TCP 2000: used when ``config`` is left out."""

    pull_through_cache: PullThroughCache | None = None
    """The cache the image is pulled through; None: straight from ECR Public."""
    tag: str = DEFAULT_TAG
    """The pinned image tag or ``sha256:`` digest."""
    config: str | None = None
    """Collector configuration YAML; None: :attr:`DEFAULT_CONFIG`."""
    cpu: int = 128
    memory_reservation_mib: int = 256

    def __post_init__(self) -> None:
        self._raise_if_problems()

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.config is not None and (not isinstance(self.config, str) or not self.config):
            problems.append(
                f"AdotCollector.config: {self.config!r} is not allowed; allowed: collector "
                "configuration YAML as a non-empty string, or None for DEFAULT_CONFIG"
            )
        return problems

    @property
    def health_check_command(self) -> tuple[str, ...]:
        return ("CMD", "/healthcheck")

    @property
    def tcp_ports(self) -> tuple[int, ...]:
        return (DAEMON_PORT, OTLP_GRPC_PORT, OTLP_HTTP_PORT)

    def environment(self, region: str) -> dict[str, str]:
        return {
            **super().environment(region),
            "AOT_CONFIG_CONTENT": self.config or self.DEFAULT_CONFIG,
        }

    def app_environment(self) -> Mapping[str, str]:
        return {
            **super().app_environment(),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{OTLP_HTTP_PORT}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        }
