"""The TemporaryEgress custom-resource handler against botocore's Stubber: the EC2 states
that moto cannot show (a NAT ``pending`` or ``deleting``, an address still in use, NotFound
answers), the ownership checks, and the event contract.

Each Stubber test scripts the exact EC2 calls it expects, in order; any other call fails the
test. The refusals queue describe responses only, so a mutating call cannot slip by. Whole
lifecycles, and a crash after every mutating call, run against moto in
``test_temporary_egress_lifecycle.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.stub import Stubber

from tests.handlers.conftest import run_as_lambda
from traced_fargate import temporary_egress
from traced_fargate._functions import HANDLER_EXCLUDE
from traced_fargate.temporary_egress.handler.index import contract, dispatch
from traced_fargate.temporary_egress.handler.index.closing import Target, close_step
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
from traced_fargate.temporary_egress.handler.index.model import (
    EgressError,
    EgressIds,
    Opening,
    OwnershipError,
    Scope,
    parse_egress_physical_id,
)

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

REGION = "eu-west-1"
VPC = "vpc-0a1a1a1a1a1a1a1a1"
OTHER_VPC = "vpc-0b2b2b2b2b2b2b2b2"
OWNER = "dev/Network/TemporaryEgress"
FOREIGN_OWNER = "prod/Network/TemporaryEgress"
REQUEST = "8d2f0a52-6c1e-4f4b-9a51-0c3f5e7d9b11"
CIDR = "10.0.255.240/28"
AZ = "eu-west-1a"
ISOLATED = ("rtb-0c3c3c3c3c3c3c3c3", "rtb-0d4d4d4d4d4d4d4d4")
ASSOCIATION = "rtbassoc-0e5e5e5e5e5e5e5e5"
IDS = EgressIds(
    nat_gateway_id="nat-0f6f6f6f6f6f6f6f6",
    allocation_id="eipalloc-0a7a7a7a7a7a7a7a7",
    internet_gateway_id="igw-0b8b8b8b8b8b8b8b8",
    public_subnet_id="subnet-0c9c9c9c9c9c9c9c9",
    public_route_table_id="rtb-0d0d0d0d0d0d0d0d0",
)
SCOPE = Scope(vpc_id=VPC, owner_tag=OWNER, route_table_ids=ISOLATED)
RESOURCES = ("nat", "address", "gateway", "subnet", "table")
# How the handler looks for the owner's parts: in the VPC for the kinds EC2 places in one, by
# the VPC tag for an Elastic IP, by the owner alone for internet gateways (then checked).
BY_OWNER = [{"Name": f"tag:{OWNER_TAG_KEY}", "Values": [OWNER]}]
IN_VPC = [*BY_OWNER, {"Name": "vpc-id", "Values": [VPC]}]
BY_VPC_TAG = [*BY_OWNER, {"Name": f"tag:{VPC_TAG_KEY}", "Values": [VPC]}]
HANDLER_DIR = Path(temporary_egress.HANDLER_DIR)


@pytest.fixture(autouse=True)
def aws_env(offline_aws: None) -> None:
    """Every test here runs offline."""


def tags(owner: str | None = OWNER, *extra: tuple[str, str]) -> list[dict[str, str]]:
    pairs = [(OWNER_TAG_KEY, owner)] if owner is not None else []
    return [{"Key": k, "Value": v} for k, v in [*pairs, *extra]]


def ours(request: str = REQUEST) -> list[dict[str, str]]:
    """The tags the handler puts on what it creates (without Name)."""
    return tags(OWNER, (REQUEST_TAG_KEY, request), (VPC_TAG_KEY, VPC))


def isolated_table(table_id: str, vpc: str = VPC, default_to: str | None = None) -> dict[str, Any]:
    routes: list[dict[str, Any]] = [
        {"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local", "State": "active"}
    ]
    if default_to is not None:
        key = "NatGatewayId" if default_to.startswith("nat-") else "GatewayId"
        routes.append({"DestinationCidrBlock": DEFAULT_ROUTE, key: default_to, "State": "active"})
    return {"RouteTableId": table_id, "VpcId": vpc, "Routes": routes}


def nat_part(
    state: str, *, owner: str | None = OWNER, vpc: str = VPC, **extra: Any
) -> dict[str, Any]:
    return {
        "NatGatewayId": IDS.nat_gateway_id,
        "State": state,
        "VpcId": vpc,
        "SubnetId": IDS.public_subnet_id,
        "NatGatewayAddresses": [{"AllocationId": IDS.allocation_id}],
        "Tags": tags(owner),
        **extra,
    }


class Script:
    """Queues Stubber responses in the order the handler is expected to call EC2."""

    def __init__(self, stubber: Stubber) -> None:
        self.stubber = stubber

    def ok(self, method: str, params: Mapping[str, Any], response: Mapping[str, Any]) -> None:
        self.stubber.add_response(method, dict(response), dict(params))

    def error(self, method: str, code: str, params: Mapping[str, Any]) -> None:
        self.stubber.add_client_error(
            method, service_error_code=code, service_message=code, expected_params=dict(params)
        )

    # --- describes -------------------------------------------------------------------------

    def isolated(self, *tables: dict[str, Any]) -> None:
        params = {"Filters": [{"Name": "route-table-id", "Values": list(ISOLATED)}]}
        self.ok("describe_route_tables", params, {"RouteTables": list(tables)})

    def isolated_routed_to(self, target: str | None) -> None:
        self.isolated(*(isolated_table(t, default_to=target) for t in ISOLATED))

    def named(
        self,
        *,
        nat_state: str = "available",
        gone: Sequence[str] = (),
        foreign: tuple[str, str] | None = None,
        routed: bool = True,
        failure: str | None = None,
        isolated: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        """The six describes of closing the ids a physical id names.

        ``gone`` lists resources EC2 no longer knows; ``foreign`` = (resource, "owner" |
        "untagged" | "vpc" | "vpc-tag") makes one resource someone else's; ``isolated``
        replaces the isolated route tables, which otherwise route to our NAT when ``routed``.
        """

        def owner(resource: str) -> str | None:
            if foreign == (resource, "untagged"):
                return None
            return FOREIGN_OWNER if foreign == (resource, "owner") else OWNER

        def part_tags(resource: str) -> list[dict[str, str]]:
            extra = [(VPC_TAG_KEY, OTHER_VPC)] if foreign == (resource, "vpc-tag") else []
            return tags(owner(resource), *extra)

        def vpc(resource: str) -> str:
            return OTHER_VPC if foreign == (resource, "vpc") else VPC

        if "nat" in gone:
            self.error("describe_nat_gateways", "NatGatewayNotFound", nat_ids())
        else:
            nat = nat_part(nat_state, owner=owner("nat"), vpc=vpc("nat"))
            nat["Tags"] = part_tags("nat")
            if failure is not None:
                nat |= {
                    "FailureCode": "InsufficientFreeAddressesInSubnet",
                    "FailureMessage": failure,
                }
            self.ok("describe_nat_gateways", nat_ids(), {"NatGateways": [nat]})
        if "address" in gone:
            self.error("describe_addresses", "InvalidAllocationID.NotFound", address_ids())
        else:
            address = {
                "AllocationId": IDS.allocation_id,
                "Domain": "vpc",
                "PublicIp": "203.0.113.10",
                "Tags": part_tags("address"),
            }
            self.ok("describe_addresses", address_ids(), {"Addresses": [address]})
        if "gateway" in gone:
            self.error("describe_internet_gateways", "InvalidInternetGatewayID.NotFound", igw_ids())
        else:
            gateway = {
                "InternetGatewayId": IDS.internet_gateway_id,
                "Attachments": [{"State": "available", "VpcId": vpc("gateway")}],
                "Tags": part_tags("gateway"),
            }
            self.ok("describe_internet_gateways", igw_ids(), {"InternetGateways": [gateway]})
        if "subnet" in gone:
            self.error("describe_subnets", "InvalidSubnetID.NotFound", subnet_ids())
        else:
            subnet = {
                "SubnetId": IDS.public_subnet_id,
                "VpcId": vpc("subnet"),
                "CidrBlock": CIDR,
                "AvailabilityZone": AZ,
                "Tags": part_tags("subnet"),
            }
            self.ok("describe_subnets", subnet_ids(), {"Subnets": [subnet]})
        if "table" in gone:
            self.error("describe_route_tables", "InvalidRouteTableID.NotFound", table_ids())
        else:
            associated = "subnet-0ffffffffffffffff" if foreign == ("table", "association") else None
            table = {
                "RouteTableId": IDS.public_route_table_id,
                "VpcId": vpc("table"),
                "Tags": part_tags("table"),
                "Associations": [
                    {
                        "Main": foreign == ("table", "main"),
                        "RouteTableAssociationId": ASSOCIATION,
                        "RouteTableId": IDS.public_route_table_id,
                        "SubnetId": associated or IDS.public_subnet_id,
                    }
                ],
                "Routes": [{"DestinationCidrBlock": DEFAULT_ROUTE, "GatewayId": "igw-x"}],
            }
            self.ok("describe_route_tables", table_ids(), {"RouteTables": [table]})
        if isolated is None:
            isolated = [
                isolated_table(
                    t,
                    vpc=OTHER_VPC if foreign == ("isolated", "vpc") and i == 1 else VPC,
                    default_to=IDS.nat_gateway_id if routed else None,
                )
                for i, t in enumerate(ISOLATED)
            ]
        self.isolated(*isolated)

    def opening(
        self,
        *,
        nat_state: str | None = "available",
        failure: str | None = None,
        isolated: Sequence[dict[str, Any]] | None = None,
        attached: Sequence[dict[str, Any]] = (),
    ) -> None:
        """The describes of one opening poll: the owner's tagged parts, all of this request
        (every part up to a NAT in ``nat_state``; none when it is None), the isolated route
        tables, the gateways attached to the VPC."""
        exists = nat_state is not None
        nat = nat_part(nat_state or "", Tags=ours())
        if failure is not None:
            nat |= {"FailureCode": "InsufficientFreeAddressesInSubnet", "FailureMessage": failure}
        gateway = {
            "InternetGatewayId": IDS.internet_gateway_id,
            "Attachments": [{"State": "available", "VpcId": VPC}],
            "Tags": ours(),
        }
        subnet = {"SubnetId": IDS.public_subnet_id, "VpcId": VPC, "Tags": ours()}
        table = {
            "RouteTableId": IDS.public_route_table_id,
            "VpcId": VPC,
            "Tags": ours(),
            "Associations": [
                {"RouteTableAssociationId": ASSOCIATION, "SubnetId": IDS.public_subnet_id}
            ],
            "Routes": [
                {"DestinationCidrBlock": DEFAULT_ROUTE, "GatewayId": IDS.internet_gateway_id}
            ],
        }
        address = {"AllocationId": IDS.allocation_id, "Tags": ours()}
        if exists:
            self.tagged(
                nat=[nat], address=[address], gateway=[gateway], subnet=[subnet], table=[table]
            )
        else:
            self.tagged()
        if isolated is None:
            isolated = [isolated_table(t) for t in ISOLATED]
        self.isolated(*isolated)
        attached_to = {"Filters": [{"Name": "attachment.vpc-id", "Values": [VPC]}]}
        ours_attached = [gateway] if exists else []
        response = {"InternetGateways": [*ours_attached, *attached]}
        self.ok("describe_internet_gateways", attached_to, response)

    def tagged(self, **found: Sequence[dict[str, Any]]) -> None:
        """The five describes that find the owner's parts by their tags: ``found`` maps nat,
        address, gateway, subnet, table to what each returns (default: nothing)."""
        calls = [
            ("describe_nat_gateways", IN_VPC, "NatGateways", "nat"),
            ("describe_addresses", BY_VPC_TAG, "Addresses", "address"),
            ("describe_internet_gateways", BY_OWNER, "InternetGateways", "gateway"),
            ("describe_subnets", IN_VPC, "Subnets", "subnet"),
            ("describe_route_tables", IN_VPC, "RouteTables", "table"),
        ]
        for method, filters, key, kind in calls:
            self.ok(method, {"Filters": filters}, {key: list(found.get(kind, ()))})

    # --- mutations -------------------------------------------------------------------------

    def routes_deleted(self) -> None:
        for table_id in ISOLATED:
            params = {"RouteTableId": table_id, "DestinationCidrBlock": DEFAULT_ROUTE}
            self.ok("delete_route", params, {})

    def nat_deleted(self, nat_id: str = IDS.nat_gateway_id) -> None:
        self.ok("delete_nat_gateway", {"NatGatewayId": nat_id}, {"NatGatewayId": nat_id})

    def rest_removed(self, skip: Sequence[str] = ()) -> None:
        """Everything after the NAT, in teardown order, each succeeding."""
        if "address" not in skip:
            self.ok("release_address", {"AllocationId": IDS.allocation_id}, {})
        if "table" not in skip:
            self.ok("disassociate_route_table", {"AssociationId": ASSOCIATION}, {})
            self.ok("delete_route_table", {"RouteTableId": IDS.public_route_table_id}, {})
        if "subnet" not in skip:
            self.ok("delete_subnet", {"SubnetId": IDS.public_subnet_id}, {})
        if "gateway" not in skip:
            self.ok("detach_internet_gateway", {**igw_id(), "VpcId": VPC}, {})
            self.ok("delete_internet_gateway", igw_id(), {})

    def nat_routes_added(self, tables: Sequence[str] = ISOLATED) -> None:
        for table_id in tables:
            params = {
                "RouteTableId": table_id,
                "DestinationCidrBlock": DEFAULT_ROUTE,
                "NatGatewayId": IDS.nat_gateway_id,
            }
            self.ok("create_route", params, {"Return": True})


def nat_ids() -> dict[str, Any]:
    return {"NatGatewayIds": [IDS.nat_gateway_id]}


def address_ids() -> dict[str, Any]:
    return {"AllocationIds": [IDS.allocation_id]}


def igw_ids() -> dict[str, Any]:
    return {"InternetGatewayIds": [IDS.internet_gateway_id]}


def igw_id() -> dict[str, Any]:
    return {"InternetGatewayId": IDS.internet_gateway_id}


def subnet_ids() -> dict[str, Any]:
    return {"SubnetIds": [IDS.public_subnet_id]}


def table_ids() -> dict[str, Any]:
    return {"RouteTableIds": [IDS.public_route_table_id]}


def egress_props(**overrides: Any) -> dict[str, Any]:
    return {
        "ServiceToken": "arn:aws:lambda:eu-west-1:111122223333:function:provider",
        contract.VPC_ID: VPC,
        contract.OWNER_TAG: OWNER,
        contract.PUBLIC_SUBNET_CIDR: CIDR,
        contract.AVAILABILITY_ZONE: AZ,
        contract.ROUTE_TABLE_IDS: list(ISOLATED),
        contract.GENERATION: "1",
        **overrides,
    }


def teardown_props(ids: EgressIds = IDS, **overrides: Any) -> dict[str, Any]:
    return {
        "ServiceToken": "arn:aws:lambda:eu-west-1:111122223333:function:provider",
        contract.VPC_ID: VPC,
        contract.OWNER_TAG: OWNER,
        contract.ROUTE_TABLE_IDS: list(ISOLATED),
        **ids.data(),
        **overrides,
    }


def event(
    resource_type: str,
    request_type: str,
    props: dict[str, Any],
    *,
    physical_id: str | None = None,
    old_props: dict[str, Any] | None = None,
    request_id: str = REQUEST,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "RequestType": request_type,
        "ResourceType": resource_type,
        "RequestId": request_id,
        "LogicalResourceId": "Egress",
        "StackId": "arn:aws:cloudformation:eu-west-1:111122223333:stack/dev-Network/1",
        "ResponseURL": "https://example.invalid/presigned",
        "ResourceProperties": props,
    }
    if physical_id is not None:
        result["PhysicalResourceId"] = physical_id
    if old_props is not None:
        result["OldResourceProperties"] = old_props
    return result


OPENING_ID = Opening(REQUEST).physical_id


@pytest.fixture(scope="module")
def ec2() -> EC2Client:
    # One client for the module: building it costs more than most tests here.
    return boto3.client(
        "ec2",
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def stub(ec2: EC2Client) -> Iterator[Script]:
    stubber = Stubber(ec2)
    with stubber:
        yield Script(stubber)


def assert_done(stub: Script) -> None:
    stub.stubber.assert_no_pending_responses()


def close(ec2: EC2Client) -> bool:
    """One teardown poll of the ids a physical id names."""
    return close_step(ec2, Target(SCOPE, named=IDS))


# --- closing -----------------------------------------------------------------------------------


def test_delete_waits_for_nat_deletion_over_polls_then_removes_the_rest(
    ec2: EC2Client, stub: Script
) -> None:
    stub.named(nat_state="available")
    stub.routes_deleted()
    stub.nat_deleted()
    for _ in range(2):
        stub.named(nat_state="deleting", routed=False)
    stub.named(nat_state="deleted", routed=False)
    stub.rest_removed()

    delete = event(EGRESS_RESOURCE_TYPE, "Delete", egress_props(), physical_id=IDS.physical_id)
    assert handle_on_event(ec2, delete) == {"PhysicalResourceId": IDS.physical_id}
    polls = [handle_is_complete(ec2, delete)["IsComplete"] for _ in range(4)]
    assert polls == [False, False, False, True]
    assert_done(stub)


def test_release_address_in_use_then_auth_failure_is_retried_until_it_succeeds(
    ec2: EC2Client, stub: Script
) -> None:
    release = {"AllocationId": IDS.allocation_id}
    stub.named(nat_state="deleted", routed=False)
    stub.error("release_address", "InvalidIPAddress.InUse", release)
    stub.named(nat_state="deleted", routed=False)
    stub.error("release_address", "AuthFailure", release)
    stub.named(nat_state="deleted", routed=False)
    stub.rest_removed()

    assert [close(ec2) for _ in range(3)] == [False, False, True]
    assert_done(stub)


def test_parts_still_in_use_are_retried_on_the_next_poll(ec2: EC2Client, stub: Script) -> None:
    stub.named(nat_state="deleted", routed=False)
    stub.ok("release_address", release(), {})
    stub.ok("disassociate_route_table", {"AssociationId": ASSOCIATION}, {})
    stub.ok("delete_route_table", {"RouteTableId": IDS.public_route_table_id}, {})
    stub.error("delete_subnet", "DependencyViolation", {"SubnetId": IDS.public_subnet_id})
    stub.named(nat_state="deleted", gone=["address", "table"], routed=False)
    stub.ok("delete_subnet", {"SubnetId": IDS.public_subnet_id}, {})
    stub.error("detach_internet_gateway", "DependencyViolation", {**igw_id(), "VpcId": VPC})
    stub.named(nat_state="deleted", gone=["address", "table", "subnet"], routed=False)
    stub.rest_removed(skip=["address", "table", "subnet"])

    assert [close(ec2) for _ in range(3)] == [False, False, True]
    assert_done(stub)


def release() -> dict[str, Any]:
    return {"AllocationId": IDS.allocation_id}


@pytest.mark.parametrize("gone", RESOURCES)
def test_a_resource_ec2_no_longer_knows_counts_as_removed(
    ec2: EC2Client, stub: Script, gone: str
) -> None:
    stub.named(nat_state="deleted", gone=[gone], routed=False)
    stub.rest_removed(skip=[gone])

    assert close(ec2) is True
    assert_done(stub)


def test_not_found_answers_to_the_mutating_calls_count_as_removed(
    ec2: EC2Client, stub: Script
) -> None:
    stub.named(nat_state="available", routed=True)
    for table_id in ISOLATED:
        params = {"RouteTableId": table_id, "DestinationCidrBlock": DEFAULT_ROUTE}
        stub.error("delete_route", "InvalidRoute.NotFound", params)
    stub.error(
        "delete_nat_gateway", "InvalidNatGatewayID.NotFound", {"NatGatewayId": IDS.nat_gateway_id}
    )
    stub.error("release_address", "InvalidAllocationID.NotFound", release())
    stub.error(
        "disassociate_route_table", "InvalidAssociationID.NotFound", {"AssociationId": ASSOCIATION}
    )
    stub.error(
        "delete_route_table",
        "InvalidRouteTableID.NotFound",
        {"RouteTableId": IDS.public_route_table_id},
    )
    stub.error("delete_subnet", "InvalidSubnetID.NotFound", {"SubnetId": IDS.public_subnet_id})
    stub.error("detach_internet_gateway", "Gateway.NotAttached", {**igw_id(), "VpcId": VPC})
    stub.error("delete_internet_gateway", "InvalidInternetGatewayID.NotFound", igw_id())

    assert close(ec2) is True
    assert_done(stub)


def test_delete_of_an_egress_already_torn_down_is_a_quick_no_op(
    ec2: EC2Client, stub: Script
) -> None:
    stub.named(gone=RESOURCES, routed=False)

    delete = event(EGRESS_RESOURCE_TYPE, "Delete", egress_props(), physical_id=IDS.physical_id)
    assert handle_on_event(ec2, delete) == {"PhysicalResourceId": IDS.physical_id}
    assert handle_is_complete(ec2, delete) == {"IsComplete": True}
    assert_done(stub)


def test_a_second_teardown_after_done_makes_no_mutating_call(ec2: EC2Client, stub: Script) -> None:
    stub.named(nat_state="deleted", routed=True)
    stub.routes_deleted()
    stub.rest_removed()
    # What EC2 shows afterwards: the deleted NAT stays listed for a while, the rest is gone.
    stub.named(nat_state="deleted", gone=RESOURCES[1:], routed=False)

    assert close(ec2) is True
    assert close(ec2) is True
    assert_done(stub)


def test_teardown_leaves_routes_to_other_targets_in_the_isolated_tables(
    ec2: EC2Client, stub: Script
) -> None:
    mine = isolated_table(ISOLATED[0], default_to=IDS.nat_gateway_id)
    theirs = isolated_table(ISOLATED[1], default_to="nat-0someoneelse0000")
    theirs["Routes"].append(
        {"DestinationCidrBlock": "192.168.0.0/16", "NatGatewayId": IDS.nat_gateway_id}
    )
    stub.named(nat_state="deleted", isolated=[mine, theirs])
    stub.ok(
        "delete_route", {"RouteTableId": ISOLATED[0], "DestinationCidrBlock": DEFAULT_ROUTE}, {}
    )
    stub.ok(
        "delete_route", {"RouteTableId": ISOLATED[1], "DestinationCidrBlock": "192.168.0.0/16"}, {}
    )
    stub.rest_removed()

    assert close(ec2) is True
    assert_done(stub)


@pytest.mark.parametrize(
    ("foreign", "message"),
    [
        (
            ("nat", "owner"),
            f"NAT gateway {IDS.nat_gateway_id} has {OWNER_TAG_KEY}='{FOREIGN_OWNER}'",
        ),
        (("nat", "untagged"), f"NAT gateway {IDS.nat_gateway_id} has no {OWNER_TAG_KEY} tag"),
        (("nat", "vpc"), f"NAT gateway {IDS.nat_gateway_id} is in VPC {OTHER_VPC}"),
        (("address", "owner"), f"Elastic IP {IDS.allocation_id} has {OWNER_TAG_KEY}="),
        (("address", "untagged"), f"Elastic IP {IDS.allocation_id} has no {OWNER_TAG_KEY}"),
        (("address", "vpc-tag"), f"Elastic IP {IDS.allocation_id} has {VPC_TAG_KEY}="),
        (("gateway", "owner"), f"internet gateway {IDS.internet_gateway_id} has {OWNER_TAG_KEY}="),
        (
            ("gateway", "vpc"),
            f"internet gateway {IDS.internet_gateway_id} attachment is in VPC {OTHER_VPC}",
        ),
        (("subnet", "owner"), f"subnet {IDS.public_subnet_id} has {OWNER_TAG_KEY}="),
        (("subnet", "vpc"), f"subnet {IDS.public_subnet_id} is in VPC {OTHER_VPC}"),
        (("table", "owner"), f"route table {IDS.public_route_table_id} has {OWNER_TAG_KEY}="),
        (("table", "vpc"), f"route table {IDS.public_route_table_id} is in VPC {OTHER_VPC}"),
        (("table", "association"), "is also associated with subnet-0ffffffffffffffff"),
        (("table", "main"), "is the main route table of its VPC"),
        (("isolated", "vpc"), f"route table {ISOLATED[1]} (RouteTableIds) is in VPC {OTHER_VPC}"),
    ],
)
def test_anything_not_ours_stops_the_teardown_before_any_mutating_call(
    ec2: EC2Client, stub: Script, foreign: tuple[str, str], message: str
) -> None:
    stub.named(nat_state="available", foreign=foreign)

    with pytest.raises(OwnershipError, match="nothing was changed") as raised:
        close(ec2)
    assert message in str(raised.value)
    assert_done(stub)


def test_the_teardown_also_removes_what_the_owner_tags_name(ec2: EC2Client, stub: Script) -> None:
    stray = {
        "InternetGatewayId": "igw-0deadbeefdeadbeef",
        "Attachments": [],
        "Tags": ours("a-request-that-died"),
    }
    # The tags find only a stray gateway; the named parts, described by id, are gone.
    stub.ok("describe_nat_gateways", {"Filters": IN_VPC}, {"NatGateways": []})
    stub.error("describe_nat_gateways", "NatGatewayNotFound", nat_ids())
    stub.ok("describe_addresses", {"Filters": BY_VPC_TAG}, {"Addresses": []})
    stub.error("describe_addresses", "InvalidAllocationID.NotFound", address_ids())
    stub.ok("describe_internet_gateways", {"Filters": BY_OWNER}, {"InternetGateways": [stray]})
    stub.error("describe_internet_gateways", "InvalidInternetGatewayID.NotFound", igw_ids())
    stub.ok("describe_subnets", {"Filters": IN_VPC}, {"Subnets": []})
    stub.error("describe_subnets", "InvalidSubnetID.NotFound", subnet_ids())
    stub.ok("describe_route_tables", {"Filters": IN_VPC}, {"RouteTables": []})
    stub.error("describe_route_tables", "InvalidRouteTableID.NotFound", table_ids())
    stub.isolated_routed_to(None)
    stub.ok("delete_internet_gateway", {"InternetGatewayId": "igw-0deadbeefdeadbeef"}, {})

    physical_id = f"teardown:{IDS.nat_gateway_id}"
    teardown = event(TEARDOWN_RESOURCE_TYPE, "Create", teardown_props())
    assert handle_on_event(ec2, teardown) == {"PhysicalResourceId": physical_id}
    assert handle_is_complete(ec2, {**teardown, "PhysicalResourceId": physical_id}) == {
        "IsComplete": True
    }
    assert_done(stub)


def test_parts_the_tags_found_are_not_described_again_by_id(ec2: EC2Client, stub: Script) -> None:
    # The named NAT carries the tags (EC2 lists it for a while after its deletion): the
    # named egress is one whose parts the tags find, here none is left but the NAT.
    stub.tagged(nat=[nat_part("deleted", Tags=ours())])
    stub.isolated_routed_to(None)

    assert close_step(ec2, Target(SCOPE, named=IDS, tagged=True)) is True
    assert_done(stub)


def test_teardown_update_keeps_its_physical_id(ec2: EC2Client, stub: Script) -> None:
    update = event(
        TEARDOWN_RESOURCE_TYPE,
        "Update",
        teardown_props(),
        physical_id="teardown:nat-0previous00000000",
        old_props=teardown_props(),
    )
    assert handle_on_event(ec2, update) == {"PhysicalResourceId": "teardown:nat-0previous00000000"}
    assert_done(stub)


def test_teardown_delete_makes_no_call(ec2: EC2Client, stub: Script) -> None:
    physical_id = f"teardown:{IDS.nat_gateway_id}"
    delete = event(TEARDOWN_RESOURCE_TYPE, "Delete", teardown_props(), physical_id=physical_id)

    assert handle_on_event(ec2, delete) == {"PhysicalResourceId": physical_id}
    assert handle_is_complete(ec2, delete) == {"IsComplete": True}
    assert_done(stub)


# --- opening -----------------------------------------------------------------------------------


def test_create_makes_no_change_before_its_physical_id_names_the_request(
    ec2: EC2Client, stub: Script
) -> None:
    stub.opening(nat_state=None)

    create = event(EGRESS_RESOURCE_TYPE, "Create", egress_props())
    assert handle_on_event(ec2, create) == {"PhysicalResourceId": OPENING_ID}
    assert_done(stub)


def test_is_complete_waits_while_the_nat_is_pending_then_routes_the_isolated_tables(
    ec2: EC2Client, stub: Script
) -> None:
    stub.opening(nat_state="pending")
    stub.opening(nat_state="available")
    stub.nat_routes_added()

    create = event(EGRESS_RESOURCE_TYPE, "Create", egress_props(), physical_id=OPENING_ID)
    assert handle_is_complete(ec2, create) == {"IsComplete": False}
    assert handle_is_complete(ec2, create) == {
        "IsComplete": True,
        "PhysicalResourceId": IDS.physical_id,
        "Data": {
            "NatGatewayId": IDS.nat_gateway_id,
            "AllocationId": IDS.allocation_id,
            "InternetGatewayId": IDS.internet_gateway_id,
            "PublicSubnetId": IDS.public_subnet_id,
            "PublicRouteTableId": IDS.public_route_table_id,
        },
    }
    assert_done(stub)


def test_is_complete_skips_a_route_that_already_points_at_our_nat(
    ec2: EC2Client, stub: Script
) -> None:
    routed = isolated_table(ISOLATED[0], default_to=IDS.nat_gateway_id)
    stub.opening(isolated=[routed, isolated_table(ISOLATED[1])])
    stub.nat_routes_added(tables=ISOLATED[1:])

    create = event(EGRESS_RESOURCE_TYPE, "Create", egress_props(), physical_id=OPENING_ID)
    assert handle_is_complete(ec2, create)["IsComplete"] is True
    assert_done(stub)


def test_a_failed_nat_fails_the_create_and_leaves_the_cleanup_to_the_delete(
    ec2: EC2Client, stub: Script
) -> None:
    failure = "Subnet has insufficient free addresses to create this NAT gateway"
    stub.opening(nat_state="failed", failure=failure)

    create = event(EGRESS_RESOURCE_TYPE, "Create", egress_props(), physical_id=OPENING_ID)
    with pytest.raises(EgressError, match=f"InsufficientFreeAddressesInSubnet\\): {failure}"):
        handle_is_complete(ec2, create)
    assert_done(stub)


def test_a_default_route_elsewhere_fails_create_before_anything_is_created(
    ec2: EC2Client, stub: Script
) -> None:
    stub.opening(
        nat_state=None,
        isolated=[isolated_table(ISOLATED[0]), isolated_table(ISOLATED[1], default_to="igw-0oth")],
    )

    with pytest.raises(EgressError, match="nothing was created") as raised:
        handle_on_event(ec2, event(EGRESS_RESOURCE_TYPE, "Create", egress_props()))
    assert f"route table {ISOLATED[1]} already routes {DEFAULT_ROUTE} to igw-0oth" in str(
        raised.value
    )
    assert_done(stub)


def test_a_vpc_with_an_internet_gateway_already_fails_create_before_anything_is_created(
    ec2: EC2Client, stub: Script
) -> None:
    theirs = {"InternetGatewayId": "igw-0someoneelse", "Tags": tags(FOREIGN_OWNER)}
    stub.opening(nat_state=None, attached=[theirs])

    with pytest.raises(EgressError, match=f"{VPC} already has internet gateway igw-0someoneelse"):
        handle_on_event(ec2, event(EGRESS_RESOURCE_TYPE, "Create", egress_props()))
    assert_done(stub)


def test_a_default_route_appearing_while_the_nat_starts_fails_create_without_a_change(
    ec2: EC2Client, stub: Script
) -> None:
    elsewhere = [isolated_table(ISOLATED[0]), isolated_table(ISOLATED[1], default_to="igw-0oth")]
    stub.opening(nat_state="pending", isolated=elsewhere)

    create = event(EGRESS_RESOURCE_TYPE, "Create", egress_props(), physical_id=OPENING_ID)
    with pytest.raises(EgressError, match=f"route table {ISOLATED[1]} already routes"):
        handle_is_complete(ec2, create)
    assert_done(stub)


# --- updates -----------------------------------------------------------------------------------


def test_update_without_a_new_generation_keeps_the_egress_and_calls_nothing(
    ec2: EC2Client, stub: Script
) -> None:
    update = event(
        EGRESS_RESOURCE_TYPE,
        "Update",
        egress_props(ServiceToken="arn:aws:lambda:eu-west-1:111122223333:function:newer"),
        physical_id=IDS.physical_id,
        # Listing the same tables in another order is not a change either.
        old_props=egress_props(RouteTableIds=list(reversed(ISOLATED))),
    )

    assert handle_on_event(ec2, update) == {
        "PhysicalResourceId": IDS.physical_id,
        "Data": IDS.data(),
    }
    assert handle_is_complete(ec2, update) == {"IsComplete": True, "Data": IDS.data()}
    assert_done(stub)


def test_a_re_open_starts_without_a_change(ec2: EC2Client, stub: Script) -> None:
    update = event(
        EGRESS_RESOURCE_TYPE,
        "Update",
        egress_props(Generation="2"),
        physical_id=IDS.physical_id,
        old_props=egress_props(),
    )
    assert handle_on_event(ec2, update) == {"PhysicalResourceId": IDS.physical_id}
    assert_done(stub)


def test_an_egress_that_never_opened_cannot_be_updated(ec2: EC2Client, stub: Script) -> None:
    update = event(
        EGRESS_RESOURCE_TYPE,
        "Update",
        egress_props(Generation="2"),
        physical_id=OPENING_ID,
        old_props=egress_props(),
    )
    with pytest.raises(EgressError, match="never opened"):
        handle_on_event(ec2, update)
    assert_done(stub)


# --- the event contract ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"VpcId": ""}, "VpcId must be a non-empty string"),
        ({"RouteTableIds": "rtb-1"}, "RouteTableIds must be a list of route table ids"),
        ({"PublicSubnetCidr": None}, "PublicSubnetCidr must be a non-empty string"),
        ({"Generation": 2}, "Generation must be a string"),
    ],
)
def test_invalid_egress_properties_are_refused_without_any_call(
    ec2: EC2Client, stub: Script, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(EgressError, match=message):
        handle_on_event(ec2, event(EGRESS_RESOURCE_TYPE, "Create", egress_props(**changes)))
    assert_done(stub)


def test_teardown_properties_must_carry_the_egress_ids(ec2: EC2Client, stub: Script) -> None:
    props = teardown_props(NatGatewayId="igw-0wrongkind", AllocationId="")
    with pytest.raises(EgressError, match="NatGatewayId must start with 'nat-'") as raised:
        handle_on_event(ec2, event(TEARDOWN_RESOURCE_TYPE, "Create", props))
    assert "AllocationId must be a non-empty string" in str(raised.value)
    assert_done(stub)


@pytest.mark.parametrize("physical_id", ["egress:nat-1", "egress-opening:", "something"])
def test_an_unknown_physical_id_is_refused(ec2: EC2Client, stub: Script, physical_id: str) -> None:
    delete = event(EGRESS_RESOURCE_TYPE, "Delete", egress_props(), physical_id=physical_id)
    with pytest.raises(EgressError, match="is not a physical id of Custom::TemporaryEgress"):
        handle_on_event(ec2, delete)
    assert_done(stub)


def test_an_unknown_resource_type_is_refused(ec2: EC2Client, stub: Script) -> None:
    with pytest.raises(EgressError, match="unsupported ResourceType 'Custom::Other'"):
        handle_on_event(ec2, event("Custom::Other", "Create", egress_props()))
    assert_done(stub)


def test_physical_ids_round_trip() -> None:
    assert parse_egress_physical_id(IDS.physical_id) == IDS
    assert IDS.physical_id.startswith(f"egress:{IDS.nat_gateway_id}:")
    assert parse_egress_physical_id(OPENING_ID) == Opening(REQUEST)


def test_the_construct_takes_its_names_from_the_handlers_contract() -> None:
    assert temporary_egress.OWNER_TAG_KEY is contract.OWNER_TAG_KEY
    assert temporary_egress.EGRESS_ATTRIBUTES is contract.DATA_KEYS
    assert set(contract.DATA_KEYS) == set(IDS.data())


def test_lambda_entry_points_hand_the_module_client_to_the_handlers(
    ec2: EC2Client, stub: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    from traced_fargate.temporary_egress.handler import index

    monkeypatch.setattr(dispatch, "client", lambda: ec2)
    update = event(
        EGRESS_RESOURCE_TYPE,
        "Update",
        egress_props(),
        physical_id=IDS.physical_id,
        old_props=egress_props(),
    )
    assert index.on_event(update, None)["PhysicalResourceId"] == IDS.physical_id
    assert index.is_complete(update, None)["IsComplete"] is True
    assert_done(stub)


def test_the_default_client_is_made_once_for_the_lambda_region() -> None:
    dispatch.client.cache_clear()
    try:
        client = dispatch.client()
        assert client.meta.region_name == REGION
        assert dispatch.client() is client
    finally:
        dispatch.client.cache_clear()


# --- the function's code -----------------------------------------------------------------------

_AS_LAMBDA = """
import sys
# The construct's side: the contract imports without the handler's dependencies.
sys.path.insert(0, sys.argv[1])
from handler.index import contract
assert contract.EGRESS_RESOURCE_TYPE == "Custom::TemporaryEgress"
assert not {"boto3", "botocore"} & set(sys.modules), sorted(sys.modules)
# Lambda's side: the asset folder is the code root and the handler is index.on_event; the
# runtime has boto3, not its type stubs.
sys.modules["mypy_boto3_ec2"] = None
sys.path.insert(0, sys.argv[2])
import index
for name in ("on_event", "is_complete"):
    try:
        getattr(index, name)({"ResourceType": "Custom::Other", "RequestType": "Create"}, None)
    except Exception as error:
        assert "unsupported ResourceType" in str(error), error
print(index.__file__)
"""


def test_the_asset_folder_runs_as_the_lambda_handler_index_on_event() -> None:
    assert run_as_lambda(_AS_LAMBDA, HANDLER_DIR) == str(HANDLER_DIR / "index" / "__init__.py")


def test_bytecode_in_the_handler_folder_leaves_the_asset_hash_alone(tmp_path: Path) -> None:
    import shutil

    from aws_cdk import FileSystem

    code = tmp_path / "handler"
    shutil.copytree(HANDLER_DIR, code, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    exclude = list(HANDLER_EXCLUDE)
    clean = FileSystem.fingerprint(str(code), exclude=exclude)
    for folder in (code, code / "index"):
        (folder / "__pycache__").mkdir()
        (folder / "__pycache__" / "contract.cpython-314.pyc").write_bytes(b"\0")
    (code / "index" / "stray.pyc").write_bytes(b"\0")
    assert FileSystem.fingerprint(str(code), exclude=exclude) == clean
