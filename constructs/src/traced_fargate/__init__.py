"""Constructs for a traced ECS Fargate service in a closed VPC.

The constructs are importable from here (``from traced_fargate import ClosedVpc``) or from
their modules. They load lazily: importing the package alone does not start aws-cdk-lib's
runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from traced_fargate._version import __version__
from traced_fargate.errors import InvalidPropsError

if TYPE_CHECKING:
    from traced_fargate.alarm_topic import AlarmTopic
    from traced_fargate.app_image_repository import AppImageRepository
    from traced_fargate.closed_vpc import ClosedVpc
    from traced_fargate.deployment import BlueGreenDeployment, RollingDeployment
    from traced_fargate.ecs_exec import ExecuteCommandSessions
    from traced_fargate.extensions import TaskExtension
    from traced_fargate.firelens import FireLensLogRouter
    from traced_fargate.ingress import NewLoadBalancer, ServiceDiscovery, SharedListener
    from traced_fargate.internal_load_balancer import InternalLoadBalancer
    from traced_fargate.load_client import LoadClient
    from traced_fargate.production_listener_rule import ProductionListenerRule
    from traced_fargate.pull_through_cache import PullThroughCache
    from traced_fargate.service_alarms import ServiceAlarms
    from traced_fargate.service_scaling import ServiceScaling
    from traced_fargate.temporary_egress import TemporaryEgress
    from traced_fargate.traced_fargate_service import TracedFargateService
    from traced_fargate.traced_task_definition import TracedTaskDefinition
    from traced_fargate.tracing import AdotCollector, TracingSidecar, XRayDaemon

_MODULES = {
    "AdotCollector": "traced_fargate.tracing",
    "AlarmTopic": "traced_fargate.alarm_topic",
    "AppImageRepository": "traced_fargate.app_image_repository",
    "BlueGreenDeployment": "traced_fargate.deployment",
    "ClosedVpc": "traced_fargate.closed_vpc",
    "ExecuteCommandSessions": "traced_fargate.ecs_exec",
    "FireLensLogRouter": "traced_fargate.firelens",
    "InternalLoadBalancer": "traced_fargate.internal_load_balancer",
    "LoadClient": "traced_fargate.load_client",
    "NewLoadBalancer": "traced_fargate.ingress",
    "ProductionListenerRule": "traced_fargate.production_listener_rule",
    "PullThroughCache": "traced_fargate.pull_through_cache",
    "RollingDeployment": "traced_fargate.deployment",
    "ServiceAlarms": "traced_fargate.service_alarms",
    "ServiceDiscovery": "traced_fargate.ingress",
    "ServiceScaling": "traced_fargate.service_scaling",
    "SharedListener": "traced_fargate.ingress",
    "TaskExtension": "traced_fargate.extensions",
    "TemporaryEgress": "traced_fargate.temporary_egress",
    "TracedFargateService": "traced_fargate.traced_fargate_service",
    "TracedTaskDefinition": "traced_fargate.traced_task_definition",
    "TracingSidecar": "traced_fargate.tracing",
    "XRayDaemon": "traced_fargate.tracing",
}

__all__ = [
    "AdotCollector",
    "AlarmTopic",
    "AppImageRepository",
    "BlueGreenDeployment",
    "ClosedVpc",
    "ExecuteCommandSessions",
    "FireLensLogRouter",
    "InternalLoadBalancer",
    "InvalidPropsError",
    "LoadClient",
    "NewLoadBalancer",
    "ProductionListenerRule",
    "PullThroughCache",
    "RollingDeployment",
    "ServiceAlarms",
    "ServiceDiscovery",
    "ServiceScaling",
    "SharedListener",
    "TaskExtension",
    "TemporaryEgress",
    "TracedFargateService",
    "TracedTaskDefinition",
    "TracingSidecar",
    "XRayDaemon",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name]), name)
    raise AttributeError(f"module 'traced_fargate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return list(__all__)
