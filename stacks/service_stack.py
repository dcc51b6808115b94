"""The traced service of one environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from constructs import Construct

from stacks.config import EnvironmentConfig, retention, tracing_sidecar
from traced_fargate.alarm_topic import AlarmTopic
from traced_fargate.app_image_repository import AppImageRepository
from traced_fargate.closed_vpc import ClosedVpc
from traced_fargate.pull_through_cache import PullThroughCache
from traced_fargate.traced_fargate_service import TracedFargateService
from traced_fargate.traced_task_definition import TracedTaskDefinition

SAMPLE_APP = Path(__file__).resolve().parent.parent / "sample_app"

# The sample app's own probe: it is in the image, so the container can check itself.
SAMPLE_APP_HEALTH_CHECK = ecs.HealthCheck(
    command=["CMD", "python", "-m", "traced_app.healthcheck"],
    interval=Duration.seconds(15),
    timeout=Duration.seconds(5),
    retries=3,
    start_period=Duration.seconds(30),
)

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
        svc = config.service
        self.alarm_topic = AlarmTopic(self, "Alarms", display_name="traced-fargate alarms")
        task = TracedTaskDefinition(
            self,
            "Task",
            app_image=self._app_image(svc.app_image_tag, svc.cpu_architecture, app_repository),
            tracing=tracing_sidecar(config.tracing, pull_through_cache),
            service_name=f"traced-fargate-{config.name}",
            cpu=svc.cpu,
            memory_mib=svc.memory_mib,
            cpu_architecture=ecs.CpuArchitecture.of(svc.cpu_architecture),
            app_health_check=SAMPLE_APP_HEALTH_CHECK,
            log_retention=retention(svc.log_retention_days),
        )
        self.service = TracedFargateService(
            self,
            "TracedService",
            task_definition=task,
            vpc=network,
            min_count=svc.min_count,
            max_count=svc.max_count,
            fargate_base=svc.fargate_base,
            fargate_weight=svc.fargate_weight,
            spot_weight=svc.spot_weight,
            cpu_target_percent=svc.cpu_target_percent,
            requests_per_target=svc.requests_per_target,
            alarm_topic=self.alarm_topic.topic,
        )
        CfnOutput(self, "ServiceUrl", value=self.service.url)
        CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic_arn)

    @staticmethod
    def _app_image(
        tag: str | None, architecture: str, repository: AppImageRepository
    ) -> ecs.ContainerImage:
        if tag is None:
            return ecs.ContainerImage.from_asset(
                str(SAMPLE_APP), platform=_ASSET_PLATFORMS[architecture]
            )
        return repository.container_image(tag)
