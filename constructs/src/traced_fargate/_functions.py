"""The Python Lambda functions of the library (and of the app's trace check): one runtime,
one architecture, and code from a handler folder whose local bytecode never reaches the
asset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

HANDLER_EXCLUDE = ("__pycache__", "*.pyc")
"""Bytecode that a local run leaves in a handler folder must not change the asset's hash."""


def handler_code(directory: Path) -> lambda_.Code:
    """The handler folder ``directory`` as a Lambda asset (one per folder: functions that
    share a folder share the code object)."""
    return lambda_.Code.from_asset(str(directory), exclude=list(HANDLER_EXCLUDE))


def python_function(
    scope: Construct,
    construct_id: str,
    *,
    code: lambda_.Code,
    handler: str,
    role: iam.IRole,
    log_group: logs.ILogGroup,
    timeout: Duration,
    **props: Any,
) -> lambda_.Function:
    """A Python 3.14 function on ARM64 with 256 MB, its own role and log group; ``props``
    are any further ``lambda_.Function`` props (VPC, environment, description, ...)."""
    return lambda_.Function(
        scope,
        construct_id,
        runtime=lambda_.Runtime.PYTHON_3_14,
        architecture=lambda_.Architecture.ARM_64,
        code=code,
        handler=handler,
        role=role,
        timeout=timeout,
        memory_size=256,
        log_group=log_group,
        **props,
    )
