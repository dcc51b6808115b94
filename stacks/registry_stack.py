"""Registry resources of one environment.

The app repository is kept when the stack is deleted (its name is generated, so the next
deploy creates a new one beside it); the pull-through-cache repositories, whose names are
fixed, are emptied and deleted with the stack, and a later deploy refills them from upstream.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from constructs import Construct

from stacks.config import EnvironmentConfig
from traced_fargate.app_image_repository import AppImageRepository
from traced_fargate.firelens import FireLensLogRouter
from traced_fargate.pull_through_cache import PullThroughCache
from traced_fargate.tracing import AdotCollector, XRayDaemon


class RegistryStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        prefix = config.registry.pull_through_cache_prefix
        assert prefix is not None, "load_environments fills the default prefix"
        self.app_repository = AppImageRepository(
            self,
            "AppRepository",
            untagged_expiry_days=config.registry.untagged_expiry_days,
        )
        # Every sidecar image is pre-created so that switching tracing or logging modes
        # needs no repository that a pull would create outside CloudFormation.
        self.pull_through_cache = PullThroughCache(
            self,
            "PullThroughCache",
            repository_prefix=prefix,
            cached_repositories=[
                XRayDaemon.UPSTREAM_PATH,
                AdotCollector.UPSTREAM_PATH,
                FireLensLogRouter.UPSTREAM_PATH,
            ],
        )
