"""The deploy-time trace check as synthesized: the function in the closed VPC, the trigger
after the services (its provider outside the VPC), the mode switch and the exact IAM."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import Stack

from stacks.config import TraceCheckConfig
from stacks.trace_check_stack import TraceCheckStack
from tests.conftest import Synthesized
from tests.encryption_checks import of_type

TRIGGER_TYPE = "Custom::Trigger"
FUNCTION_TYPE = "AWS::Lambda::Function"


def _check(synthesized: Synthesized, env: str) -> tuple[TraceCheckStack, dict[str, Any]]:
    stack = synthesized.stages[env].trace_check
    assert stack is not None
    return stack, synthesized.template_json(env, "TraceCheck")["Resources"]


def _logical_id(stack: Stack, construct: Any) -> str:
    return stack.get_logical_id(construct.node.default_child)


def _function(stack: TraceCheckStack, resources: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = resources[_logical_id(stack, stack.function)]["Properties"]
    return properties


def _trigger(resources: dict[str, Any]) -> dict[str, Any]:
    (trigger,) = of_type(resources, TRIGGER_TYPE).values()
    properties: dict[str, Any] = trigger["Properties"]
    return properties


def test_the_function_runs_in_the_isolated_subnets(synthesized: Synthesized) -> None:
    stack, resources = _check(synthesized, "dev")
    network = synthesized.stages["dev"].network.network
    function = _function(stack, resources)
    isolated = [subnet.subnet_id for subnet in network.vpc.isolated_subnets]
    assert function["VpcConfig"]["SubnetIds"] == stack.resolve(isolated)
    assert function["VpcConfig"]["SecurityGroupIds"] == [
        stack.resolve(stack.security_group.security_group_id)
    ]
    assert function["Runtime"] == "python3.14"
    assert function["Handler"] == "index.handler"
    assert function["Timeout"] == TraceCheckConfig().timeout_seconds


def test_the_function_targets_the_frontend_and_names_both_services(
    synthesized: Synthesized,
) -> None:
    stack, resources = _check(synthesized, "dev")
    variables = _function(stack, resources)["Environment"]["Variables"]
    frontend = synthesized.stages["dev"].service.frontend
    assert variables == {
        "TARGET_URL": stack.resolve(frontend.url),
        "FRONTEND_SERVICE": "traced-fargate-dev-frontend",
        "BACKEND_SERVICE": "traced-fargate-dev-backend",
        "MODE": "fail",
        "STACK_ID": {"Ref": "AWS::StackId"},
        "REQUESTS": "20",
        "CONCURRENCY": "4",
    }


def test_the_names_are_those_the_tasks_report(synthesized: Synthesized) -> None:
    # The X-Ray service names come from the tasks' SERVICE_NAME: the check must use the same.
    service = synthesized.template_json("dev", "Service")["Resources"]
    names = {
        env["Value"]
        for task in of_type(service, "AWS::ECS::TaskDefinition").values()
        for container in task["Properties"]["ContainerDefinitions"]
        for env in container.get("Environment", [])
        if env["Name"] == "SERVICE_NAME"
    }
    assert {"traced-fargate-dev-frontend", "traced-fargate-dev-backend"} <= names


def test_its_network_reaches_the_frontend_and_the_endpoints_only(
    synthesized: Synthesized,
) -> None:
    stack, resources = _check(synthesized, "dev")
    group = resources[_logical_id(stack, stack.security_group)]["Properties"]
    # No egress of its own: only the rules the grants add.
    assert group.get("SecurityGroupEgress", []) == [] or all(
        rule.get("CidrIp") == "255.255.255.255/32" for rule in group["SecurityGroupEgress"]
    )
    egress = [
        (r["Properties"]["Description"], r["Properties"]["FromPort"])
        for r in of_type(resources, "AWS::EC2::SecurityGroupEgress").values()
    ]
    assert sorted(egress) == [
        ("HTTPS to the S3 gateway", 443),
        ("Trace check to the frontend", 80),
        ("Trace check to the interface endpoints", 443),
    ]


def test_the_trigger_runs_after_the_services(synthesized: Synthesized) -> None:
    stage = synthesized.stages["dev"]
    stack, resources = _check(synthesized, "dev")
    after = {d.node.path for d in stack.trigger.node.dependencies}
    assert after == {s.service.node.path for s in stage.service.services} | {
        stack.security_group.node.path
    }
    assert stage.service.node.path in {d.node.path for d in stack.dependencies}
    trigger = _trigger(resources)
    assert trigger["HandlerArn"] == stack.resolve(stack.function.current_version.function_arn)
    # Longer than the function may run: the provider must not give up and invoke again.
    assert trigger["Timeout"] == str((TraceCheckConfig().timeout_seconds + 60) * 1000)
    # Every security-group rule of the stack exists before the check runs.
    (trigger_id,) = [k for k, r in resources.items() if r["Type"] == "Custom::Trigger"]
    rules = {
        k
        for k, r in resources.items()
        if r["Type"] in ("AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress")
    }
    assert rules
    assert rules <= set(resources[trigger_id]["DependsOn"])
    # Known at synth: a new image or setting changes the template, so the stack deploys.
    assert trigger["ServiceRevision"] == stage.service.revision
    # A new task definition revision changes the trigger's properties: it runs again.
    assert trigger["ServiceRevisions"] == [
        stack.resolve(s.task_definition.task_definition.task_definition_arn)
        for s in stage.service.services
    ]


def test_fail_mode_waits_for_the_answer(synthesized: Synthesized) -> None:
    _, resources = _check(synthesized, "dev")
    assert _trigger(resources)["InvocationType"] == "RequestResponse"


def test_report_mode_never_blocks(synthesized: Synthesized) -> None:
    stack, resources = _check(synthesized, "prod")
    assert _trigger(resources)["InvocationType"] == "Event"
    assert _function(stack, resources)["Environment"]["Variables"]["MODE"] == "report"
    # An asynchronous invocation is not retried: a retry would only send a second burst.
    # The setting is on the version that the trigger invokes, not on $LATEST.
    (invoke,) = of_type(resources, "AWS::Lambda::EventInvokeConfig").values()
    assert invoke["Properties"]["MaximumRetryAttempts"] == 0
    version = stack.resolve(stack.function.current_version.version)
    assert invoke["Properties"]["Qualifier"] == version


def test_the_trigger_provider_is_outside_the_vpc(synthesized: Synthesized) -> None:
    stack, resources = _check(synthesized, "dev")
    token = _trigger(resources)["ServiceToken"]["Fn::GetAtt"][0]
    provider = resources[token]
    assert provider["Type"] == FUNCTION_TYPE
    assert "VpcConfig" not in provider["Properties"]
    functions = of_type(resources, FUNCTION_TYPE)
    assert set(functions) == {token, _logical_id(stack, stack.function)}


def test_the_iam_statements_are_exactly_these(synthesized: Synthesized) -> None:
    stack, resources = _check(synthesized, "dev")
    role = resources[_logical_id(stack, stack.role)]["Properties"]
    assert "ManagedPolicyArns" not in role
    (policy,) = role["Policies"]
    assert policy["PolicyDocument"]["Statement"] == [
        {
            "Sid": "ReadTraces",
            "Effect": "Allow",
            "Action": ["xray:BatchGetTraces", "xray:GetTraceSummaries"],
            "Resource": "*",
        },
        {
            "Sid": "AttachToTheVpc",
            "Effect": "Allow",
            "Action": [
                "ec2:AssignPrivateIpAddresses",
                "ec2:CreateNetworkInterface",
                "ec2:DeleteNetworkInterface",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeSubnets",
                "ec2:UnassignPrivateIpAddresses",
            ],
            "Resource": "*",
        },
        {
            "Sid": "SeeWhetherItsStackRollsBack",
            "Effect": "Allow",
            "Action": "cloudformation:DescribeStacks",
            "Resource": {"Ref": "AWS::StackId"},
        },
        {
            "Sid": "WriteItsLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": stack.resolve(stack.log_group.log_group_arn),
        },
    ]
    # Nothing else grants the function's role anything.
    role_ref = {"Ref": _logical_id(stack, stack.role)}
    attached = [
        p
        for p in of_type(resources, "AWS::IAM::Policy").values()
        if role_ref in p["Properties"].get("Roles", [])
    ]
    assert attached == []
    # The trigger's provider may only invoke this function's versions.
    token = _trigger(resources)["ServiceToken"]["Fn::GetAtt"][0]
    provider_role = resources[resources[token]["Properties"]["Role"]["Fn::GetAtt"][0]]
    (inline,) = provider_role["Properties"]["Policies"]
    assert inline["PolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Action": ["lambda:InvokeFunction"],
            "Resource": [{"Fn::Join": ["", [stack.resolve(stack.function.function_arn), ":*"]]}],
        }
    ]


def test_its_logs_are_encrypted_and_kept(synthesized: Synthesized) -> None:
    stack, resources = _check(synthesized, "dev")
    group = resources[_logical_id(stack, stack.log_group)]["Properties"]
    assert group["RetentionInDays"] == TraceCheckConfig().log_retention_days
    key = stack.node.find_child("LogKey")
    assert group["KmsKeyId"] == {"Fn::GetAtt": [_logical_id(stack, key), "Arn"]}
    function = _function(stack, resources)
    assert function["LoggingConfig"]["LogGroup"] == stack.resolve(stack.log_group.log_group_name)


# trace_check.mode off (no TraceCheck stack) is asserted in test_load_client_optional.py,
# whose bare environment is synthesized with it off.


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_each_environment_has_its_check(synthesized: Synthesized, env: str) -> None:
    assert "TraceCheck" in synthesized.stack_ids(env)
