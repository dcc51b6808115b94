"""The ProductionListenerRule handler: CloudFormation owns the rule's listener, priority and
conditions, and never writes back the forward action ECS blue/green deployments own
(aws-cdk#36649).

botocore's Stubber scripts the exact Elastic Load Balancing calls of each request, in order,
with their parameters; any other call fails the test. Updates compare with the live rule:
one that keeps its target groups sends no ``Actions``; one that replaces the idle group, or
moves the rule to another listener, carries the live weights over; one that would replace
the serving group is refused. Bad properties are refused before any call. Against moto, a
whole lifecycle shows that weights ECS shifted survive an update of conditions and priority.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from tests.handlers.conftest import run_as_lambda
from traced_fargate import production_listener_rule
from traced_fargate.production_listener_rule.handler.index import contract, rule

if TYPE_CHECKING:
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client
    from mypy_boto3_elbv2.type_defs import ActionTypeDef

REGION = "eu-west-1"
ACCOUNT = f"arn:aws:elasticloadbalancing:{REGION}:111111111111"
LISTENER = f"{ACCOUNT}:listener/app/lb/50dc6c495c0c9188/f2f7dc8efc522ab2"
OTHER_LISTENER = f"{ACCOUNT}:listener/app/lb/50dc6c495c0c9188/0467ef3c8400ae65"
RULE = f"{ACCOUNT}:listener-rule/app/lb/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee"
MOVED = f"{ACCOUNT}:listener-rule/app/lb/50dc6c495c0c9188/0467ef3c8400ae65/1c0c3ddc5b0e3a11"
BLUE = f"{ACCOUNT}:targetgroup/blue/73e2d6bc24d8a067"
GREEN = f"{ACCOUNT}:targetgroup/green/2453ed029918f21f"
NEW_BLUE = f"{ACCOUNT}:targetgroup/blue2/5d2d6bc24d8a0123"
NEW_GREEN = f"{ACCOUNT}:targetgroup/green2/8b53ed029918f456"
OTHER = f"{ACCOUNT}:targetgroup/canary/943ed029918f2ccc"
ROOT_PATH = [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/*"]}}]
TARGET_GROUPS = contract.TARGET_GROUP_ARNS
APP_PATH = [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/app/*"]}}]


@pytest.fixture(autouse=True)
def aws_env(offline_aws: None) -> None:
    """Every test here runs offline."""


class Elb:
    """A stubbed client and the calls it is expected to receive, in order."""

    def __init__(self) -> None:
        self.client: ElasticLoadBalancingv2Client = boto3.client("elbv2", region_name=REGION)
        self.stubber = Stubber(self.client)

    def ok(self, method: str, params: dict[str, Any], response: dict[str, Any]) -> None:
        self.stubber.add_response(method, response, params)

    def error(self, method: str, code: str, params: dict[str, Any]) -> None:
        self.stubber.add_client_error(
            method, service_error_code=code, service_message=code, expected_params=params
        )

    def done(self) -> None:
        self.stubber.assert_no_pending_responses()


@pytest.fixture
def elb() -> Iterator[Elb]:
    stubbed = Elb()
    with stubbed.stubber:
        yield stubbed


def props(
    listener: str | None = LISTENER,
    priority: str = "1",
    conditions: Sequence[dict[str, Any]] = ROOT_PATH,
    groups: Sequence[str] = (BLUE, GREEN),
) -> dict[str, Any]:
    found = {
        contract.PRIORITY: priority,
        contract.CONDITIONS: list(conditions),
        contract.TARGET_GROUP_ARNS: list(groups),
    }
    return found if listener is None else {contract.LISTENER_ARN: listener, **found}


def event(request: str, new: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"RequestType": request, "ResourceProperties": new}
    if request != "Create":
        found["PhysicalResourceId"] = RULE
    if old is not None:
        found["OldResourceProperties"] = old
    return found


def forward(*weights: tuple[str, int], **extra: Any) -> dict[str, Any]:
    groups = [{"TargetGroupArn": arn, "Weight": weight} for arn, weight in weights]
    return {"Type": "forward", "ForwardConfig": {"TargetGroups": groups}, **extra}


def described(*actions: dict[str, Any]) -> dict[str, Any]:
    live = {"RuleArn": RULE, "Priority": "1", "Conditions": ROOT_PATH, "IsDefault": False}
    return {"Rules": [{**live, "Actions": list(actions)}]}


def test_create_forwards_all_traffic_to_the_first_target_group(elb: Elb) -> None:
    elb.ok(
        "create_rule",
        {
            "ListenerArn": LISTENER,
            "Priority": 1,
            "Conditions": ROOT_PATH,
            "Actions": [forward((BLUE, 100), (GREEN, 0))],
        },
        {"Rules": [{"RuleArn": RULE}]},
    )
    assert rule.handle(elb.client, event("Create", props())) == {
        "PhysicalResourceId": RULE,
        "Data": {contract.RULE_ARN: RULE},
    }
    elb.done()


def test_create_never_takes_over_a_rule_at_its_priority(elb: Elb) -> None:
    # Even one over its own groups (a rolling service's rule being replaced): that rule's
    # own resource deletes it after the switch.
    elb.error(
        "create_rule",
        "PriorityInUse",
        {
            "ListenerArn": LISTENER,
            "Priority": 1,
            "Conditions": ROOT_PATH,
            "Actions": [forward((BLUE, 100), (GREEN, 0))],
        },
    )
    with pytest.raises(rule.RuleError, match="another rule on the listener has that priority"):
        rule.handle(elb.client, event("Create", props()))
    elb.done()


def test_update_of_conditions_never_writes_the_live_action(elb: Elb) -> None:
    elb.ok("describe_rules", {"RuleArns": [RULE]}, described(forward((BLUE, 0), (GREEN, 100))))
    elb.ok("modify_rule", {"RuleArn": RULE, "Conditions": APP_PATH}, {"Rules": []})
    answer = rule.handle(elb.client, event("Update", props(conditions=APP_PATH), props()))
    assert answer["PhysicalResourceId"] == RULE
    elb.done()


def test_update_of_priority_sets_the_new_priority(elb: Elb) -> None:
    elb.ok("describe_rules", {"RuleArns": [RULE]}, described(forward((BLUE, 0), (GREEN, 100))))
    elb.ok("modify_rule", {"RuleArn": RULE, "Conditions": ROOT_PATH}, {"Rules": []})
    elb.ok(
        "set_rule_priorities",
        {"RulePriorities": [{"RuleArn": RULE, "Priority": 7}]},
        {"Rules": []},
    )
    answer = rule.handle(elb.client, event("Update", props(priority="7"), props()))
    assert answer["PhysicalResourceId"] == RULE
    elb.done()


def test_replacing_the_idle_group_carries_the_live_weights(elb: Elb) -> None:
    live = forward((BLUE, 0), (GREEN, 100), TargetGroupArn=GREEN, Order=1)
    elb.ok("describe_rules", {"RuleArns": [RULE]}, described(live))
    carried = forward((NEW_BLUE, 0), (GREEN, 100), Order=1)
    elb.ok(
        "modify_rule",
        {"RuleArn": RULE, "Conditions": ROOT_PATH, "Actions": [carried]},
        {"Rules": []},
    )
    new = props(groups=(NEW_BLUE, GREEN))
    assert rule.handle(elb.client, event("Update", new, props()))["PhysicalResourceId"] == RULE
    elb.done()


@pytest.mark.parametrize("groups", [(NEW_BLUE, NEW_GREEN), (BLUE, NEW_GREEN)])
def test_replacing_the_serving_group_is_refused_without_a_write(
    elb: Elb, groups: tuple[str, str]
) -> None:
    # A new group has no tasks until ECS deploys: the rule must not send traffic there.
    elb.ok("describe_rules", {"RuleArns": [RULE]}, described(forward((BLUE, 0), (GREEN, 100))))
    with pytest.raises(rule.RuleError, match=f"{GREEN} serves traffic \\(weight 100\\)"):
        rule.handle(elb.client, event("Update", props(groups=groups), props()))
    elb.done()


def test_update_onto_another_listener_creates_a_rule_there_with_the_live_action(
    elb: Elb,
) -> None:
    live = forward((BLUE, 0), (GREEN, 100), Order=1)
    elb.ok("describe_rules", {"RuleArns": [RULE]}, described(live))
    elsewhere = {"RuleArn": f"{MOVED}0", "Priority": "1", "Actions": [forward((OTHER, 1))]}
    elb.ok(
        "describe_rules",
        {"ListenerArn": OTHER_LISTENER},
        {"Rules": [elsewhere], "NextMarker": "page-2"},
    )
    elb.ok("describe_rules", {"ListenerArn": OTHER_LISTENER, "Marker": "page-2"}, {"Rules": []})
    elb.ok(
        "create_rule",
        {"ListenerArn": OTHER_LISTENER, "Priority": 1, "Conditions": ROOT_PATH, "Actions": [live]},
        {"Rules": [{"RuleArn": MOVED}]},
    )
    answer = rule.handle(elb.client, event("Update", props(listener=OTHER_LISTENER), props()))
    assert answer == {"PhysicalResourceId": MOVED, "Data": {contract.RULE_ARN: MOVED}}
    elb.done()


def test_the_same_groups_in_another_order_leave_the_action_alone(elb: Elb) -> None:
    # Renaming first to first would swap which group serves.
    elb.ok("describe_rules", {"RuleArns": [RULE]}, described(forward((BLUE, 0), (GREEN, 100))))
    elb.ok("modify_rule", {"RuleArn": RULE, "Conditions": ROOT_PATH}, {"Rules": []})
    swapped = props(groups=(GREEN, BLUE))
    assert rule.handle(elb.client, event("Update", swapped, props()))["PhysicalResourceId"] == RULE
    elb.done()


def test_updates_read_the_live_rule_not_the_old_properties(elb: Elb) -> None:
    # So a rollback, which sends the refused properties as the old ones, restores what is
    # live: nothing moves but the conditions, re-applied.
    refused = {contract.PRIORITY: "0", TARGET_GROUPS: [OTHER]}
    elb.ok("describe_rules", {"RuleArns": [RULE]}, described(forward((BLUE, 0), (GREEN, 100))))
    elb.ok("modify_rule", {"RuleArn": RULE, "Conditions": ROOT_PATH}, {"Rules": []})
    answer = rule.handle(elb.client, event("Update", props(), refused))
    assert answer["PhysicalResourceId"] == RULE
    elb.done()


def test_a_move_takes_over_no_rule_that_forwards_to_one_group_only(elb: Elb) -> None:
    live = forward((BLUE, 0), (GREEN, 100))
    elb.ok("describe_rules", {"RuleArns": [RULE]}, described(live))
    rolling = {"RuleArn": f"{MOVED}0", "Priority": "1", "Actions": [forward((BLUE, 1))]}
    elb.ok("describe_rules", {"ListenerArn": OTHER_LISTENER}, {"Rules": [rolling]})
    elb.error(
        "create_rule",
        "PriorityInUse",
        {"ListenerArn": OTHER_LISTENER, "Priority": 1, "Conditions": ROOT_PATH, "Actions": [live]},
    )
    with pytest.raises(rule.RuleError, match="PriorityInUse"):
        rule.handle(elb.client, event("Update", props(listener=OTHER_LISTENER), props()))
    elb.done()


def test_an_update_of_a_rule_deleted_outside_cloudformation_says_how_to_recover(
    elb: Elb,
) -> None:
    elb.error("describe_rules", "RuleNotFound", {"RuleArns": [RULE]})
    with pytest.raises(rule.RuleError, match="deleted outside CloudFormation"):
        rule.handle(elb.client, event("Update", props(conditions=APP_PATH), props()))
    elb.done()


def test_rolling_back_a_move_keeps_the_rule_still_on_the_first_listener(elb: Elb) -> None:
    # The rollback sends the first listener back to the moved rule: the original, which
    # CloudFormation deletes only after the update, is adopted instead of a second create
    # that its priority would refuse.
    moved = {**described(forward((BLUE, 0), (GREEN, 100)))["Rules"][0], "RuleArn": MOVED}
    elb.ok("describe_rules", {"RuleArns": [MOVED]}, {"Rules": [moved]})
    original = {"RuleArn": RULE, "Priority": "1", "Actions": [forward((BLUE, 0), (GREEN, 100))]}
    elb.ok("describe_rules", {"ListenerArn": LISTENER}, {"Rules": [original]})
    elb.ok("modify_rule", {"RuleArn": RULE, "Conditions": ROOT_PATH}, {"Rules": []})
    request = {
        **event("Update", props(), props(listener=OTHER_LISTENER)),
        "PhysicalResourceId": MOVED,
    }
    assert rule.handle(elb.client, request) == {
        "PhysicalResourceId": RULE,
        "Data": {contract.RULE_ARN: RULE},
    }
    elb.done()


@pytest.mark.parametrize("code", [None, "RuleNotFound"])
def test_delete_removes_the_rule_or_finds_it_gone(elb: Elb, code: str | None) -> None:
    if code is None:
        elb.ok("delete_rule", {"RuleArn": RULE}, {})
    else:
        elb.error("delete_rule", code, {"RuleArn": RULE})
    assert rule.handle(elb.client, event("Delete", props())) == {"PhysicalResourceId": RULE}
    elb.done()


def test_delete_fails_on_any_other_error(elb: Elb) -> None:
    elb.error("delete_rule", "AccessDenied", {"RuleArn": RULE})
    with pytest.raises(rule.RuleError, match="AccessDenied"):
        rule.handle(elb.client, event("Delete", props()))
    elb.done()


@pytest.mark.parametrize(
    ("properties", "key"),
    [
        (props(priority="0"), contract.PRIORITY),
        (props(priority="abc"), contract.PRIORITY),
        (props(priority="50001"), contract.PRIORITY),
        (props(groups=(BLUE,)), contract.TARGET_GROUP_ARNS),
        (props(groups=(BLUE, BLUE)), contract.TARGET_GROUP_ARNS),
        (props(listener=None), contract.LISTENER_ARN),
        (props(conditions=()), contract.CONDITIONS),
    ],
)
@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_bad_properties_are_refused_before_any_call(
    elb: Elb, properties: dict[str, Any], key: str, request_type: str
) -> None:
    with pytest.raises(rule.RuleError, match=f"^{key}: "):
        rule.handle(elb.client, event(request_type, properties, props()))
    elb.done()


def test_every_bad_key_is_named_at_once(elb: Elb) -> None:
    with pytest.raises(rule.RuleError) as raised:
        rule.handle(elb.client, event("Create", props(None, "0", (), (BLUE,))))
    for key in (contract.LISTENER_ARN, contract.PRIORITY, contract.CONDITIONS, TARGET_GROUPS):
        assert f"{key}: " in str(raised.value)
    elb.done()


def test_unknown_request_type_is_refused(elb: Elb) -> None:
    with pytest.raises(rule.RuleError, match="RequestType: 'Replace'"):
        rule.handle(elb.client, event("Replace", props()))
    elb.done()


RENAMED = {BLUE: NEW_BLUE, GREEN: NEW_GREEN}


@pytest.mark.parametrize(
    ("live", "carried"),
    [
        (
            {"Type": "forward", "TargetGroupArn": GREEN, "Order": 1},
            {"Type": "forward", "TargetGroupArn": NEW_GREEN, "Order": 1},
        ),
        (forward((BLUE, 30), (GREEN, 70)), forward((NEW_BLUE, 30), (NEW_GREEN, 70))),
        (forward((GREEN, 100), TargetGroupArn=GREEN), forward((NEW_GREEN, 100))),
        (forward((BLUE, 90), (OTHER, 10)), forward((NEW_BLUE, 90), (OTHER, 10))),
        (
            {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503"}},
            {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503"}},
        ),
        (
            {"Type": "forward", "TargetGroupArn": OTHER},
            {"Type": "forward", "TargetGroupArn": OTHER},
        ),
    ],
)
def test_carried_actions(live: dict[str, Any], carried: dict[str, Any]) -> None:
    before = repr(live)
    assert rule.carried_actions([live], RENAMED) == [carried]
    assert repr(live) == before


@pytest.mark.parametrize(
    ("live", "groups", "renamed"),
    [
        ([forward((BLUE, 100), (GREEN, 0))], (BLUE, GREEN), {}),
        ([forward((BLUE, 100), (GREEN, 0))], (GREEN, BLUE), {}),
        ([forward((BLUE, 100), (GREEN, 0))], (BLUE, NEW_GREEN), {GREEN: NEW_GREEN}),
        ([forward((BLUE, 0), (GREEN, 100))], (NEW_BLUE, GREEN), {BLUE: NEW_BLUE}),
    ],
)
def test_only_an_idle_group_is_replaced(
    live: list[Any], groups: tuple[str, str], renamed: dict[str, str]
) -> None:
    assert rule.replaced_groups(live, groups) == renamed


def test_a_plain_forward_serves_and_cannot_be_replaced() -> None:
    with pytest.raises(rule.RuleError, match="serves traffic"):
        rule.replaced_groups([{"Type": "forward", "TargetGroupArn": BLUE}], (NEW_BLUE, GREEN))


def test_the_listener_of_a_rule() -> None:
    assert rule.listener_of(RULE) == LISTENER
    assert rule.listener_of(MOVED) == OTHER_LISTENER


def weights(client: ElasticLoadBalancingv2Client, rule_arn: str) -> dict[str, int]:
    action = client.describe_rules(RuleArns=[rule_arn])["Rules"][0]["Actions"][0]
    groups = action.get("ForwardConfig", {}).get("TargetGroups", [])
    return {g["TargetGroupArn"]: g["Weight"] for g in groups}


@mock_aws
def test_lifecycle_keeps_the_weights_ecs_shifted() -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    elb = boto3.client("elbv2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{z}")[
            "Subnet"
        ]["SubnetId"]
        for i, z in enumerate("ab")
    ]
    lb = elb.create_load_balancer(Name="lb", Subnets=subnets)["LoadBalancers"][0]
    listener = elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}],
    )["Listeners"][0]["ListenerArn"]
    blue, green = (
        elb.create_target_group(Name=name, Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip")[
            "TargetGroups"
        ][0]["TargetGroupArn"]
        for name in ("blue", "green")
    )
    first = props(listener=listener, groups=(blue, green))
    rule_arn = rule.handle(elb, event("Create", first))["PhysicalResourceId"]
    assert weights(elb, rule_arn) == {blue: 100, green: 0}

    shifted: ActionTypeDef = {
        "Type": "forward",
        "ForwardConfig": {
            "TargetGroups": [
                {"TargetGroupArn": blue, "Weight": 0},
                {"TargetGroupArn": green, "Weight": 100},
            ]
        },
    }
    elb.modify_rule(RuleArn=rule_arn, Actions=[shifted])
    second = props(listener=listener, priority="5", conditions=APP_PATH, groups=(blue, green))
    request = {**event("Update", second, first), "PhysicalResourceId": rule_arn}
    assert rule.handle(elb, request)["PhysicalResourceId"] == rule_arn

    live = elb.describe_rules(RuleArns=[rule_arn])["Rules"][0]
    assert live["Conditions"][0].get("PathPatternConfig", {}).get("Values") == ["/app/*"]
    assert live["Priority"] == "5"
    assert weights(elb, rule_arn) == {blue: 0, green: 100}

    gone = {**event("Delete", second), "PhysicalResourceId": rule_arn}
    assert rule.handle(elb, gone) == {"PhysicalResourceId": rule_arn}
    rules = elb.describe_rules(ListenerArn=listener)["Rules"]
    assert [r for r in rules if r["RuleArn"] == rule_arn] == []


_AS_LAMBDA = """
import sys
# The construct's side: the contract imports without the handler's dependencies.
sys.path.insert(0, sys.argv[1])
from handler.index import contract
assert contract.RESOURCE_TYPE == "Custom::ProductionListenerRule"
assert not {"boto3", "botocore"} & set(sys.modules), sorted(sys.modules)
# Lambda's side: the asset folder is the code root and the handler is index.on_event; the
# runtime has boto3, not its type stubs.
sys.modules["mypy_boto3_elbv2"] = None
sys.path.insert(0, sys.argv[2])
import index
try:
    index.on_event({"RequestType": "Replace", "ResourceProperties": {}}, None)
except Exception as error:
    assert "is not one of Create, Update, Delete" in str(error), error
print(index.__file__)
"""


def test_the_asset_folder_runs_as_the_lambda_handler_index_on_event() -> None:
    folder = production_listener_rule.HANDLER_DIR
    assert run_as_lambda(_AS_LAMBDA, folder) == str(folder / "index" / "__init__.py")
