"""The rules the constructs validate their props with, for apps that validate config first.

Each function takes the name to report (a prop, or a config key path such as
``cdk.json: context.environments.dev.service.cpu_target_percent``) and the value, and
returns one line per broken rule, naming it, the bad value and what is allowed. An app's
config model that imports these cannot disagree with the constructs it feeds.
"""

from __future__ import annotations

from traced_fargate._image_tags import image_reference_problems
from traced_fargate.closed_vpc import (
    CIDR_PREFIX_LENGTHS,
    MAX_AZS,
    cidr_problems,
    endpoint_azs_problems,
    max_azs_problems,
)
from traced_fargate.deployment import BAKE_TIME_MINUTES
from traced_fargate.fargate_sizes import FARGATE_SIZES, fargate_size_problem
from traced_fargate.pull_through_cache import repository_prefix_problems
from traced_fargate.service_scaling import (
    CPU_TARGET_PERCENT,
    MAX_TASKS,
    arm64_spot_problems,
    capacity_problems,
    count_problems,
    target_problems,
)
from traced_fargate.tracing import AdotCollector, XRayDaemon

DEFAULT_XRAY_DAEMON_TAG = XRayDaemon.DEFAULT_TAG
DEFAULT_ADOT_COLLECTOR_TAG = AdotCollector.DEFAULT_TAG

__all__ = [
    "BAKE_TIME_MINUTES",
    "CIDR_PREFIX_LENGTHS",
    "CPU_TARGET_PERCENT",
    "DEFAULT_ADOT_COLLECTOR_TAG",
    "DEFAULT_XRAY_DAEMON_TAG",
    "FARGATE_SIZES",
    "MAX_AZS",
    "MAX_TASKS",
    "arm64_spot_problems",
    "capacity_problems",
    "cidr_problems",
    "count_problems",
    "endpoint_azs_problems",
    "fargate_size_problem",
    "image_reference_problems",
    "max_azs_problems",
    "repository_prefix_problems",
    "target_problems",
]
