"""The load client of one environment, and the end of setup: the egress closes here."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from stacks.config import EnvironmentConfig
from traced_fargate.closed_vpc import ClosedVpc
from traced_fargate.load_client import LoadClient
from traced_fargate.temporary_egress import TemporaryEgress
from traced_fargate.traced_fargate_service import TracedFargateService


class LoadTestStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        network: ClosedVpc,
        service: TracedFargateService,
        egress: TemporaryEgress | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.client = LoadClient(
            self,
            "LoadClient",
            network=network,
            target_url=service.url,
            instance_type=ec2.InstanceType(config.load_client.instance_type),
        )
        service.allow_http_from(self.client, "Load client to the service")
        if egress is not None:
            egress.required_by(service.service, self.client.instance)
            # CloudFormation finishes the service only at steady state (its images were
            # pulled through the cache) and the instance only on its setup signal.
            self.egress_teardown = egress.add_teardown(
                self, "EgressTeardown", after=[service.service, self.client.instance]
            )
        CfnOutput(self, "LoadClientInstanceId", value=self.client.instance_id)
        CfnOutput(self, "LoadTestDocument", value=self.client.load_test_document_name)
        CfnOutput(self, "StartSession", value=self.client.start_session_command)
        CfnOutput(self, "RunLoadTest", value=self.client.send_command_example)
