"""FireLens log routing: an AWS for Fluent Bit sidecar that ships the app's stdout.

:class:`FireLensLogRouter` is a :class:`~traced_fargate.TaskExtension`: given in
``TracedTaskDefinition(extensions=[FireLensLogRouter(...)])``, it adds the router
container, replaces the app's awslogs driver with ``awsfirelens`` and grants the task
role what Fluent Bit's CloudWatch output needs, nothing in the service changes.

**Why log options, not a config file.** On Fargate a FireLens configuration file can
come only from inside the image (``config-file-type: file``); the ``s3`` type is for
the EC2 launch type. The image's ``init`` variant fetches files from S3 itself, but it
writes what it fetches and a generated entry script under ``/init`` at start-up, which
fails under a read-only root filesystem (aws-for-fluent-bit#824, #928), and each config
change would then live outside the task definition. A single CloudWatch output needs
no file: the app container's ``logConfiguration.options`` become the ``[OUTPUT]``
section that ECS generates, so the whole routing is in the task definition, reviewed
and rolled back with it. A second destination (Firehose, S3) needs a file in your own
image built ``FROM`` this one: give that image's repository path and tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from aws_cdk import Stack
from aws_cdk import aws_ecs as ecs

from traced_fargate._image_tags import image_reference_problems
from traced_fargate._props import int_problems, kind_problems, str_problems
from traced_fargate.errors import InvalidPropsError
from traced_fargate.extensions import TaskExtension
from traced_fargate.pull_through_cache import PullThroughCache, cached_or_public_image

if TYPE_CHECKING:
    from traced_fargate.traced_task_definition import TracedTaskDefinition

CONTAINER_NAME = "log-router"
"""The router's container name: the app's start dependency and its own log prefix."""

OUTPUT_PLUGIN = "cloudwatch_logs"
"""Fluent Bit's built-in (C) CloudWatch Logs output. CDK grants nothing for this name:
its automatic grants cover only ``cloudwatch``, ``firehose`` and ``kinesis``, and only
for the router it adds itself."""


# CloudWatch Logs stream names: 1-512 characters, no ':' and no '*'. The prefix is
# followed by the FireLens tag (``<container>-firelens-<task id>``).
_STREAM_PREFIX = re.compile(r"[^:*]{1,256}")


@dataclass(frozen=True, eq=False)
class FireLensLogRouter(TaskExtension):
    """AWS for Fluent Bit (``public.ecr.aws/aws-observability/aws-for-fluent-bit``) as the
    task's FireLens log router, sending the app container's stdout and stderr to the
    app's log group (``TracedTaskDefinition.app_log_group``, encrypted with the task's
    log key) through Fluent Bit's ``cloudwatch_logs`` output.

    What it adds to the task:

    - a container ``log-router`` (essential: with the router gone the app's logs would
      be lost, so ECS stops the task), read-only root filesystem with a writable
      ``/tmp`` (Fluent Bit buffers in memory; ``/tmp`` is where plugins that spool to
      disk default to), its own logs through awslogs to a log group of its own
      (``LogRouterLogGroup``), ECS metadata (cluster, task ARN, container) added to
      every record;
    - the app's log driver ``awsfirelens`` with the options ``Name cloudwatch_logs``,
      ``region``, ``log_group_name`` (the app log group), ``log_stream_prefix`` and
      ``auto_create_group false``: the group is CloudFormation's, with its key and
      retention, and the router never creates one;
    - ``logs:CreateLogStream`` and ``logs:PutLogEvents`` on the app log group for the
      task role (the router writes with the task's credentials). The C plugin calls
      no Describe API; ``logs:DescribeLogStreams`` was the older Go ``cloudwatch``
      plugin's need. Encryption needs no grant: CloudWatch Logs uses the key itself.
    - a start dependency: the app starts once the router container has started. A
      ``HEALTHY`` dependency would need a health check, and Fluent Bit's only reliable
      probes (its HTTP server, a TCP input) need a config file, which log options
      cannot give; so ``START``.

    The routing is chosen with log options only, never a config file: see the module
    docstring for why.

    :param pull_through_cache: the cache the image is pulled through. Default: none, the
        image comes straight from ECR Public (needs an internet route).
    :param tag: pinned image tag or ``sha256:`` digest; ``latest`` and ``stable`` move,
        so ``latest`` is rejected. Default: :attr:`DEFAULT_TAG`.
    :param log_stream_prefix: the app's log streams are named this plus the FireLens tag
        (``app-firelens-<task id>``). Default: ``"firelens/"``.
    :param cpu: cpu units reserved. Default: 32.
    :param memory_reservation_mib: memory reserved, counted in the task size. Default: 128:
        Fluent Bit with the image's Go plugins loaded sits at a few tens of MiB; the
        rest is room for chunks held in memory while CloudWatch Logs throttles or an
        endpoint is slow. The reservation is soft (no hard limit is set), so it decides
        what the app is left, never caps the router.
    """

    UPSTREAM_PATH: ClassVar[str] = "aws-observability/aws-for-fluent-bit"
    """The image's repository path in ECR Public."""
    DEFAULT_TAG: ClassVar[str] = "3.4.16"
    """The pinned 3.x release (Amazon Linux 2023 based) used when ``tag`` is left out."""

    pull_through_cache: PullThroughCache | None = None
    """The cache the image is pulled through; None: straight from ECR Public."""
    tag: str = DEFAULT_TAG
    """The pinned image tag or ``sha256:`` digest."""
    log_stream_prefix: str = "firelens/"
    """Prefix of the app's log stream names."""
    cpu: int = 32
    memory_reservation_mib: int = 128

    def __post_init__(self) -> None:
        problems = [p.removeprefix("FireLensLogRouter.") for p in self.problems()]
        if problems:
            raise InvalidPropsError("FireLensLogRouter", problems)

    @property
    def name(self) -> str:
        return CONTAINER_NAME

    def problems(self) -> list[str]:
        kind = "FireLensLogRouter"
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
        prefix_type = str_problems(f"{kind}.log_stream_prefix", self.log_stream_prefix)
        problems += prefix_type
        if not prefix_type and not _STREAM_PREFIX.fullmatch(self.log_stream_prefix):
            problems.append(
                f"{kind}.log_stream_prefix: {self.log_stream_prefix!r} is not allowed; "
                "allowed: 1-256 characters without ':' or '*' (log stream name rules)"
            )
        problems += int_problems(f"{kind}.cpu", self.cpu, 0, 16384)
        problems += int_problems(f"{kind}.memory_reservation_mib", self.memory_reservation_mib, 6)
        return problems

    def image(self) -> ecs.ContainerImage:
        """The router image: through the cache if one is given, else from ECR Public."""
        return cached_or_public_image(self.pull_through_cache, self.UPSTREAM_PATH, self.tag)

    def add_to_task(self, task: TracedTaskDefinition) -> None:
        # Added before the app container: with a router in the task, aws-cdk-lib adds
        # no default one (on the floating image, with its own grants).
        router = task.task_definition.add_firelens_log_router(
            "LogRouter",
            container_name=CONTAINER_NAME,
            image=self.image(),
            essential=True,
            cpu=self.cpu,
            memory_reservation_mib=self.memory_reservation_mib,
            readonly_root_filesystem=True,
            firelens_config=ecs.FirelensConfig(
                type=ecs.FirelensLogRouterType.FLUENTBIT,
                options=ecs.FirelensOptions(enable_ecs_log_metadata=True),
            ),
            logging=task.container_logging("LogRouterLogGroup", CONTAINER_NAME),
        )
        task.add_writable_tmp(router)

    def app_logging(self, task: TracedTaskDefinition, logging: ecs.LogDriver) -> ecs.LogDriver:
        log_group = task.app_log_group
        # Exactly the two calls the output makes, on exactly this group (its ARN ends
        # in ':*', which covers its streams).
        log_group.grant_write(task.task_role)
        return ecs.LogDrivers.firelens(
            options={
                "Name": OUTPUT_PLUGIN,
                "region": Stack.of(task).region,
                "log_group_name": log_group.log_group_name,
                "log_stream_prefix": self.log_stream_prefix,
                "auto_create_group": "false",
            }
        )

    def app_container_added(
        self, task: TracedTaskDefinition, app_container: ecs.ContainerDefinition
    ) -> None:
        app_container.add_container_dependencies(
            ecs.ContainerDependency(
                container=task.task_definition.find_container(CONTAINER_NAME),
                condition=ecs.ContainerDependencyCondition.START,
            )
        )
