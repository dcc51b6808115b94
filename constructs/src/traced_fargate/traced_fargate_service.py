"""A Fargate service with an X-Ray tracing sidecar, behind an internal load balancer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Size, Stack, Token, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from traced_fargate._image_tags import image_reference_problems
from traced_fargate._log_encryption import log_encryption_key
from traced_fargate._nag import nag_resource_text
from traced_fargate.closed_vpc import ClosedVpc
from traced_fargate.errors import raise_if_problems
from traced_fargate.fargate_sizes import fargate_size_problem
from traced_fargate.pull_through_cache import PullThroughCache

TracingMode = Literal["xray-daemon", "adot-collector"]
TRACING_MODES: tuple[str, ...] = get_args(TracingMode)

DAEMON_PORT = 2000
XRAY_WRITE_ACTIONS = (
    "xray:GetSamplingRules",
    "xray:GetSamplingStatisticSummaries",
    "xray:GetSamplingTargets",
    "xray:PutTelemetryRecords",
    "xray:PutTraceSegments",
)
"""What a daemon or collector needs to send segments and use centralized sampling."""

# The root filesystems are read-only; a task-scoped volume per container is the one
# writable place. Fargate creates such a volume owned by root with mode 0755 unless the
# image declares a VOLUME at the same path, whose ownership and mode it then copies: an app
# running as a non-root user needs `VOLUME /tmp` (mode 1777) in its image.
TMP_PATH = "/tmp"  # noqa: S108


def _tmp_mount(volume: str) -> ecs.MountPoint:
    return ecs.MountPoint(source_volume=volume, container_path=TMP_PATH, read_only=False)


@dataclass(frozen=True)
class Sidecar:
    """How one tracing mode runs as a sidecar."""

    upstream_path: str
    default_tag: str
    cpu: int
    memory_reservation_mib: int
    health_check: tuple[str, ...]
    command: tuple[str, ...] = ()
    tcp_ports: tuple[int, ...] = ()


SIDECARS: Mapping[str, Sidecar] = {
    # FROM scratch: no shell, so the health check runs the binary itself.
    "xray-daemon": Sidecar(
        upstream_path="xray/aws-xray-daemon",
        default_tag="3.3.15",
        cpu=32,
        memory_reservation_mib=256,
        health_check=("CMD", "/xray", "--version"),
        # TCP 2000 serves the SDK's sampling-rule and target requests.
        tcp_ports=(DAEMON_PORT,),
    ),
    # The default ECS config also receives X-Ray segments on UDP 2000, so the app's
    # X-Ray SDK keeps working unchanged; OTLP traces on 4317/4318 are there for a move to
    # OTel. Its metrics pipeline (EMF to CloudWatch Logs) is not granted: traces only.
    "adot-collector": Sidecar(
        upstream_path="aws-observability/aws-otel-collector",
        default_tag="v0.49.0",
        cpu=128,
        memory_reservation_mib=256,
        health_check=("CMD", "/healthcheck"),
        command=("--config=/etc/ecs/ecs-default-config.yaml",),
        tcp_ports=(DAEMON_PORT, 4317, 4318),
    ),
}


class TracedFargateService(Construct):
    """An app container and a tracing sidecar in one Fargate task, in a closed VPC's
    isolated subnets, behind an internal Application Load Balancer.

    The sidecar image comes through the pull-through cache; the app reaches the sidecar
    at ``127.0.0.1:2000`` (``AWS_XRAY_DAEMON_ADDRESS``). ``tracing_mode`` switches the
    sidecar between the X-Ray daemon (in maintenance since 2026-02-25, end of support
    2027-02-25) and the ADOT collector without touching the app.

    The load balancer accepts HTTP only from peers granted with :meth:`allow_http_from`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        network: ClosedVpc,
        app_image: ecs.ContainerImage,
        pull_through_cache: PullThroughCache,
        tracing_mode: str = "xray-daemon",
        sidecar_image_tag: str | None = None,
        service_name: str = "traced-fargate",
        cpu: int = 512,
        memory_mib: int = 1024,
        app_cpu: int | None = None,
        app_memory_reservation_mib: int | None = None,
        app_port: int = 8080,
        app_user: str = "10001",
        app_environment: Mapping[str, str] | None = None,
        app_secrets: Mapping[str, ecs.Secret] | None = None,
        app_health_check_command: Sequence[str] = (
            "CMD",
            "python",
            "-m",
            "traced_app.healthcheck",
        ),
        health_check_path: str = "/healthz",
        stop_timeout: Duration | None = None,
        desired_count: int = 1,
        min_count: int = 1,
        max_count: int = 2,
        fargate_base: int = 1,
        fargate_weight: int = 1,
        spot_weight: int = 0,
        cpu_target_percent: int = 60,
        requests_per_target: int = 500,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        log_encryption_key: kms.IKey | None = None,
        log_max_buffer_size: Size | None = None,
        access_logs: bool = True,
        access_logs_bucket: s3.IBucket | None = None,
        alarm_topic: sns.ITopic | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param network: the closed VPC; the service runs in its workload subnets and is
            granted its interface endpoints.
        :param app_image: the app's image, e.g. ``ContainerImage.from_asset("sample_app")``.
            Its root filesystem is mounted read-only; ``/tmp`` is a writable task volume,
            which a non-root app can write only if the image declares ``VOLUME /tmp``.
        :param pull_through_cache: where the sidecar image is pulled through.
        :param tracing_mode: ``"xray-daemon"`` or ``"adot-collector"``. Default: xray-daemon.
        :param sidecar_image_tag: pinned tag of the sidecar image (``latest`` is
            rejected). Default: the tested tag of the mode (:data:`SIDECARS`).
        :param service_name: the X-Ray service name the app reports (``SERVICE_NAME``).
        :param cpu: task cpu units; with ``memory_mib`` a valid Fargate size. Default: 512.
        :param memory_mib: task memory. Default: 1024.
        :param app_cpu: cpu units reserved for the app. Default: what the sidecar leaves.
        :param app_memory_reservation_mib: memory reserved for the app. Default: what the
            sidecar leaves. App and sidecar reservations must fit the task size.
        :param app_port: the port the app listens on. Default: 8080.
        :param app_user: the uid the app runs as; never root. Default: 10001.
        :param app_environment: extra non-secret environment for the app. Default: none.
        :param app_secrets: environment read from Secrets Manager or SSM Parameter Store
            at task start; the execution role is granted to read them. Default: none.
        :param app_health_check_command: container health check of the app; the default
            matches the sample app's probe module.
        :param health_check_path: the load balancer's health check path. Default: /healthz.
        :param stop_timeout: how long the app has to drain after SIGTERM before SIGKILL
            (Fargate allows up to 120 s; Spot interruptions give 120 s). Default: 30 s.
        :param desired_count: tasks the service runs after a deploy; CloudFormation applies
            it whenever it updates the service, and auto scaling moves it between
            ``min_count`` and ``max_count`` afterwards. Default: 1.
        :param min_count: auto scaling lower bound. Default: 1.
        :param max_count: auto scaling upper bound. Default: 2.
        :param fargate_base: tasks always placed on FARGATE. Default: 1.
        :param fargate_weight: share of tasks above the base placed on FARGATE. Default: 1.
        :param spot_weight: share placed on FARGATE_SPOT; 0 leaves Spot out. Default: 0.
        :param cpu_target_percent: target CPU utilization for scaling. Default: 60.
        :param requests_per_target: target ALB requests per task per minute. Default: 500.
        :param log_retention: retention of the container log groups. Default: one month.
        :param log_encryption_key: KMS key of the container log groups. Default: a new key.
        :param log_max_buffer_size: awslogs non-blocking buffer; when full, lines are
            dropped rather than blocking the app. Default: 25 MiB.
        :param access_logs: whether the load balancer writes access logs. The bucket policy
            names the region's log-delivery principal, so the stack's region must be
            known at synth. Default: true.
        :param access_logs_bucket: where the access logs go. Default: a new SSE-S3 bucket
            (ALB log delivery supports no KMS keys).
        :param alarm_topic: SNS topic the alarms notify. Default: alarms without actions.
        :param removal_policy: applies to log groups, the key and the bucket created here.
            Default: RETAIN.
        """
        super().__init__(scope, construct_id)
        problems = []
        if tracing_mode not in SIDECARS:
            problems.append(
                f"tracing_mode: {tracing_mode!r} is not allowed; expected one of "
                + ", ".join(TRACING_MODES)
            )
        # An unknown mode is reported with the rest; the sizes are then checked as for
        # the default sidecar.
        sidecar = SIDECARS.get(tracing_mode, SIDECARS["xray-daemon"])
        sidecar_tag = sidecar.default_tag if sidecar_image_tag is None else sidecar_image_tag
        app_cpu = cpu - sidecar.cpu if app_cpu is None else app_cpu
        if app_memory_reservation_mib is None:
            app_memory_reservation_mib = memory_mib - sidecar.memory_reservation_mib
        raise_if_problems(
            self.node.path,
            problems
            + _size_problems(cpu, memory_mib, app_cpu, app_memory_reservation_mib, sidecar)
            + _count_problems(desired_count, min_count, max_count, fargate_weight, spot_weight)
            + _scaling_problems(fargate_base, cpu_target_percent, requests_per_target)
            + _stop_timeout_problems(stop_timeout)
            + _access_logs_problems(access_logs, Stack.of(self).region)
            # Checked here, not by the cache, so the error names this construct's prop.
            + image_reference_problems("sidecar_image_tag", sidecar_tag),
        )
        stack = Stack.of(self)
        self.tracing_mode = tracing_mode
        self.app_port = app_port

        self.log_encryption_key: kms.IKey = log_encryption_key or _new_log_key(self, removal_policy)
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=network.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
            enable_fargate_capacity_providers=True,
        )

        self.task_role = iam.Role(
            self,
            "TaskRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="Lets the tracing sidecar send segments and read sampling rules",
            inline_policies={
                "TracingWrite": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(actions=list(XRAY_WRITE_ACTIONS), resources=["*"])
                    ]
                )
            },
        )
        Validations.of(self.task_role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="X-Ray's PutTraceSegments, PutTelemetryRecords and sampling actions "
                "support no resource-level permissions; the policy holds only those actions.",
            )
        )
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            cpu=cpu,
            memory_limit_mib=memory_mib,
            task_role=self.task_role,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        self.task_definition.add_volume(name="app-tmp")
        self.task_definition.add_volume(name="tracing-tmp")
        buffer = log_max_buffer_size or Size.mebibytes(25)

        self.app_log_group = self._log_group("AppLogGroup", log_retention, removal_policy)
        self.tracing_log_group = self._log_group("TracingLogGroup", log_retention, removal_policy)

        self.tracing_container = self.task_definition.add_container(
            "Tracing",
            container_name="tracing",
            image=pull_through_cache.container_image(sidecar.upstream_path, sidecar_tag),
            essential=True,
            cpu=sidecar.cpu,
            memory_reservation_mib=sidecar.memory_reservation_mib,
            command=list(sidecar.command) or None,
            environment={"AWS_REGION": stack.region},
            readonly_root_filesystem=True,
            port_mappings=[
                ecs.PortMapping(container_port=DAEMON_PORT, protocol=ecs.Protocol.UDP),
                *(
                    ecs.PortMapping(container_port=p, protocol=ecs.Protocol.TCP)
                    for p in sidecar.tcp_ports
                ),
            ],
            health_check=ecs.HealthCheck(
                command=list(sidecar.health_check),
                interval=Duration.seconds(30),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=Duration.seconds(10),
            ),
            logging=_awslogs(self.tracing_log_group, "tracing", buffer),
        )
        self.tracing_container.add_mount_points(_tmp_mount("tracing-tmp"))

        self.app_container = self.task_definition.add_container(
            "App",
            container_name="app",
            image=app_image,
            essential=True,
            cpu=app_cpu,
            memory_reservation_mib=app_memory_reservation_mib,
            user=app_user,
            readonly_root_filesystem=True,
            environment={
                "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{DAEMON_PORT}",
                "SERVICE_NAME": service_name,
                "PORT": str(app_port),
                **(app_environment or {}),
            },
            secrets=dict(app_secrets) if app_secrets else None,
            port_mappings=[ecs.PortMapping(container_port=app_port, protocol=ecs.Protocol.TCP)],
            health_check=ecs.HealthCheck(
                command=list(app_health_check_command),
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=Duration.seconds(30),
            ),
            stop_timeout=stop_timeout or Duration.seconds(30),
            logging=_awslogs(self.app_log_group, "app", buffer),
        )
        self.app_container.add_mount_points(_tmp_mount("app-tmp"))
        self.app_container.add_container_dependencies(
            ecs.ContainerDependency(
                container=self.tracing_container, condition=ecs.ContainerDependencyCondition.START
            )
        )
        self._acknowledge_execution_role(pull_through_cache)
        Validations.of(self.task_definition).acknowledge(
            Acknowledgment(
                id="AwsSolutions-ECS2",
                reason="The environment holds only non-secret settings (daemon address, "
                "service name, port, region); secrets go through app_secrets.",
            )
        )

        self.security_group = ec2.SecurityGroup(
            self,
            "ServiceSecurityGroup",
            vpc=network.vpc,
            description="Service tasks: app port from the load balancer only",
            allow_all_outbound=False,
        )
        network.allow_endpoints_from(self.security_group, "Service tasks to AWS endpoints")

        strategies = [
            ecs.CapacityProviderStrategy(
                capacity_provider="FARGATE", base=fargate_base, weight=fargate_weight
            )
        ]
        if spot_weight:
            strategies.append(
                ecs.CapacityProviderStrategy(capacity_provider="FARGATE_SPOT", weight=spot_weight)
            )
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task_definition,
            desired_count=desired_count,
            vpc_subnets=network.workload_subnets,
            security_groups=[self.security_group],
            assign_public_ip=False,
            capacity_provider_strategies=strategies,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            min_healthy_percent=100,
            max_healthy_percent=200,
            health_check_grace_period=Duration.seconds(60),
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
            enable_ecs_managed_tags=True,
        )

        self.load_balancer_security_group = ec2.SecurityGroup(
            self,
            "LoadBalancerSecurityGroup",
            vpc=network.vpc,
            description="Internal load balancer: HTTP from granted peers only",
            allow_all_outbound=False,
        )
        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=network.vpc,
            internet_facing=False,
            vpc_subnets=network.workload_subnets,
            security_group=self.load_balancer_security_group,
            drop_invalid_header_fields=True,
        )
        self.access_logs_bucket: s3.IBucket | None = None
        if access_logs:
            self.access_logs_bucket = access_logs_bucket or self._access_logs_bucket(removal_policy)
            self.load_balancer.log_access_logs(self.access_logs_bucket, prefix="alb")
        self.listener = self.load_balancer.add_listener(
            "Http", port=80, protocol=elbv2.ApplicationProtocol.HTTP, open=False
        )
        self.target_group = self.listener.add_targets(
            "App",
            port=app_port,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[
                self.service.load_balancer_target(container_name="app", container_port=app_port)
            ],
            health_check=elbv2.HealthCheck(
                path=health_check_path,
                healthy_http_codes="200",
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
            # Shorter than the stop timeout: in-flight requests finish before SIGKILL.
            deregistration_delay=Duration.seconds(20),
        )

        self.scaling = self.service.auto_scale_task_count(
            min_capacity=min_count, max_capacity=max_count
        )
        self.scaling.scale_on_cpu_utilization(
            "CpuTarget",
            target_utilization_percent=cpu_target_percent,
            scale_in_cooldown=Duration.seconds(120),
            scale_out_cooldown=Duration.seconds(60),
        )
        self.scaling.scale_on_request_count(
            "RequestsTarget",
            requests_per_target=requests_per_target,
            target_group=self.target_group,
            scale_in_cooldown=Duration.seconds(120),
            scale_out_cooldown=Duration.seconds(60),
        )
        self.alarms = self._alarms(alarm_topic)

    @property
    def url(self) -> str:
        """``http://<internal load balancer DNS name>``: reachable only from granted peers."""
        return f"http://{self.load_balancer.load_balancer_dns_name}"

    def allow_http_from(self, peer: ec2.IConnectable, description: str = "") -> None:
        """Let ``peer`` reach the load balancer on HTTP port 80.

        The rules are created from the peer's side, so a client in a later stack adds
        them to its own stack.
        """
        peer.connections.allow_to(
            self.load_balancer,
            ec2.Port.tcp(80),
            description or "HTTP to the internal load balancer",
        )

    def _log_group(
        self, construct_id: str, retention: logs.RetentionDays, removal_policy: RemovalPolicy
    ) -> logs.LogGroup:
        return logs.LogGroup(
            self,
            construct_id,
            retention=retention,
            encryption_key=self.log_encryption_key,
            removal_policy=removal_policy,
        )

    def _access_logs_bucket(self, removal_policy: RemovalPolicy) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "AccessLogsBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))],
            removal_policy=removal_policy,
        )
        Validations.of(bucket).acknowledge(
            Acknowledgment(
                id="AwsSolutions-S1",
                reason="This bucket only receives the load balancer's access logs; logging "
                "access to it would need another bucket whose own access goes unlogged.",
            )
        )
        return bucket

    def _acknowledge_execution_role(self, cache: PullThroughCache) -> None:
        role = self.task_definition.obtain_execution_role()
        stack = Stack.of(self)
        cache_arn = nag_resource_text(
            stack,
            stack.format_arn(
                service="ecr", resource="repository", resource_name=f"{cache.repository_prefix}/*"
            ),
        )
        Validations.of(role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="ecr:GetAuthorizationToken supports no resource-level permission; it is "
                "the only action on '*'.",
            )
        )
        Validations.of(role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{cache_arn}]",
                reason="Pulling through the cache imports each upstream path into its own "
                "repository under the environment's prefix; the grant covers that prefix only.",
            )
        )

    def _alarms(self, topic: sns.ITopic | None) -> list[cloudwatch.Alarm]:
        five_minutes = Duration.minutes(5)
        alarms = [
            cloudwatch.Alarm(
                self,
                "Target5xxAlarm",
                alarm_description="The app answered with 5xx errors",
                metric=self.target_group.metrics.http_code_target(
                    elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=five_minutes, statistic="Sum"
                ),
                threshold=5,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            cloudwatch.Alarm(
                self,
                "UnhealthyHostsAlarm",
                alarm_description="Tasks fail the load balancer's health check",
                metric=self.target_group.metrics.unhealthy_host_count(
                    period=Duration.minutes(1), statistic="Maximum"
                ),
                threshold=1,
                evaluation_periods=3,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            cloudwatch.Alarm(
                self,
                "CpuHighAlarm",
                alarm_description="Service CPU stays high even after scaling out",
                metric=self.service.metric_cpu_utilization(
                    period=Duration.minutes(1), statistic="Average"
                ),
                threshold=85,
                evaluation_periods=5,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.MISSING,
            ),
        ]
        if topic is not None:
            for alarm in alarms:
                alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
                alarm.add_ok_action(cloudwatch_actions.SnsAction(topic))
        return alarms


def _new_log_key(scope: Construct, removal_policy: RemovalPolicy) -> kms.Key:
    return log_encryption_key(
        scope,
        "LogKey",
        description="Encrypts the service's container log groups",
        removal_policy=removal_policy,
    )


def _awslogs(group: logs.ILogGroup, prefix: str, buffer: Size) -> ecs.LogDriver:
    return ecs.LogDrivers.aws_logs(
        stream_prefix=prefix,
        log_group=group,
        mode=ecs.AwsLogDriverMode.NON_BLOCKING,
        max_buffer_size=buffer,
    )


def _size_problems(
    cpu: int, memory_mib: int, app_cpu: int, app_memory_mib: int, sidecar: Sidecar
) -> list[str]:
    size = fargate_size_problem(cpu, memory_mib)
    if size:
        return [f"cpu {cpu} / memory_mib {memory_mib}: not a Fargate task size; {size}"]
    problems = []
    if app_cpu < 0 or app_cpu + sidecar.cpu > cpu:
        problems.append(
            f"app_cpu: {app_cpu} plus the sidecar's {sidecar.cpu} must fit the task's cpu {cpu}"
        )
    if app_memory_mib < 6 or app_memory_mib + sidecar.memory_reservation_mib > memory_mib:
        problems.append(
            f"app_memory_reservation_mib: {app_memory_mib} plus the sidecar's "
            f"{sidecar.memory_reservation_mib} must fit the task's memory_mib {memory_mib}"
        )
    return problems


def _count_problems(
    desired: int, low: int, high: int, fargate_weight: int, spot_weight: int
) -> list[str]:
    problems = []
    if not 1 <= low <= desired <= high:
        problems.append(
            f"desired_count: {desired} must lie within min_count {low} and max_count {high}, "
            "with min_count >= 1"
        )
    if fargate_weight < 0 or spot_weight < 0 or fargate_weight + spot_weight == 0:
        problems.append(
            f"fargate_weight {fargate_weight} / spot_weight {spot_weight}: "
            "not negative, and at least one above 0"
        )
    return problems


def _scaling_problems(fargate_base: int, cpu_target: int, requests_per_target: int) -> list[str]:
    problems = []
    if fargate_base < 0:
        problems.append(f"fargate_base: {fargate_base} is not allowed; expected 0 or more")
    if not 1 <= cpu_target <= 100:
        problems.append(f"cpu_target_percent: {cpu_target} is not allowed; expected 1 to 100")
    if requests_per_target < 1:
        problems.append(
            f"requests_per_target: {requests_per_target} is not allowed; expected 1 or more"
        )
    return problems


def _access_logs_problems(access_logs: bool, region: str) -> list[str]:
    if access_logs and Token.is_unresolved(region):
        return [
            "access_logs: the stack has no region; give the stack an env with a region, "
            "or pass access_logs=False"
        ]
    return []


def _stop_timeout_problems(stop_timeout: Duration | None) -> list[str]:
    if stop_timeout is None or stop_timeout.is_unresolved():
        return []
    seconds = stop_timeout.to_seconds()
    if not 2 <= seconds <= 120:
        return [f"stop_timeout: {seconds} s is not allowed; Fargate accepts 2 to 120 s"]
    return []
