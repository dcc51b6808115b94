"""The egress handler against moto: whole lifecycles, failures, and a crash after every
mutating EC2 call of opening and of closing.

A crash is the function dying right after an EC2 call returned (a timeout, the runtime
killed): :class:`Recorder` lets the Nth mutating call succeed, then raises :class:`Crash`,
a ``BaseException`` that no ``except Exception`` can swallow. The crash points are the
mutating calls recorded in an uncrashed run of the same scenario, so a call added to the
handler gets its crash tests without a change here (only the expected lists below).

After a crash, two things must hold: the same poll run again converges (no orphan, no
duplicate, a bounded number of polls), and what CloudFormation sends next (a Delete after a
failed Create, the rollback's Update after a failed re-open) removes everything the failed
request created. moto's NAT gateways are available at once and deleted at once; the states
in between are in ``test_temporary_egress_handler.py``, on botocore's Stubber.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from unittest import mock

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import utils as moto_utils

from traced_fargate.temporary_egress.handler.index import contract
from traced_fargate.temporary_egress.handler.index.contract import (
    EGRESS_RESOURCE_TYPE,
    OWNER_TAG_KEY,
    REQUEST_TAG_KEY,
    TEARDOWN_RESOURCE_TYPE,
    VPC_TAG_KEY,
)
from traced_fargate.temporary_egress.handler.index.dispatch import (
    handle_is_complete,
    handle_on_event,
)
from traced_fargate.temporary_egress.handler.index.ec2 import DEFAULT_ROUTE
from traced_fargate.temporary_egress.handler.index.model import EgressError

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.literals import ResourceTypeType
    from mypy_boto3_ec2.type_defs import (
        AddressTypeDef,
        FilterTypeDef,
        InternetGatewayTypeDef,
        NatGatewayTypeDef,
        RouteTableTypeDef,
        SubnetTypeDef,
        TagSpecificationTypeDef,
    )

REGION = "eu-west-1"
AZ = f"{REGION}a"
CREATE = "0f0e0d0c-0000-4000-8000-00000000c8ea"
REOPEN = "0f0e0d0c-0000-4000-8000-0000000e0pen"
ROLLBACK = "0f0e0d0c-0000-4000-8000-0000r011back"
# Polls of one request before it must be complete: more means the handler stalls.
POLLS = 4
_MUTATING = (
    "allocate_",
    "associate_",
    "attach_",
    "create_",
    "delete_",
    "detach_",
    "disassociate_",
    "modify_",
    "release_",
    "replace_",
)
_OWNERS = itertools.count()
_ACCOUNTS = itertools.count(200000000000)


class Crash(BaseException):
    """The function dying right after an EC2 call: nothing after it runs."""


class Recorder:
    """An EC2 client that records its mutating calls; it can die right after the Nth one,
    or answer one of them with an error instead of making it."""

    def __init__(
        self, ec2: EC2Client, crash_after: int | None = None, fail: dict[str, str] | None = None
    ) -> None:
        self._ec2 = ec2
        self.crash_after = crash_after
        self.fail = fail or {}
        self.calls: list[str] = []

    @property
    def client(self) -> EC2Client:
        return cast("EC2Client", self)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._ec2, name)
        if not name.startswith(_MUTATING):
            return method

        def call(**kwargs: Any) -> Any:
            if name in self.fail:
                code = self.fail[name]
                raise ClientError({"Error": {"Code": code, "Message": code}}, name)
            result = method(**kwargs)
            self.calls.append(name)
            if len(self.calls) == self.crash_after:
                self.crash_after = None
                raise Crash(f"after mutating call {len(self.calls)}: {name}")
            return result

        return call


@dataclass(frozen=True)
class Owned:
    """The parts of one owner, as EC2 describes them."""

    gateways: list[InternetGatewayTypeDef]
    subnets: list[SubnetTypeDef]
    route_tables: list[RouteTableTypeDef]
    addresses: list[AddressTypeDef]
    nats: list[NatGatewayTypeDef]

    def ids(self) -> dict[str, list[str]]:
        return {
            "internet gateways": [g["InternetGatewayId"] for g in self.gateways],
            "subnets": [s["SubnetId"] for s in self.subnets],
            "route tables": [t["RouteTableId"] for t in self.route_tables],
            "elastic IPs": [a["AllocationId"] for a in self.addresses],
            "NAT gateways": [n["NatGatewayId"] for n in self.nats],
        }


@dataclass
class Box:
    """One test's VPC with two isolated subnets, and an owner no other test uses."""

    ec2: EC2Client
    vpc: str
    isolated: list[str]
    owner: str = field(default_factory=lambda: f"test/Network/TemporaryEgress{next(_OWNERS)}")

    def egress_props(self, generation: str = "1") -> dict[str, Any]:
        return {
            contract.VPC_ID: self.vpc,
            contract.OWNER_TAG: self.owner,
            contract.PUBLIC_SUBNET_CIDR: "10.0.255.240/28",
            contract.AVAILABILITY_ZONE: AZ,
            contract.ROUTE_TABLE_IDS: self.isolated,
            contract.GENERATION: generation,
        }

    def teardown_props(self, data: dict[str, str]) -> dict[str, Any]:
        return {
            contract.VPC_ID: self.vpc,
            contract.OWNER_TAG: self.owner,
            contract.ROUTE_TABLE_IDS: self.isolated,
            contract.GENERATION: "1",
            **data,
        }

    def owned(self) -> Owned:
        """Every live part that carries this test's owner tag."""
        mine: list[FilterTypeDef] = [{"Name": f"tag:{OWNER_TAG_KEY}", "Values": [self.owner]}]
        ec2 = self.ec2
        # moto ignores tag filters on NAT gateways: those are filtered here.
        nats = ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [self.vpc]}])
        owner_tag = {"Key": OWNER_TAG_KEY, "Value": self.owner}
        return Owned(
            gateways=ec2.describe_internet_gateways(Filters=mine)["InternetGateways"],
            subnets=ec2.describe_subnets(Filters=mine)["Subnets"],
            route_tables=ec2.describe_route_tables(Filters=mine)["RouteTables"],
            addresses=ec2.describe_addresses(Filters=mine)["Addresses"],
            nats=[
                n
                for n in nats["NatGateways"]
                if n["State"] != "deleted" and owner_tag in n.get("Tags", [])
            ],
        )

    def default_targets(self) -> list[str | None]:
        """Where each isolated table sends 0.0.0.0/0, if anywhere."""
        tables = self.ec2.describe_route_tables(RouteTableIds=self.isolated)["RouteTables"]
        return [
            next(
                (
                    r.get("NatGatewayId") or r.get("GatewayId")
                    for r in t["Routes"]
                    if r.get("DestinationCidrBlock") == DEFAULT_ROUTE
                ),
                None,
            )
            for t in sorted(tables, key=lambda t: self.isolated.index(t["RouteTableId"]))
        ]


