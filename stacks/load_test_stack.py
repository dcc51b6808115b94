"""The load client of one environment (optional), and the end of setup: the egress closes here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import CfnOutput, CustomResource, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.service_stack import CHAIN_PATH
from traced_fargate.closed_vpc import ClosedVpc
from traced_fargate.load_client import LoadClient
from traced_fargate.temporary_egress import TemporaryEgress
from traced_fargate.traced_fargate_service import TracedFargateService


class LoadTestStack(Stack):
    """The load client (unless ``load_client.enabled`` is false) aimed at the frontend's
    chain route, and the teardown of the setup egress, which waits for the services (and
    the client) to finish setting up."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        network: ClosedVpc,
        frontend: TracedFargateService,
        setup: Sequence[ecs.FargateService],
        egress: TemporaryEgress | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.client: LoadClient | None = None
        if config.load_client.enabled:
            self.client = LoadClient(
                self,
                "LoadClient",
                network=network,
                target_url=frontend.url,
                instance_type=ec2.InstanceType(config.load_client.instance_type),
                default_path=CHAIN_PATH,
            )
            frontend.allow_http_from(self.client, "Load client to the service")
        self.egress_teardown: CustomResource | None = None
        if egress is not None:
            needed = [*setup, *([self.client.instance] if self.client else [])]
            egress.required_by(*needed)
            # CloudFormation finishes the service only at steady state (its images were
            # pulled through the cache) and the instance only on its setup signal.
            self.egress_teardown = egress.add_teardown(self, "EgressTeardown", after=needed)
        if self.client is not None:
            CfnOutput(self, "LoadClientInstanceId", value=self.client.instance_id)
            CfnOutput(self, "LoadTestDocument", value=self.client.load_test_document_name)
            CfnOutput(self, "StartSession", value=self.client.start_session_command)
            CfnOutput(self, "RunLoadTest", value=self.client.send_command_example)
