"""A Fargate task definition: the app container, a tracing sidecar and task extensions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jsii
from aws_cdk import (
    Acknowledgment,
    Aspects,
    Duration,
    IAspect,
    RemovalPolicy,
    Size,
    Stack,
    Validations,
)
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct, IConstruct

from traced_fargate._log_encryption import log_encryption_key
from traced_fargate._nag import actions_on_any
from traced_fargate._task_props import app_size, task_prop_problems
from traced_fargate._trust import ecs_tasks_principal, restrict_trust
from traced_fargate.ecs_exec import AGENT_PATHS
from traced_fargate.errors import raise_if_problems
from traced_fargate.extensions import TaskExtension
from traced_fargate.tracing import TracingSidecar

APP_CONTAINER_NAME = "app"

TMP_PATH = "/tmp"  # noqa: S108
"""Where each container gets a writable task volume under its read-only root filesystem."""


class TracedTaskDefinition(Construct):
    """A Fargate task whose app container sends traces to a sidecar in the same task.

    Usable alone (a worker with no load balancer: ``ecs.FargateService(task_definition=
    task.task_definition, ...)``) or through :class:`~traced_fargate.TracedFargateService`.

    The app container (name ``app``) runs as a non-root user on a read-only root
    filesystem with a writable ``/tmp`` task volume; a non-root app can write there only
    if its image declares ``VOLUME /tmp`` (Fargate then copies the image's mode 1777).
    It gets ``PORT``, ``SERVICE_NAME`` and what the extensions add (the tracing sidecar's
    ``AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:2000``), and logs through awslogs in non-blocking
    mode to an encrypted log group with retention. The task role holds only what the
    extensions grant; the execution role pulls the images and writes the logs.

    Children (construct ids are stable): ``TaskDefinition``, ``TaskRole``,
    ``AppLogGroup``, ``LogKey`` (when no key is given), one log group per sidecar
    (``TracingLogGroup``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        app_image: ecs.ContainerImage,
        tracing: TracingSidecar,
        extensions: Sequence[TaskExtension] = (),
        service_name: str | None = None,
        cpu: int = 512,
        memory_mib: int = 1024,
        cpu_architecture: ecs.CpuArchitecture = ecs.CpuArchitecture.X86_64,
        app_cpu: int | None = None,
        app_memory_reservation_mib: int | None = None,
        app_port: int = 8080,
        app_user: str = "10001",
        app_environment: Mapping[str, str] | None = None,
        app_secrets: Mapping[str, ecs.Secret] | None = None,
        app_health_check: ecs.HealthCheck | None = None,
        stop_timeout: Duration | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        log_encryption_key: kms.IKey | None = None,
        log_max_buffer_size: Size | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param app_image: the app's image, e.g. ``ContainerImage.from_asset("app")``. What
            it must do: README, "Your own app image".
        :param tracing: the tracing sidecar, e.g. ``XRayDaemon(pull_through_cache=cache)``
            or ``AdotCollector(pull_through_cache=cache)``.
        :param extensions: further task extensions (e.g. a log router), applied after
            ``tracing`` in this order. Default: none.
        :param service_name: the name the app reports its traces under (``SERVICE_NAME``).
            Default: the construct id.
        :param cpu: task cpu units; with ``memory_mib`` a valid Fargate size. Default: 512.
        :param memory_mib: task memory. Default: 1024.
        :param cpu_architecture: ``X86_64`` or ``ARM64`` (Graviton, cheaper per vCPU; the
            sidecar images are multi-arch, the app image must be built for it).
            Default: X86_64.
        :param app_cpu: cpu units reserved for the app. Default: what the sidecars leave.
        :param app_memory_reservation_mib: memory reserved for the app. Default: what the
            sidecars leave. App and sidecar reservations must fit the task size.
        :param app_port: the port the app listens on, passed as ``PORT``. Default: 8080.
        :param app_user: the uid (or ``uid:gid``) the app runs as. Never root: ``0`` and
            ``root`` are rejected. Default: 10001.
        :param app_environment: extra non-secret environment for the app. A key that the
            construct or an extension sets (``PORT``, ``SERVICE_NAME``,
            ``AWS_XRAY_DAEMON_ADDRESS``, ...) is an error. Default: none.
        :param app_secrets: environment read from Secrets Manager or SSM Parameter Store
            at task start; the execution role is granted to read them. Default: none.
        :param app_health_check: the app container's health check, run inside the image
            (so it needs a probe the image has). Default: none; a service behind a load
            balancer is then judged by the target group's health check, and a service
            without one only by its container staying up.
        :param stop_timeout: how long the app has to drain after SIGTERM before SIGKILL,
            2-120 s (Spot interruptions give 120 s). Default: 30 s.
        :param log_retention: retention of the container log groups. Default: one month.
        :param log_encryption_key: KMS key of the container log groups. Default: a new
            rotated key that only CloudWatch Logs of this account and region may use.
        :param log_max_buffer_size: awslogs non-blocking buffer per container; when it is
            full, lines are dropped rather than blocking the app. Default: 25 MiB.
        :param removal_policy: applies to the log groups and the key created here.
            Default: RETAIN (their names are generated, so a redeploy never collides).
        """
        super().__init__(scope, construct_id)
        # Every problem at once, before anything is added; the environment that the
        # construct and the extensions set comes with them.
        problems, environment = task_prop_problems(
            construct_id=construct_id,
            tracing=tracing,
            extensions=extensions,
            service_name=service_name,
            cpu=cpu,
            memory_mib=memory_mib,
            cpu_architecture=cpu_architecture,
            app_cpu=app_cpu,
            app_memory_reservation_mib=app_memory_reservation_mib,
            app_port=app_port,
            app_user=app_user,
            app_environment=app_environment,
            stop_timeout=stop_timeout,
        )
        raise_if_problems(self.node.path, problems)
        all_extensions = [tracing, *extensions]
        app_cpu, app_memory_reservation_mib = app_size(
            all_extensions, cpu, memory_mib, app_cpu, app_memory_reservation_mib
        )

        self.app_port: int = app_port
        """The port the app container listens on."""
        self.service_name: str = service_name or construct_id
        """The name the app reports its traces under."""
        self.tracing: TracingSidecar = tracing
        """The tracing sidecar."""
        self.extensions: tuple[TaskExtension, ...] = tuple(all_extensions)
        """Every extension of the task, the tracing sidecar first."""
        self.has_app_health_check: bool = app_health_check is not None
        """Whether the app container has its own health check."""

        self._log_retention = log_retention
        self._exec_agent_volumes = False
        self._removal_policy = removal_policy
        self._log_buffer = log_max_buffer_size or Size.mebibytes(25)
        self.log_encryption_key: kms.IKey = log_encryption_key or log_encryption_key_for(
            self, removal_policy
        )
        """The KMS key of the container log groups."""

        self.task_role = iam.Role(
            self,
            "TaskRole",
            assumed_by=ecs_tasks_principal(self),
            description="The app's and its sidecars' AWS access: only what extensions grant",
        )
        """The role the containers call AWS with."""
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            cpu=cpu,
            memory_limit_mib=memory_mib,
            task_role=self.task_role,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=cpu_architecture,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        """The ``ecs.FargateTaskDefinition``."""
        # The execution role is aws-cdk-lib's (construct id TaskDefinition/ExecutionRole):
        # it gets the task role's confused-deputy conditions.
        restrict_trust(self.task_definition.obtain_execution_role(), ecs_tasks_principal(self))

        for extension in all_extensions:
            extension.add_to_task(self)

        self.app_log_group: logs.ILogGroup = self.new_log_group("AppLogGroup")
        """The app container's log group."""
        logging = self.aws_logs(self.app_log_group, APP_CONTAINER_NAME)
        for extension in all_extensions:
            logging = extension.app_logging(self, logging)

        self.app_container = self.task_definition.add_container(
            "App",
            container_name=APP_CONTAINER_NAME,
            image=app_image,
            essential=True,
            cpu=app_cpu,
            memory_reservation_mib=app_memory_reservation_mib,
            user=app_user,
            readonly_root_filesystem=True,
            environment={**environment, **(app_environment or {})},
            secrets=dict(app_secrets) if app_secrets else None,
            port_mappings=[
                ecs.PortMapping(
                    container_port=app_port, protocol=ecs.Protocol.TCP, name=APP_CONTAINER_NAME
                )
            ],
            health_check=app_health_check,
            stop_timeout=stop_timeout or Duration.seconds(30),
            logging=logging,
        )
        """The app's ``ecs.ContainerDefinition``."""
        self.add_writable_tmp(self.app_container)
        for extension in all_extensions:
            extension.app_container_added(self, self.app_container)

        Validations.of(self.task_definition).acknowledge(
            Acknowledgment(
                id="AwsSolutions-ECS2",
                reason="The environment holds only non-secret settings (sidecar address, "
                "service name, port, region); secrets go through app_secrets.",
            )
        )
        # Checked at synth, once every grant is in: a later wildcard is still reported.
        Aspects.of(self).add(_RegistryTokenAcknowledgment(self))

    @property
    def cpu_architecture_name(self) -> str:
        """``X86_64`` or ``ARM64``, as the task definition renders it."""
        platform = self.task_definition.node.default_child.runtime_platform
        return str(Stack.of(self).resolve(platform)["cpuArchitecture"])

    @property
    def execution_role(self) -> iam.IRole:
        """The role ECS pulls images and writes logs with."""
        return self.task_definition.obtain_execution_role()

    def new_log_group(self, construct_id: str) -> logs.LogGroup:
        """A container log group under the task's key, retention and removal policy."""
        return logs.LogGroup(
            self,
            construct_id,
            retention=self._log_retention,
            encryption_key=self.log_encryption_key,
            removal_policy=self._removal_policy,
        )

    def aws_logs(self, log_group: logs.ILogGroup, stream_prefix: str) -> ecs.LogDriver:
        """An awslogs driver in non-blocking mode with the task's buffer size."""
        return ecs.LogDrivers.aws_logs(
            stream_prefix=stream_prefix,
            log_group=log_group,
            mode=ecs.AwsLogDriverMode.NON_BLOCKING,
            max_buffer_size=self._log_buffer,
        )

    def container_logging(self, log_group_id: str, stream_prefix: str) -> ecs.LogDriver:
        """A new log group (see :meth:`new_log_group`) and an awslogs driver writing to it:
        what a sidecar extension uses for its container."""
        return self.aws_logs(self.new_log_group(log_group_id), stream_prefix)

    def add_exec_agent_volumes(self) -> None:
        """Mount writable task volumes at the SSM agent's paths
        (:data:`~traced_fargate.ecs_exec.AGENT_PATHS`) in the app container, so that ECS
        Exec works under its read-only root filesystem. Called by
        :class:`~traced_fargate.TracedFargateService` with ``enable_exec``; a second call
        adds nothing."""
        if self._exec_agent_volumes:
            return
        self._exec_agent_volumes = True
        for path in AGENT_PATHS:
            volume = f"{APP_CONTAINER_NAME}{path.replace('/', '-')}"
            self.task_definition.add_volume(name=volume)
            self.app_container.add_mount_points(
                ecs.MountPoint(source_volume=volume, container_path=path, read_only=False)
            )

    def add_writable_tmp(self, container: ecs.ContainerDefinition) -> None:
        """Mount a task volume of its own at ``/tmp`` in ``container``."""
        volume = f"{container.container_name}-tmp"
        self.task_definition.add_volume(name=volume)
        container.add_mount_points(
            ecs.MountPoint(source_volume=volume, container_path=TMP_PATH, read_only=False)
        )


@jsii.implements(IAspect)
class _RegistryTokenAcknowledgment:
    """Pulling from any private ECR repository grants ``ecr:GetAuthorizationToken``, which
    has no resource-level permission. Acknowledged on the execution role only when it is
    the sole action on ``*`` in the role's final policy."""

    def __init__(self, task: TracedTaskDefinition) -> None:
        self._task = task

    def visit(self, node: IConstruct) -> None:
        if node is not self._task:
            return
        role = self._task.execution_role
        policy = role.node.try_find_child("DefaultPolicy")
        if not isinstance(policy, iam.Policy):
            return
        if actions_on_any(policy) == {"ecr:GetAuthorizationToken"}:
            Validations.of(role).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-IAM5[Resource::*]",
                    reason="ecr:GetAuthorizationToken supports no resource-level permission; "
                    "it is the only action on '*'.",
                )
            )


def log_encryption_key_for(scope: Construct, removal_policy: RemovalPolicy) -> kms.Key:
    return log_encryption_key(
        scope,
        "LogKey",
        description="Encrypts the task's container log groups",
        removal_policy=removal_policy,
    )
