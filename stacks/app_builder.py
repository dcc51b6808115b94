"""Builds the whole app from validated config; shared by app.py and the tests."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks

from stacks.config import EnvironmentConfig
from stacks.pipeline_config import PipelineConfig
from stacks.pipeline_stack import PipelineStack
from stacks.stage import TracedFargateStage


def build_app(
    app: App, environments: Sequence[EnvironmentConfig], pipeline: PipelineConfig | None = None
) -> list[TracedFargateStage]:
    """Add one stage per environment, and cdk-nag's AwsSolutions checks over all of them.

    With ``pipeline``, its environments are deployed by the ``Pipeline`` stack, which holds
    their stages; the other environments keep their own stage.
    An unacknowledged finding makes ``app.synth()`` fail with the report.
    """
    piped = pipeline.environment_names if pipeline else ()
    stages = [TracedFargateStage(app, config=env) for env in environments if env.name not in piped]
    if pipeline is not None:
        PipelineStack(
            app,
            "Pipeline",
            config=pipeline,
            env=Environment(account=pipeline.dev.account, region=pipeline.dev.region),
            description="traced-fargate delivery pipeline: gate, dev, approval, prod",
        )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stages
