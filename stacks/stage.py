"""One environment: a CDK Stage holding the stacks of that environment."""

from __future__ import annotations

from typing import Any

from aws_cdk import Environment, Stage, Tags
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.load_test_stack import LoadTestStack
from stacks.network_stack import NetworkStack
from stacks.registry_stack import RegistryStack
from stacks.service_stack import ServiceStack
from stacks.trace_check_stack import TraceCheckStack


class TracedFargateStage(Stage):
    """The stacks of one environment, named ``<env>-<Stack>`` (e.g. ``dev-Network``)."""

    def __init__(self, scope: Construct, config: EnvironmentConfig, **kwargs: Any) -> None:
        env = None
        if config.account or config.region:
            env = Environment(account=config.account, region=config.region)
        super().__init__(scope, config.name, env=env, **kwargs)
        Tags.of(self).add("traced-fargate:environment", config.name)

        self.network = NetworkStack(
            self,
            "Network",
            config=config,
            description=f"traced-fargate {config.name}: closed VPC, endpoints, flow logs",
        )
        self.registry = RegistryStack(
            self,
            "Registry",
            config=config,
            description=f"traced-fargate {config.name}: app repository, pull-through cache",
        )
        self.service = ServiceStack(
            self,
            "Service",
            config=config,
            network=self.network.network,
            pull_through_cache=self.registry.pull_through_cache,
            app_repository=self.registry.app_repository,
            description=f"traced-fargate {config.name}: frontend and backend, internal ALB",
        )
        # Without a load client or an egress to close the stack would be empty: left out.
        self.load_test: LoadTestStack | None = None
        if config.load_client.enabled or self.network.egress is not None:
            holds = "load client; closes" if config.load_client.enabled else "closes"
            self.load_test = LoadTestStack(
                self,
                "LoadTest",
                config=config,
                network=self.network.network,
                frontend=self.service.frontend,
                setup=[s.service for s in self.service.services],
                egress=self.network.egress,
                description=f"traced-fargate {config.name}: {holds} the setup egress",
            )
        # After the services are steady: fails the deploy (mode fail) or only logs (report)
        # when X-Ray shows no clean frontend-to-backend trace.
        self.trace_check: TraceCheckStack | None = None
        if config.trace_check.mode != "off":
            self.trace_check = TraceCheckStack(
                self,
                "TraceCheck",
                config=config,
                network=self.network.network,
                frontend=self.service.frontend,
                backend=self.service.backend,
                after=[s.service for s in self.service.services],
                revision=self.service.revision,
                description=f"traced-fargate {config.name}: deploy-time trace check",
            )