def new_box(ec2: EC2Client) -> Box:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    isolated = []
    for cidr in ("10.0.0.0/24", "10.0.1.0/24"):
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=AZ)["Subnet"]
        table_id = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.associate_route_table(RouteTableId=table_id, SubnetId=subnet["SubnetId"])
        isolated.append(table_id)
    return Box(ec2, vpc, sorted(isolated))


def tag_specification(kind: ResourceTypeType, box: Box, request: str) -> TagSpecificationTypeDef:
    """The tags the handler gives a part of ``request``."""
    return {
        "ResourceType": kind,
        "Tags": [
            {"Key": OWNER_TAG_KEY, "Value": box.owner},
            {"Key": REQUEST_TAG_KEY, "Value": request},
            {"Key": VPC_TAG_KEY, "Value": box.vpc},
        ],
    }


def event(
    resource_type: str,
    request_type: str,
    props: dict[str, Any],
    *,
    request_id: str,
    physical_id: str | None = None,
    old_props: dict[str, Any] | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "RequestType": request_type,
        "ResourceType": resource_type,
        "RequestId": request_id,
        "LogicalResourceId": "Egress",
        "ResourceProperties": props,
    }
    if physical_id is not None:
        result["PhysicalResourceId"] = physical_id
    if old_props is not None:
        result["OldResourceProperties"] = old_props
    return result


