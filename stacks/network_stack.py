"""The closed network of one environment."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from stacks.config import EnvironmentConfig, any_exec, egress_generation, retention
from traced_fargate.closed_vpc import ClosedVpc
from traced_fargate.temporary_egress import TemporaryEgress


class NetworkStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        net = config.network
        self.network = ClosedVpc(
            self,
            "ClosedVpc",
            cidr=net.vpc_cidr,
            max_azs=net.max_azs,
            endpoint_azs=net.endpoint_azs,
            flow_log_retention=retention(net.flow_log_retention_days),
            # ECS Exec: the SSM agent in the task decrypts the session key through KMS.
            additional_interface_endpoints=(
                [ec2.InterfaceVpcEndpointAwsService.KMS] if any_exec(config) else []
            ),
        )
        self.egress: TemporaryEgress | None = None
        if config.egress.mode == "temporary":
            self.egress = TemporaryEgress(
                self,
                "TemporaryEgress",
                network=self.network,
                generation=egress_generation(config),
            )
