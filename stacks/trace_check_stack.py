"""The deploy-time trace check of one environment: a function in the closed VPC that a
trigger runs once the services are steady (see lambda/trace_check/)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aws_cdk import (
    Acknowledgment,
    CfnResource,
    Duration,
    RemovalPolicy,
    Stack,
    Validations,
    triggers,
)
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.config import EnvironmentConfig, retention
from traced_fargate._checkov import CUSTOM_RESOURCE_FUNCTION_SKIPS, functions_under, skip, skip_all
from traced_fargate._functions import handler_code, python_function
from traced_fargate._log_encryption import log_encryption_key
from traced_fargate._security_groups import keep_closed
from traced_fargate.closed_vpc import ClosedVpc
from traced_fargate.traced_fargate_service import TracedFargateService

HANDLER_DIR = Path(__file__).resolve().parent.parent / "lambda" / "trace_check"
TRIGGER_PROVIDER_ID = "AWSCDK.TriggerCustomResourceProviderCustomResourceProvider"

XRAY_READ_ACTIONS = ("xray:BatchGetTraces", "xray:GetTraceSummaries")
# What Lambda needs to attach a function to a VPC: AWSLambdaVPCAccessExecutionRole's EC2
# actions, written out. DescribeNetworkInterfaces works only on "*"; Lambda manages the
# network interfaces itself and their ids are unknown to the template.
VPC_ACCESS_ACTIONS = (
    "ec2:AssignPrivateIpAddresses",
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:UnassignPrivateIpAddresses",
)


class TraceCheckStack(Stack):
    """Runs the trace check after ``services`` reach steady state: ``fail`` mode waits for
    the answer and fails the deploy with the report; ``report`` mode invokes it
    asynchronously and never blocks."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        network: ClosedVpc,
        frontend: TracedFargateService,
        backend: TracedFargateService,
        after: Sequence[ecs.FargateService],
        revision: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        check = config.trace_check
        timeout = Duration.seconds(check.timeout_seconds)
        key = log_encryption_key(
            self,
            "LogKey",
            description=f"traced-fargate {config.name}: trace check logs",
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            encryption_key=key,
            retention=retention(check.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Runs the deploy-time trace check in the closed VPC",
            inline_policies={
                "TraceCheck": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(
                            sid="ReadTraces",
                            actions=list(XRAY_READ_ACTIONS),
                            resources=["*"],
                        ),
                        iam.PolicyStatement(
                            sid="AttachToTheVpc",
                            actions=list(VPC_ACCESS_ACTIONS),
                            resources=["*"],
                        ),
                        iam.PolicyStatement(
                            sid="SeeWhetherItsStackRollsBack",
                            actions=["cloudformation:DescribeStacks"],
                            resources=[self.stack_id],
                        ),
                        iam.PolicyStatement(
                            sid="WriteItsLogs",
                            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                            resources=[self.log_group.log_group_arn],
                        ),
                    ]
                )
            },
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=network.vpc,
            allow_all_outbound=False,
            description="Trace check: HTTP to the frontend, HTTPS to the endpoints",
        )
        keep_closed(self.security_group)
        blocking = check.mode == "fail"
        self.function = python_function(
            self,
            "Function",
            code=handler_code(HANDLER_DIR),
            handler="index.handler",
            role=self.role,
            timeout=timeout,
            log_group=self.log_group,
            vpc=network.vpc,
            vpc_subnets=network.workload_subnets,
            security_groups=[self.security_group],
            # The trigger invokes the current version (asynchronously in report mode): no
            # retry of it, which would only send a second burst.
            current_version_options=lambda_.VersionOptions(retry_attempts=0),
            description=f"traced-fargate {config.name}: deploy-time trace check",
            environment={
                "TARGET_URL": frontend.url,
                # The names the tasks report their traces under (their SERVICE_NAME).
                "FRONTEND_SERVICE": frontend.task_definition.service_name,
                "BACKEND_SERVICE": backend.task_definition.service_name,
                "MODE": check.mode,
                # A rollback re-runs the trigger with the old properties: not checked.
                "STACK_ID": self.stack_id,
                "REQUESTS": str(check.requests),
                "CONCURRENCY": str(check.concurrency),
            },
        )
        # triggers.Trigger rather than TriggerFunction: only Trigger takes the invocation
        # type. RequestResponse waits for the answer, so a raised failure fails the deploy;
        # Event returns at once, so the report never blocks.
        self.trigger = triggers.Trigger(
            self,
            "Trigger",
            handler=self.function,
            invocation_type=(
                triggers.InvocationType.REQUEST_RESPONSE
                if blocking
                else triggers.InvocationType.EVENT
            ),
            # How long the trigger waits for the answer: longer than the function may run
            # (its cold start in the VPC included), or the provider retries the invoke and
            # sends a second burst.
            timeout=timeout.plus(Duration.seconds(60)),
            execute_after=list(after),
            execute_on_handler_change=True,
        )
        frontend.allow_http_from(self.function, "Trace check to the frontend")
        network.allow_endpoints_from(self.function, "Trace check to the interface endpoints")
        # The rules are children of the group: the check runs only once they exist.
        self.trigger.node.add_dependency(self.security_group)
        # A new task definition revision (a new image or setting) changes this property,
        # which makes the trigger run again on that deploy.
        trigger = self.trigger.node.default_child
        assert trigger is not None
        resource = trigger.node.default_child
        assert isinstance(resource, CfnResource)
        resource.add_property_override(
            "ServiceRevisions",
            [s.task_definition.task_definition.task_definition_arn for s in (frontend, backend)],
        )
        # The references above resolve at deploy time and their text never changes, so a
        # template holding only them looks unchanged and the deploy skips this stack: the
        # revision, known at synth, changes with whatever the services run.
        resource.add_property_override("ServiceRevision", revision)
        self._acknowledge()
        self._skip_checkov()

    def _acknowledge(self) -> None:
        Validations.of(self.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="X-Ray's GetTraceSummaries and BatchGetTraces support no "
                "resource-level permissions, nor do the network interface actions that "
                "Lambda needs to attach the function to the VPC (as in "
                "AWSLambdaVPCAccessExecutionRole, written out here).",
            )
        )

    def _skip_checkov(self) -> None:
        skip(
            self.role,
            "CKV_AWS_111",
            "The only write actions on '*' are the network interface actions that Lambda "
            "needs to attach the function to the VPC (those of AWSLambdaVPCAccessExecutionRole, "
            "written out); Lambda creates and deletes the interfaces itself, so their ids are "
            "unknown to the template. The X-Ray actions on '*' are read-only.",
        )
        skip(
            self.function,
            "CKV_AWS_115",
            "Runs once per deploy, invoked by the trigger only. Reserved concurrency would take "
            "capacity from the account's pool, and fails to deploy on an account whose "
            "concurrency quota is the default of new accounts.",
        )
        skip(
            self.function,
            "CKV_AWS_116",
            "Nothing to replay: in fail mode the trigger waits for the answer and its error "
            "fails the deploy; in report mode the invocation is asynchronous with no retries "
            "and the report is in the function's log. A queued event would replay a burst "
            "against a later deployment.",
        )
        skip(
            self.function,
            "CKV_AWS_173",
            "The environment holds the frontend URL, the service names, the mode and the "
            "burst size: no secrets. Lambda encrypts it at rest.",
        )
        # The trigger's own provider answers CloudFormation: it stays outside the VPC.
        provider = self.node.find_child(TRIGGER_PROVIDER_ID)
        skip_all(functions_under(provider), CUSTOM_RESOURCE_FUNCTION_SKIPS)
