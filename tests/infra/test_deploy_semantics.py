"""After `cdk destroy`, the same app deploys again.

A resource that CloudFormation retains (``DeletionPolicy`` or ``UpdateReplacePolicy``
``Retain``/``RetainExceptOnCreate``) outlives its stack. When it also has a fixed physical
name, the next create of that stack tries to create the same name and fails with
"... already exists". The checks below read every template of every environment.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aws_cdk import CfnElement, Stack

from stacks.config import EnvironmentConfig
from stacks.registry_stack import RegistryStack
from tests.conftest import ENV_NAMES, STACK_IDS, Synthesized

RETAINING = {"Retain", "RetainExceptOnCreate"}

# The property that holds the physical name, for the resource types of this app (and a few
# that it is likely to grow). A type missing here is still caught by the "...Name" rule.
NAME_PROPERTY: dict[str, str] = {
    "AWS::ApplicationAutoScaling::ScalingPolicy": "PolicyName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::EC2::LaunchTemplate": "LaunchTemplateName",
    "AWS::EC2::SecurityGroup": "GroupName",
    "AWS::ECR::PullThroughCacheRule": "EcrRepositoryPrefix",
    "AWS::ECR::Repository": "RepositoryName",
    "AWS::ECS::Cluster": "ClusterName",
    "AWS::ECS::Service": "ServiceName",
    "AWS::ElasticLoadBalancingV2::LoadBalancer": "Name",
    "AWS::ElasticLoadBalancingV2::TargetGroup": "Name",
    "AWS::IAM::InstanceProfile": "InstanceProfileName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::Policy": "PolicyName",
    "AWS::IAM::Role": "RoleName",
    "AWS::KMS::Alias": "AliasName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SSM::Document": "Name",
    "AWS::SSM::Parameter": "Name",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
}

# Properties that end in "Name" but do not name the resource that holds them.
NOT_A_NAME: dict[tuple[str, str], str] = {
    ("AWS::CloudWatch::Alarm", "MetricName"): "the metric the alarm watches",
    ("AWS::EC2::FlowLog", "LogGroupName"): "the log group the flow log writes to",
    ("AWS::EC2::VPCEndpoint", "ServiceName"): "the AWS service the endpoint reaches",
    ("AWS::SNS::Topic", "DisplayName"): "the sender name of messages, not unique",
}

# Retained resources with a fixed name that may stay, each with its reason: a resource
# type, or a regular expression that matches the whole logical id.
ALLOWED: dict[str, str] = {}


@dataclass(frozen=True)
class Collision:
    """A retained resource whose fixed name the next create of its stack would reuse."""

    stack: str
    logical_id: str
    construct_path: str
    cfn_type: str
    policies: str
    name_property: str
    name: Any

    def __str__(self) -> str:
        return (
            f"{self.stack}/{self.logical_id} ({self.cfn_type}, construct {self.construct_path}): "
            f"{self.policies}; {self.name_property} {self.name!r} is fixed, so the next deploy "
            "after `cdk destroy` fails with 'already exists'"
        )


def is_fixed(value: Any, resources: dict[str, Any], seen: frozenset[str] = frozenset()) -> bool:
    """Whether ``value`` renders the same on every create of the stack.

    Literals, parameters and the pseudo parameters (account, region, partition, URL suffix,
    stack name) are the same after a `cdk destroy`; ``AWS::StackId`` is new on every create.
    A reference to a resource is fixed when that resource has a fixed name.
    """
    if isinstance(value, list):
        return all(is_fixed(v, resources, seen) for v in value)
    if not isinstance(value, dict):
        return True  # a literal
    if len(value) != 1:
        return all(is_fixed(v, resources, seen) for v in value.values())
    ((function, argument),) = value.items()
    check = _FUNCTIONS.get(function)
    return check(argument, resources, seen) if check else is_fixed(argument, resources, seen)


def _ref_is_fixed(target: str, resources: dict[str, Any], seen: frozenset[str]) -> bool:
    if target in ("AWS::StackId", "AWS::NoValue"):
        return False
    if target not in resources:
        return True  # a parameter or a pseudo parameter other than the stack id
    resource = resources[target]
    prop = NAME_PROPERTY.get(resource["Type"])
    properties = resource.get("Properties", {})
    if target in seen or prop not in properties:
        return False  # CloudFormation generates the physical name
    return is_fixed(properties[prop], resources, seen | {target})


def _get_att_is_fixed(argument: Any, resources: dict[str, Any], seen: frozenset[str]) -> bool:
    target = argument[0] if isinstance(argument, list) else argument.split(".")[0]
    return _ref_is_fixed(target, resources, seen)


def _sub_is_fixed(argument: Any, resources: dict[str, Any], seen: frozenset[str]) -> bool:
    text, variables = (argument, {}) if isinstance(argument, str) else argument
    return all(
        is_fixed(variables[variable], resources, seen)
        if variable in variables
        else _ref_is_fixed(variable.split(".")[0], resources, seen)
        for variable in re.findall(r"\$\{([^!}][^}]*)\}", text)
    )


def _if_is_fixed(argument: Any, resources: dict[str, Any], seen: frozenset[str]) -> bool:
    return any(is_fixed(branch, resources, seen) for branch in argument[1:])


def _not_known(argument: Any, resources: dict[str, Any], seen: frozenset[str]) -> bool:
    return False  # another stack's export


_FUNCTIONS: dict[str, Callable[[Any, dict[str, Any], frozenset[str]], bool]] = {
    "Ref": _ref_is_fixed,
    "Fn::GetAtt": _get_att_is_fixed,
    "Fn::Sub": _sub_is_fixed,
    "Fn::If": _if_is_fixed,
    "Fn::ImportValue": _not_known,
}


def collisions(
    stack: str, template: dict[str, Any], paths: dict[str, str] | None = None
) -> Iterator[Collision | str]:
    """Retained resources with a fixed name; a string for a ``...Name`` property of unknown
    meaning on a retained resource (add it to NAME_PROPERTY or NOT_A_NAME)."""
    resources: dict[str, Any] = template.get("Resources", {})
    for logical_id, resource in resources.items():
        policies = {
            key: resource[key]
            for key in ("DeletionPolicy", "UpdateReplacePolicy")
            if resource.get(key) in RETAINING
        }
        if not policies:
            continue
        cfn_type = resource["Type"]
        properties = resource.get("Properties", {})
        name_property = NAME_PROPERTY.get(cfn_type)
        path = (paths or {}).get(logical_id, "?")
        for prop, value in properties.items():
            if not is_fixed(value, resources):
                continue
            if prop == name_property:
                yield Collision(
                    stack=stack,
                    logical_id=logical_id,
                    construct_path=path,
                    cfn_type=cfn_type,
                    policies=", ".join(f"{k} {v}" for k, v in policies.items()),
                    name_property=prop,
                    name=value,
                )
            elif prop.endswith("Name") and (cfn_type, prop) not in NOT_A_NAME:
                yield (
                    f"{stack}/{logical_id} ({cfn_type}, construct {path}): retained with "
                    f"{prop} {value!r}; unknown whether it names the resource: add the "
                    "type to NAME_PROPERTY or the property to NOT_A_NAME"
                )


def allowed_by(logical_id: str, cfn_type: str) -> str | None:
    for key, reason in ALLOWED.items():
        if key == cfn_type or re.fullmatch(key, logical_id):
            return reason
    return None


def construct_paths(stack: Stack) -> dict[str, str]:
    """Logical id -> construct path, to say which construct a finding comes from."""
    return {
        str(stack.resolve(node.logical_id)): node.node.path
        for node in stack.node.find_all()
        if isinstance(node, CfnElement) and Stack.of(node) is stack
    }


def every_stack(synthesized: Synthesized) -> Iterator[tuple[str, str]]:
    for env in synthesized.stages:
        for stack_id in synthesized.stack_ids(env):
            yield env, stack_id


def findings(synthesized: Synthesized) -> list[Collision | str]:
    found: list[Collision | str] = []
    for env, stack_id in every_stack(synthesized):
        stack = synthesized.stack(env, stack_id)
        template = synthesized.template_json(env, stack_id)
        found += collisions(stack.stack_name, template, construct_paths(stack))
    return found


# --- the app -----------------------------------------------------------------


def test_every_environment_and_stack_is_checked(synthesized: Synthesized) -> None:
    checked = set(every_stack(synthesized))
    assert {(env, stack) for env in ENV_NAMES for stack in STACK_IDS} <= checked


def test_no_retained_resource_has_a_fixed_name(synthesized: Synthesized) -> None:
    offending = [
        str(f)
        for f in findings(synthesized)
        if isinstance(f, str) or allowed_by(f.logical_id, f.cfn_type) is None
    ]
    assert not offending, "retained resources that block the next deploy:\n" + "\n".join(offending)


def test_every_allowlist_entry_is_still_needed(synthesized: Synthesized) -> None:
    used = {
        key
        for f in findings(synthesized)
        if isinstance(f, Collision)
        for key in ALLOWED
        if key == f.cfn_type or re.fullmatch(key, f.logical_id)
    }
    assert set(ALLOWED) == used, f"stale ALLOWED entries: {sorted(set(ALLOWED) - used)}"


def _registry(synthesized: Synthesized, env: str) -> RegistryStack:
    stack = synthesized.stack(env, "Registry")
    assert isinstance(stack, RegistryStack)
    return stack


@pytest.mark.parametrize("env", ENV_NAMES)
def test_cache_repositories_are_emptied_and_deleted(
    synthesized: Synthesized, environments: list[EnvironmentConfig], env: str
) -> None:
    (config,) = [e for e in environments if e.name == env]
    prefix = config.registry.pull_through_cache_prefix
    cache = _registry(synthesized, env).pull_through_cache
    assert cache.repositories, "the sidecar images come through pre-created cache repositories"
    template = synthesized.template_json(env, "Registry")
    cached = {
        r["Properties"]["RepositoryName"]: r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::ECR::Repository"
        and str(r["Properties"].get("RepositoryName", "")).startswith(f"{prefix}/")
    }
    assert set(cached) == {f"{prefix}/{path}" for path in cache.repositories}
    for name, repository in cached.items():
        assert repository["DeletionPolicy"] == "Delete", name
        assert repository["UpdateReplacePolicy"] == "Delete", name
        assert repository["Properties"]["EmptyOnDelete"] is True, name


@pytest.mark.parametrize("env", ENV_NAMES)
def test_app_repository_is_retained_under_a_generated_name(
    synthesized: Synthesized, env: str
) -> None:
    """It holds the images releases and rollbacks run; its generated name cannot collide."""
    stack = _registry(synthesized, env)
    logical_id = str(stack.resolve(stack.app_repository.repository.node.default_child.logical_id))
    repository = synthesized.template_json(env, "Registry")["Resources"][logical_id]
    assert repository["DeletionPolicy"] == "Retain"
    assert "RepositoryName" not in repository["Properties"]


# --- the check itself ----------------------------------------------------------


def _template(**resources: dict[str, Any]) -> dict[str, Any]:
    return {"Resources": resources}


def _retained(cfn_type: str, **properties: Any) -> dict[str, Any]:
    return {
        "Type": cfn_type,
        "Properties": properties,
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
    }


JOIN_WITH_ACCOUNT = {"Fn::Join": ["-", ["logs", {"Ref": "AWS::AccountId"}]]}
JOIN_WITH_STACK_ID = {"Fn::Join": ["-", ["logs", {"Ref": "AWS::StackId"}]]}


@pytest.mark.parametrize(
    ("name", "fixed"),
    [
        ("app-logs", True),
        (JOIN_WITH_ACCOUNT, True),  # the same account after a destroy
        ({"Fn::Sub": "logs-${AWS::Region}-${AWS::StackName}"}, True),
        ({"Fn::Sub": ["logs-${Suffix}", {"Suffix": "x"}]}, True),
        (JOIN_WITH_STACK_ID, False),  # new on every create
        ({"Fn::Sub": "logs-${AWS::StackId}"}, False),
        ({"Fn::Join": ["/", ["logs", {"Ref": "Key"}]]}, False),  # a generated key id
        ({"Fn::Join": ["/", ["logs", {"Ref": "Named"}]]}, True),  # a fixed name
        ({"Fn::GetAtt": ["Named", "Arn"]}, True),
        ({"Fn::If": ["IsProd", "prod-logs", {"Ref": "AWS::NoValue"}]}, True),
        ({"Fn::ImportValue": "other-stack-name"}, False),
    ],
)
def test_a_name_is_fixed_unless_it_is_new_on_every_create(name: Any, fixed: bool) -> None:
    template = _template(
        Group=_retained("AWS::Logs::LogGroup", LogGroupName=name),
        Key={"Type": "AWS::KMS::Key", "Properties": {}},
        Named={"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "q"}},
    )
    found = [str(f) for f in collisions("s", template) if "Group" in str(f)]
    assert bool(found) is fixed, found


def test_a_collision_names_the_stack_resource_construct_and_name() -> None:
    template = _template(Logs=_retained("AWS::Logs::LogGroup", LogGroupName="app-logs"))
    (found,) = collisions("dev-Service", template, {"Logs": "dev/Service/Logs/Resource"})
    assert str(found) == (
        "dev-Service/Logs (AWS::Logs::LogGroup, construct dev/Service/Logs/Resource): "
        "DeletionPolicy Retain, UpdateReplacePolicy Retain; LogGroupName 'app-logs' is fixed, "
        "so the next deploy after `cdk destroy` fails with 'already exists'"
    )


def test_only_retained_resources_count() -> None:
    deleted = {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "app-logs"}}
    replaced = {**deleted, "UpdateReplacePolicy": "Retain"}
    except_on_create = {**deleted, "DeletionPolicy": "RetainExceptOnCreate"}
    template = _template(Deleted=deleted, Replaced=replaced, ExceptOnCreate=except_on_create)
    assert sorted(f.logical_id for f in collisions("s", template) if isinstance(f, Collision)) == [
        "ExceptOnCreate",
        "Replaced",
    ]


def test_an_unknown_name_property_on_a_retained_resource_fails() -> None:
    template = _template(
        Table=_retained("AWS::DynamoDB::Table", TableName="orders"),
        Generated=_retained("AWS::DynamoDB::Table", TableName={"Ref": "AWS::StackId"}),
        Endpoint=_retained("AWS::EC2::VPCEndpoint", ServiceName="com.amazonaws.x.s3"),
    )
    (found,) = collisions("s", template)
    assert isinstance(found, str)
    assert found.startswith("s/Table (AWS::DynamoDB::Table, construct ?): retained with TableName")
    assert "add the type to NAME_PROPERTY or the property to NOT_A_NAME" in found
