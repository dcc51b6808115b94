"""The traced service of one environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Acknowledgment, CfnOutput, RemovalPolicy, Stack, Validations
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks.config import EnvironmentConfig, retention
from traced_fargate.app_image_repository import AppImageRepository
from traced_fargate.closed_vpc import ClosedVpc
from traced_fargate.pull_through_cache import PullThroughCache
from traced_fargate.traced_fargate_service import TracedFargateService

SAMPLE_APP = Path(__file__).resolve().parent.parent / "sample_app"


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
        svc, tracing = config.service, config.tracing
        self.alarm_topic = self._alarm_topic()
        sidecar_tag = (
            tracing.xray_daemon_tag if tracing.mode == "xray-daemon" else tracing.adot_collector_tag
        )
        self.service = TracedFargateService(
            self,
            "TracedService",
            network=network,
            app_image=self._app_image(svc.app_image_tag, app_repository),
            pull_through_cache=pull_through_cache,
            tracing_mode=tracing.mode,
            sidecar_image_tag=sidecar_tag,
            service_name=f"traced-fargate-{config.name}",
            cpu=svc.cpu,
            memory_mib=svc.memory_mib,
            desired_count=svc.desired_count,
            min_count=svc.min_count,
            max_count=svc.max_count,
            fargate_base=svc.fargate_base,
            fargate_weight=svc.fargate_weight,
            spot_weight=svc.spot_weight,
            cpu_target_percent=svc.cpu_target_percent,
            requests_per_target=svc.requests_per_target,
            log_retention=retention(svc.log_retention_days),
            alarm_topic=self.alarm_topic,
            access_logs=config.region is not None,
        )
        if config.region is None:
            Validations.of(self.service.load_balancer).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-ELB2",
                    reason="Environment-agnostic stack: the log-delivery principal of the "
                    "bucket policy depends on the region. Set the environment's region in "
                    "cdk.json to turn access logs on.",
                )
            )
        CfnOutput(self, "ServiceUrl", value=self.service.url)
        CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic_arn)

    @staticmethod
    def _app_image(tag: str | None, repository: AppImageRepository) -> ecs.ContainerImage:
        if tag is None:
            return ecs.ContainerImage.from_asset(
                str(SAMPLE_APP), platform=ecr_assets.Platform.LINUX_AMD64
            )
        return repository.container_image(tag)

    def _alarm_topic(self) -> sns.Topic:
        # A customer key: CloudWatch cannot publish to a topic under the AWS-managed key.
        key = kms.Key(
            self,
            "AlarmTopicKey",
            description="Encrypts the service alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        key.grant(
            iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*"
        )
        return sns.Topic(
            self,
            "AlarmTopic",
            display_name="traced-fargate alarms",
            master_key=key,
            enforce_ssl=True,
        )
