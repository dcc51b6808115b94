#!/usr/bin/env python3
"""CDK entry point: validate cdk.json's environments, build one stage per environment.

`-c env=NAME` selects one environment; by default every environment is synthesized.
"""

from __future__ import annotations

import sys

from aws_cdk import App

from stacks.app_builder import build_app
from stacks.config import ConfigError, load_environments
from stacks.pipeline_config import load_pipeline
from traced_fargate.errors import InvalidPropsError


def main() -> int:
    app = App()
    try:
        raw = app.node.try_get_context("environments")
        environments = load_environments(raw, app.node.try_get_context("env"))
        pipeline = load_pipeline(app.node.try_get_context("pipeline"), load_environments(raw))
        build_app(app, environments, pipeline)
    except (ConfigError, InvalidPropsError) as error:
        print(error, file=sys.stderr)
        return 1
    try:
        app.synth()
    except RuntimeError as error:
        # cdk-nag findings: CDK has already printed the validation report.
        if "ValidationFailed" not in str(error):
            raise
        print(str(error).splitlines()[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