def started(ec2: EC2Client, request: dict[str, Any]) -> dict[str, Any]:
    """The event as the provider polls it: with what on_event answered."""
    return {**request, **handle_on_event(ec2, request)}


def drive(ec2: EC2Client, polled: dict[str, Any]) -> dict[str, Any]:
    """Poll is_complete until it is done; the event as CloudFormation then has it."""
    for _ in range(POLLS):
        answer = handle_is_complete(ec2, polled)
        if answer["IsComplete"]:
            return {**polled, **answer}
    raise AssertionError(f"still not complete after {POLLS} polls: the handler stalls")


def run(ec2: EC2Client, request: dict[str, Any]) -> dict[str, Any]:
    return drive(ec2, started(ec2, request))


# --- the three scenarios: each returns the event to poll, after on_event ------------------------


def opening(box: Box, ec2: EC2Client) -> dict[str, Any]:
    """A Create of the egress."""
    return started(
        ec2, event(EGRESS_RESOURCE_TYPE, "Create", box.egress_props(), request_id=CREATE)
    )


def closing(box: Box, ec2: EC2Client) -> dict[str, Any]:
    """An open egress, then a Create of its teardown."""
    opened = run(box.ec2, opening(box, box.ec2))
    props = box.teardown_props(opened["Data"])
    return started(ec2, event(TEARDOWN_RESOURCE_TYPE, "Create", props, request_id=CREATE))


def reopening(box: Box, ec2: EC2Client) -> dict[str, Any]:
    """An open egress, then an Update to a new generation: close it, open another."""
    opened = run(box.ec2, opening(box, box.ec2))
    update = event(
        EGRESS_RESOURCE_TYPE,
        "Update",
        box.egress_props("2"),
        request_id=REOPEN,
        physical_id=opened["PhysicalResourceId"],
        old_props=box.egress_props("1"),
    )
    return started(ec2, update)


def recorded(scenario: Callable[[Box, EC2Client], dict[str, Any]]) -> list[str]:
    """The mutating calls of ``scenario``'s polls, run once without a crash."""
    with fresh_moto() as raw:
        recorder = Recorder(raw)
        polled = scenario(new_box(raw), recorder.client)
        assert recorder.calls == [], "on_event must not change anything"
        drive(recorder.client, polled)
        return recorder.calls


