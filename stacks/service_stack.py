"""The traced services of one environment: a frontend behind the internal load balancer and a
backend that only the frontend reaches, through Cloud Map DNS."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from stacks.config import (
    EnvironmentConfig,
    ServiceConfig,
    any_exec,
    log_extensions,
    retention,
    tracing_sidecar,
)
from traced_fargate.alarm_topic import AlarmTopic
from traced_fargate.app_image_repository import AppImageRepository
from traced_fargate.closed_vpc import ClosedVpc
from traced_fargate.deployment import BlueGreenDeployment, Deployment, RollingDeployment
from traced_fargate.ecs_exec import ExecuteCommandSessions
from traced_fargate.ingress import ServiceDiscovery
from traced_fargate.pull_through_cache import PullThroughCache
from traced_fargate.traced_fargate_service import TracedFargateService
from traced_fargate.traced_task_definition import TracedTaskDefinition
from traced_fargate.tracing import TracingSidecar

SAMPLE_APP = Path(__file__).resolve().parent.parent / "sample_app"

# The sample app's own probe: it is in the image, so the container can check itself.
SAMPLE_APP_HEALTH_CHECK = ecs.HealthCheck(
    command=["CMD", "python", "-m", "traced_app.healthcheck"],
    interval=Duration.seconds(15),
    timeout=Duration.seconds(5),
    retries=3,
    start_period=Duration.seconds(30),
)

BACKEND_DNS_NAME = "backend"
CHAIN_PATH = "/chain"
"""The frontend route that calls the backend: what the load test drives by default."""

_ASSET_PLATFORMS = {
    "X86_64": ecr_assets.Platform.LINUX_AMD64,
    "ARM64": ecr_assets.Platform.LINUX_ARM64,
}


class ServiceStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        network: ClosedVpc,
        pull_through_cache: PullThroughCache,
        app_repository: AppImageRepository,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self._config = config
        self._network = network
        self._app_repository = app_repository
        self._pull_through_cache = pull_through_cache
        self.alarm_topic = AlarmTopic(self, "Alarms", display_name="traced-fargate alarms")
        self.exec_sessions = (
            ExecuteCommandSessions(self, "ExecSessions") if any_exec(config) else None
        )
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=network.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
            enable_fargate_capacity_providers=True,
            default_cloud_map_namespace=ecs.CloudMapNamespaceOptions(
                name=f"{config.name}.traced-fargate.internal", vpc=network.vpc
            ),
            execute_command_configuration=(
                self.exec_sessions.configuration if self.exec_sessions else None
            ),
        )
        tracing = tracing_sidecar(config.tracing, pull_through_cache)

        self.backend = self._service(
            "Backend",
            config.backend,
            tracing,
            environment={"ROLE": "backend"},
            ingress=ServiceDiscovery(name=BACKEND_DNS_NAME),
        )
        self.frontend = self._service(
            "Frontend",
            config.frontend,
            tracing,
            environment={"ROLE": "frontend", "BACKEND_URL": self.backend.url},
        )
        self.backend.connections.allow_from(
            self.frontend, self.backend.connections.default_port, "Frontend to backend"
        )
        CfnOutput(self, "ServiceUrl", value=self.frontend.url)
        CfnOutput(self, "BackendUrl", value=self.backend.url)
        CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic_arn)
        CfnOutput(self, "ClusterName", value=self.cluster.cluster_name)
        if self.frontend.production_rule is not None:
            CfnOutput(self, "ProductionRuleArn", value=self.frontend.production_rule.rule_arn)

    @property
    def services(self) -> tuple[TracedFargateService, TracedFargateService]:
        """The frontend and the backend."""
        return (self.frontend, self.backend)

    def _service(
        self,
        role: str,
        svc: ServiceConfig,
        tracing: TracingSidecar,
        *,
        environment: dict[str, str],
        ingress: ServiceDiscovery | None = None,
    ) -> TracedFargateService:
        task = TracedTaskDefinition(
            self,
            f"{role}Task",
            app_image=self._app_image(svc),
            tracing=tracing,
            extensions=log_extensions(self._config, self._pull_through_cache),
            service_name=f"traced-fargate-{self._config.name}-{role.lower()}",
            cpu=svc.cpu,
            memory_mib=svc.memory_mib,
            cpu_architecture=ecs.CpuArchitecture.of(svc.cpu_architecture),
            app_environment={**environment, "TRACING_SDK": svc.tracing_sdk},
            app_health_check=SAMPLE_APP_HEALTH_CHECK,
            log_retention=retention(svc.log_retention_days),
        )
        topic: sns.ITopic = self.alarm_topic.topic
        return TracedFargateService(
            self,
            role,
            task_definition=task,
            vpc=self._network,
            cluster=self.cluster,
            ingress=ingress,
            min_count=svc.min_count,
            max_count=svc.max_count,
            fargate_base=svc.fargate_base,
            fargate_weight=svc.fargate_weight,
            spot_weight=svc.spot_weight,
            cpu_target_percent=svc.cpu_target_percent,
            requests_per_target=svc.requests_per_target,
            alarm_topic=topic,
            enable_exec=svc.enable_exec,
            deployment=_deployment(svc),
        )

    def _app_image(self, svc: ServiceConfig) -> ecs.ContainerImage:
        parameter = self._config.registry.app_image_tag_parameter
        if parameter is not None:
            # Resolved by CloudFormation when it creates each change set, not at synth.
            tag = ssm.StringParameter.value_for_string_parameter(self, parameter)
            return ecs.ContainerImage.from_ecr_repository(self._app_repository.repository, tag)
        if svc.app_image_tag is None:
            return ecs.ContainerImage.from_docker_image_asset(
                self._sample_app_asset(svc.cpu_architecture)
            )
        return self._app_repository.container_image(svc.app_image_tag)

    def _sample_app_asset(self, architecture: str) -> ecr_assets.DockerImageAsset:
        construct_id = f"SampleAppImage{architecture}"
        existing = self.node.try_find_child(construct_id)
        if isinstance(existing, ecr_assets.DockerImageAsset):
            return existing
        return ecr_assets.DockerImageAsset(
            self,
            construct_id,
            directory=str(SAMPLE_APP),
            platform=_ASSET_PLATFORMS[architecture],
        )

    @property
    def revision(self) -> str:
        """Changes whenever what the services run changes (their settings, the sidecar, the
        sample app's image): known at synth, unlike the task definitions' ARNs, which a
        later stack sees only through a reference whose text never changes."""
        assets = sorted(
            c.asset_hash for c in self.node.children if isinstance(c, ecr_assets.DockerImageAsset)
        )
        described = json.dumps(
            {
                "frontend": dataclasses.asdict(self._config.frontend),
                "backend": dataclasses.asdict(self._config.backend),
                "tracing": dataclasses.asdict(self._config.tracing),
                "logging": self._config.logging,
                "images": assets,
            },
            sort_keys=True,
        )
        return hashlib.sha256(described.encode()).hexdigest()[:16]


def _deployment(svc: ServiceConfig) -> Deployment:
    if svc.deployment == "blue-green":
        return BlueGreenDeployment(bake_time=Duration.minutes(svc.bake_time_minutes))
    return RollingDeployment()
