"""Builds the whole app from validated config; shared by app.py and the tests."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from stacks.config import EnvironmentConfig
from stacks.stage import TracedFargateStage


def build_app(app: App, environments: Sequence[EnvironmentConfig]) -> list[TracedFargateStage]:
    """Add one stage per environment, and cdk-nag's AwsSolutions checks over all of them.

    An unacknowledged finding makes ``app.synth()`` fail with the report.
    """
    stages = [TracedFargateStage(app, config=env) for env in environments]
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stages
