"""Constructs for a traced ECS Fargate service in a closed VPC.

The constructs are importable from here (``from traced_fargate import ClosedVpc``) or from
their modules. They load lazily: importing the package alone does not start aws-cdk-lib's
runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from traced_fargate.errors import InvalidPropsError

if TYPE_CHECKING:
    from traced_fargate.app_image_repository import AppImageRepository
    from traced_fargate.closed_vpc import ClosedVpc
    from traced_fargate.load_client import LoadClient
    from traced_fargate.pull_through_cache import PullThroughCache
    from traced_fargate.temporary_egress import TemporaryEgress
    from traced_fargate.traced_fargate_service import TracedFargateService

_MODULES = {
    "AppImageRepository": "traced_fargate.app_image_repository",
    "ClosedVpc": "traced_fargate.closed_vpc",
    "LoadClient": "traced_fargate.load_client",
    "PullThroughCache": "traced_fargate.pull_through_cache",
    "TemporaryEgress": "traced_fargate.temporary_egress",
    "TracedFargateService": "traced_fargate.traced_fargate_service",
}

__all__ = [
    "AppImageRepository",
    "ClosedVpc",
    "InvalidPropsError",
    "LoadClient",
    "PullThroughCache",
    "TemporaryEgress",
    "TracedFargateService",
]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name]), name)
    raise AttributeError(f"module 'traced_fargate' has no attribute {name!r}")