@contextlib.contextmanager
def fresh_moto() -> Iterator[EC2Client]:
    # Without the default images, each account's EC2 starts in milliseconds.
    with mock.patch.dict(os.environ, {"MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}), mock_aws():
        # moto reads no signature: not making one saves a tenth of each call.
        unsigned = Config(signature_version=UNSIGNED)
        yield boto3.client("ec2", region_name=REGION, config=unsigned)


OPENING_CALLS = recorded(opening)
CLOSING_CALLS = recorded(closing)
REOPENING_CALLS = recorded(reopening)


def crash_points(calls: list[str]) -> list[Any]:
    return [pytest.param(n, id=f"{n:02d}-{name}") for n, name in enumerate(calls, start=1)]


@pytest.fixture(scope="module")
def cloud() -> Iterator[EC2Client]:
    with pytest.MonkeyPatch.context() as patch, fresh_moto() as ec2:
        # moto lists a response class's methods anew on every call, about half of what a
        # call costs here; the list never changes, so it is kept. Tests only.
        names = functools.cache(moto_utils.method_names_from_class)
        patch.setattr("moto.core.responses.method_names_from_class", names)
        yield ec2


@pytest.fixture
def box(cloud: EC2Client, monkeypatch: pytest.MonkeyPatch) -> Box:
    # An AWS account of its own: moto keeps one EC2 per account, so no test sees another's
    # parts, and none pays for tags that earlier tests left (moto scans them all on a call).
    monkeypatch.setenv("MOTO_ACCOUNT_ID", f"{next(_ACCOUNTS):012d}")
    return new_box(cloud)


NOTHING: dict[str, list[str]] = {
    "internet gateways": [],
    "subnets": [],
    "route tables": [],
    "elastic IPs": [],
    "NAT gateways": [],
}


def assert_one_egress(box: Box, done: dict[str, Any], request: str) -> None:
    """Exactly the egress that ``done`` reports is there, open, and it is ``request``'s."""
    data = done["Data"]
    assert done["PhysicalResourceId"] == ":".join(("egress", *data.values()))
    owned = box.owned()
    assert owned.ids() == {
        "internet gateways": [data["InternetGatewayId"]],
        "subnets": [data["PublicSubnetId"]],
        "route tables": [data["PublicRouteTableId"]],
        "elastic IPs": [data["AllocationId"]],
        "NAT gateways": [data["NatGatewayId"]],
    }
    assert box.default_targets() == [data["NatGatewayId"]] * 2
    ((nat,), (gateway,), (table,)) = (owned.nats, owned.gateways, owned.route_tables)
    assert (nat["State"], nat["SubnetId"]) == ("available", data["PublicSubnetId"])
    assert nat["NatGatewayAddresses"][0]["AllocationId"] == data["AllocationId"]
    for part in (nat, gateway, table, *owned.subnets, *owned.addresses):
        assert {"Key": REQUEST_TAG_KEY, "Value": request} in part["Tags"]
        assert {"Key": VPC_TAG_KEY, "Value": box.vpc} in part["Tags"]
    assert [a["VpcId"] for a in gateway["Attachments"]] == [box.vpc]
    public = [
        r.get("GatewayId") for r in table["Routes"] if r["DestinationCidrBlock"] == DEFAULT_ROUTE
    ]
    assert public == [data["InternetGatewayId"]]
    assert [a["SubnetId"] for a in table["Associations"]] == [data["PublicSubnetId"]]


def assert_nothing_left(box: Box) -> None:
    assert box.owned().ids() == NOTHING
    assert box.default_targets() == [None, None]


def delete_egress(box: Box, ec2: EC2Client, physical_id: str, generation: str = "1") -> None:
    props = box.egress_props(generation)
    delete = event(EGRESS_RESOURCE_TYPE, "Delete", props, request_id="d", physical_id=physical_id)
    run(ec2, delete)


# --- the crash points --------------------------------------------------------------------------


def test_every_mutating_call_of_opening_and_closing_is_a_crash_point() -> None:
    assert OPENING_CALLS == [
        "create_internet_gateway",
        "attach_internet_gateway",
        "create_subnet",
        "create_route_table",
        "create_route",  # 0.0.0.0/0 -> internet gateway in the public table
        "associate_route_table",
        "allocate_address",
        "create_nat_gateway",
        "create_route",  # 0.0.0.0/0 -> NAT in each isolated table
        "create_route",
    ]
    assert CLOSING_CALLS == [
        "delete_route",  # from each isolated table
        "delete_route",
        "delete_nat_gateway",
        # the next poll, once the NAT is deleted
        "release_address",
        "disassociate_route_table",
        "delete_route_table",
        "delete_subnet",
        "detach_internet_gateway",
        "delete_internet_gateway",
    ]
    assert REOPENING_CALLS == CLOSING_CALLS + OPENING_CALLS
    assert (len(OPENING_CALLS), len(CLOSING_CALLS), len(REOPENING_CALLS)) == (10, 9, 19)


@pytest.mark.parametrize("crash_at", crash_points(OPENING_CALLS))
def test_opening_converges_after_a_crash(box: Box, crash_at: int) -> None:
    ec2 = Recorder(box.ec2, crash_after=crash_at).client
    polled = opening(box, ec2)
    with pytest.raises(Crash):
        drive(ec2, polled)

    opened = drive(ec2, polled)
    assert_one_egress(box, opened, CREATE)
    delete_egress(box, ec2, opened["PhysicalResourceId"])
    assert_nothing_left(box)


@pytest.mark.parametrize("crash_at", crash_points(OPENING_CALLS))
def test_the_delete_after_a_crash_in_opening_removes_everything(box: Box, crash_at: int) -> None:
    ec2 = Recorder(box.ec2, crash_after=crash_at).client
    polled = opening(box, ec2)
    with pytest.raises(Crash):
        drive(ec2, polled)

    # The Create failed with on_event's physical id: CloudFormation deletes that id.
    delete_egress(box, ec2, polled["PhysicalResourceId"])
    assert_nothing_left(box)


@pytest.mark.parametrize("crash_at", crash_points(CLOSING_CALLS))
def test_closing_converges_after_a_crash(box: Box, crash_at: int) -> None:
    recorder = Recorder(box.ec2, crash_after=crash_at)
    polled = closing(box, recorder.client)
    with pytest.raises(Crash):
        drive(recorder.client, polled)

    drive(recorder.client, polled)
    assert_nothing_left(box)
    calls = len(recorder.calls)
    egress_id = ":".join(("egress", *(polled["ResourceProperties"][k] for k in contract.DATA_KEYS)))
    delete_egress(box, recorder.client, egress_id)
    assert len(recorder.calls) == calls, "the egress's Delete finds nothing left to do"


@pytest.mark.parametrize("crash_at", crash_points(CLOSING_CALLS))
def test_the_delete_after_a_crash_in_closing_removes_everything(box: Box, crash_at: int) -> None:
    ec2 = Recorder(box.ec2, crash_after=crash_at).client
    polled = closing(box, ec2)
    with pytest.raises(Crash):
        drive(ec2, polled)

    egress_id = ":".join(("egress", *(polled["ResourceProperties"][k] for k in contract.DATA_KEYS)))
    delete_egress(box, ec2, egress_id)
    assert_nothing_left(box)


@pytest.mark.parametrize("crash_at", crash_points(REOPENING_CALLS))
def test_the_rollback_after_a_crash_in_a_re_open_leaves_one_egress(box: Box, crash_at: int) -> None:
    ec2 = Recorder(box.ec2, crash_after=crash_at).client
    polled = reopening(box, ec2)
    with pytest.raises(Crash):
        drive(ec2, polled)

    # CloudFormation rolls the update back: an Update to the old properties, which is a
    # re-open too. It must end with one egress, its own, whatever the dead poll left.
    rolled_back = run(ec2, rollback_of(box, polled))
    assert_one_egress(box, rolled_back, ROLLBACK)
    delete_egress(box, ec2, rolled_back["PhysicalResourceId"])
    assert_nothing_left(box)


def rollback_of(box: Box, update: dict[str, Any]) -> dict[str, Any]:
    """The Update CloudFormation sends when ``update`` failed: back to the old properties,
    with the physical id from before ``update``, as a request of its own."""
    return event(
        EGRESS_RESOURCE_TYPE,
        "Update",
        update["OldResourceProperties"],
        request_id=ROLLBACK,
        physical_id=update["PhysicalResourceId"],
        old_props=update["ResourceProperties"],
    )


def test_a_re_open_that_died_after_attaching_its_gateway_rolls_back_within_a_few_polls(
    box: Box,
) -> None:
    # The stall this handler used to have: a re-open's poll died between AttachInternetGateway
    # and CreateNatGateway. No NAT of that request was ever found, every later poll waited for
    # it until the provider's timeout, and the rollback's re-open then failed on the VPC's
    # "already has an internet gateway" (the gateway of the dead request, in no physical id).
    crash_at = REOPENING_CALLS.index("attach_internet_gateway") + 1
    recorder = Recorder(box.ec2, crash_after=crash_at)
    polled = reopening(box, recorder.client)
    with pytest.raises(Crash, match="attach_internet_gateway"):
        drive(recorder.client, polled)
    (stray,) = box.owned().ids()["internet gateways"]

    update = started(recorder.client, rollback_of(box, polled))
    polls = []
    while not (answer := handle_is_complete(recorder.client, update))["IsComplete"]:
        polls.append(answer)
        assert len(polls) < POLLS
    rolled_back = {**update, **answer}
    assert_one_egress(box, rolled_back, ROLLBACK)
    assert stray not in box.owned().ids()["internet gateways"]
    assert len(polls) == 1, "one poll removes the dead request's gateway, the next reopens"
    # The rollback replaced the physical id: CloudFormation's Delete of the one it replaced
    # must leave the rollback's egress alone.
    delete_egress(box, recorder.client, polled["PhysicalResourceId"])
    assert_one_egress(box, rolled_back, ROLLBACK)


def test_a_re_open_that_died_after_attaching_its_gateway_completes_when_polled_again(
    box: Box,
) -> None:
    crash_at = REOPENING_CALLS.index("attach_internet_gateway") + 1
    recorder = Recorder(box.ec2, crash_after=crash_at)
    polled = reopening(box, recorder.client)
    with pytest.raises(Crash, match="attach_internet_gateway"):
        drive(recorder.client, polled)
    (gateway,) = box.owned().ids()["internet gateways"]

    reopened = drive(recorder.client, polled)
    assert_one_egress(box, reopened, REOPEN)
    assert reopened["Data"]["InternetGatewayId"] == gateway, "the attached gateway is used"


# --- lifecycles --------------------------------------------------------------------------------


def test_open_then_close_then_delete(box: Box) -> None:
    recorder = Recorder(box.ec2)
    opened = run(recorder.client, opening(box, recorder.client))
    assert_one_egress(box, opened, CREATE)

    props = box.teardown_props(opened["Data"])
    teardown = run(recorder.client, event(TEARDOWN_RESOURCE_TYPE, "Create", props, request_id="t"))
    assert teardown["PhysicalResourceId"] == f"teardown:{opened['Data']['NatGatewayId']}"
    assert_nothing_left(box)
    nat_id = opened["Data"]["NatGatewayId"]
    (nat,) = box.ec2.describe_nat_gateways(NatGatewayIds=[nat_id])["NatGateways"]
    assert nat["State"] == "deleted"

    # Closed twice is closed once, and the egress's own Delete then finds nothing to do.
    calls = len(recorder.calls)
    assert handle_is_complete(recorder.client, teardown) == {"IsComplete": True}
    delete_egress(box, recorder.client, opened["PhysicalResourceId"])
    assert len(recorder.calls) == calls


def test_a_new_generation_replaces_the_egress_and_the_old_id_s_delete_keeps_the_new(
    box: Box,
) -> None:
    polled = reopening(box, box.ec2)
    first = polled["PhysicalResourceId"]
    reopened = drive(box.ec2, polled)

    assert reopened["PhysicalResourceId"] != first
    assert set(reopened["Data"].values()).isdisjoint(first.split(":"))
    assert_one_egress(box, reopened, REOPEN)
    delete_egress(box, box.ec2, first)
    assert_one_egress(box, reopened, REOPEN)


def test_a_create_refused_before_its_physical_id_has_changed_nothing(box: Box) -> None:
    gateway = box.ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    box.ec2.create_route(
        RouteTableId=box.isolated[1], DestinationCidrBlock=DEFAULT_ROUTE, GatewayId=gateway
    )
    recorder = Recorder(box.ec2)
    create = event(EGRESS_RESOURCE_TYPE, "Create", box.egress_props(), request_id=CREATE)

    with pytest.raises(EgressError, match="nothing was created"):
        handle_on_event(recorder.client, create)
    # No physical id: CloudFormation's Delete after this never reaches the handler, and it
    # needs to remove nothing.
    assert recorder.calls == []
    assert box.owned().ids() == NOTHING


def test_a_poll_failing_after_the_physical_id_leaves_the_cleanup_to_the_delete(box: Box) -> None:
    recorder = Recorder(box.ec2, fail={"create_nat_gateway": "NatGatewayLimitExceeded"})
    polled = opening(box, recorder.client)
    with pytest.raises(ClientError, match="NatGatewayLimitExceeded"):
        handle_is_complete(recorder.client, polled)
    left = box.owned().ids()
    assert [len(ids) for ids in left.values()] == [1, 1, 1, 1, 0]

    delete_egress(box, recorder.client, polled["PhysicalResourceId"])
    assert_nothing_left(box)


def test_opening_and_closing_remove_what_a_dead_request_left(box: Box) -> None:
    # Parts of the owner that no physical id names: what a request that died created.
    kinds: tuple[ResourceTypeType, ...] = ("internet-gateway", "elastic-ip")
    specs = [tag_specification(kind, box, "a-request-that-died") for kind in kinds]
    stray = box.ec2.create_internet_gateway(TagSpecifications=[specs[0]])["InternetGateway"]
    box.ec2.attach_internet_gateway(InternetGatewayId=stray["InternetGatewayId"], VpcId=box.vpc)
    box.ec2.allocate_address(Domain="vpc", TagSpecifications=[specs[1]])

    opened = run(box.ec2, opening(box, box.ec2))
    assert_one_egress(box, opened, CREATE)

    box.ec2.allocate_address(Domain="vpc", TagSpecifications=[specs[1]])
    props = box.teardown_props(opened["Data"])
    run(box.ec2, event(TEARDOWN_RESOURCE_TYPE, "Create", props, request_id="t"))
    assert_nothing_left(box)


def test_a_second_part_of_the_same_request_is_removed_not_used(box: Box) -> None:
    # EC2 lists a new resource a moment after creating it: a poll that missed one creates it
    # again. The next poll keeps the one in use and removes the other.
    polled = opening(box, box.ec2)
    spec = [tag_specification("internet-gateway", box, CREATE)]
    gateway = box.ec2.create_internet_gateway(TagSpecifications=spec)["InternetGateway"]
    box.ec2.attach_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"], VpcId=box.vpc)
    for _ in range(2):
        box.ec2.allocate_address(
            Domain="vpc", TagSpecifications=[tag_specification("elastic-ip", box, CREATE)]
        )

    opened = drive(box.ec2, polled)
    assert_one_egress(box, opened, CREATE)
    assert opened["Data"]["InternetGatewayId"] == gateway["InternetGatewayId"]


def test_a_gateway_the_previous_handler_left_attached_is_removed_not_refused(box: Box) -> None:
    # What the stall left in stacks deployed before: the gateway of a dead re-open, attached,
    # tagged with the owner and its request but without the VPC tag, which came later.
    legacy: list[TagSpecificationTypeDef] = [
        {
            "ResourceType": "internet-gateway",
            "Tags": [
                {"Key": OWNER_TAG_KEY, "Value": box.owner},
                {"Key": REQUEST_TAG_KEY, "Value": "a-re-open-that-died"},
            ],
        }
    ]
    stray = box.ec2.create_internet_gateway(TagSpecifications=legacy)["InternetGateway"]
    box.ec2.attach_internet_gateway(InternetGatewayId=stray["InternetGatewayId"], VpcId=box.vpc)

    opened = run(box.ec2, opening(box, box.ec2))
    assert_one_egress(box, opened, CREATE)
    assert opened["Data"]["InternetGatewayId"] != stray["InternetGatewayId"]
