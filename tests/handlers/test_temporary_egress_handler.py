"""The TemporaryEgress custom-resource handler, against botocore's Stubber and against moto.

Each Stubber test scripts the exact EC2 calls it expects, in order; any other call fails the
test. The ownership tests queue describe responses only, so a mutating call cannot slip by.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from traced_fargate.temporary_egress.handler import index as handler
from traced_fargate.temporary_egress.handler.index import (
    DEFAULT_ROUTE,
    EGRESS_RESOURCE_TYPE,
    OWNER_TAG_KEY,
    PARTS_TAG_KEY,
    REQUEST_TAG_KEY,
    TEARDOWN_RESOURCE_TYPE,
    EgressError,
    EgressIds,
    OwnershipError,
    Scope,
    handle_is_complete,
    handle_on_event,
    teardown_step,
)

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import FilterTypeDef

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
NEW_IDS = EgressIds(
    nat_gateway_id="nat-01111111111111111",
    allocation_id="eipalloc-02222222222222222",
    internet_gateway_id="igw-03333333333333333",
    public_subnet_id="subnet-04444444444444444",
    public_route_table_id="rtb-05555555555555555",
)
SCOPE = Scope(vpc_id=VPC, owner_tag=OWNER, route_table_ids=ISOLATED)
RESOURCES = ("nat", "address", "gateway", "subnet", "table")


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


def tags(owner: str | None = OWNER, *extra: tuple[str, str]) -> list[dict[str, str]]:
    pairs = [(OWNER_TAG_KEY, owner)] if owner is not None else []
    return [{"Key": k, "Value": v} for k, v in [*pairs, *extra]]


def tag_specification(
    resource_type: str, name: str, request: str = REQUEST, *extra: tuple[str, str]
) -> list[dict[str, Any]]:
    return [
        {
            "ResourceType": resource_type,
            "Tags": [
                {"Key": "Name", "Value": f"{OWNER}/{name}"},
                {"Key": OWNER_TAG_KEY, "Value": OWNER},
                {"Key": REQUEST_TAG_KEY, "Value": request},
                *({"Key": k, "Value": v} for k, v in extra),
            ],
        }
    ]


def isolated_table(table_id: str, vpc: str = VPC, default_to: str | None = None) -> dict[str, Any]:
    routes: list[dict[str, Any]] = [
        {"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local", "State": "active"}
    ]
    if default_to is not None:
        key = "NatGatewayId" if default_to.startswith("nat-") else "GatewayId"
        routes.append({"DestinationCidrBlock": DEFAULT_ROUTE, key: default_to, "State": "active"})
    return {"RouteTableId": table_id, "VpcId": vpc, "Routes": routes}


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

    def nat(
        self,
        state: str,
        *,
        ids: EgressIds = IDS,
        owner: str | None = OWNER,
        vpc: str = VPC,
        failure: str | None = None,
    ) -> None:
        nat: dict[str, Any] = {
            "NatGatewayId": ids.nat_gateway_id,
            "State": state,
            "VpcId": vpc,
            "SubnetId": ids.public_subnet_id,
            "NatGatewayAddresses": [{"AllocationId": ids.allocation_id}],
            "Tags": tags(owner),
        }
        if failure is not None:
            nat |= {"FailureCode": "InsufficientFreeAddressesInSubnet", "FailureMessage": failure}
        params = {"NatGatewayIds": [ids.nat_gateway_id]}
        self.ok("describe_nat_gateways", params, {"NatGateways": [nat]})

    def isolated(self, *tables: dict[str, Any]) -> None:
        params = {"Filters": [{"Name": "route-table-id", "Values": list(ISOLATED)}]}
        self.ok("describe_route_tables", params, {"RouteTables": list(tables)})

    def isolated_routed_to(self, target: str | None) -> None:
        self.isolated(*(isolated_table(t, default_to=target) for t in ISOLATED))

    def egress(
        self,
        *,
        nat_state: str = "available",
        gone: Sequence[str] = (),
        foreign: tuple[str, str] | None = None,
        routed: bool = True,
        failure: str | None = None,
        isolated: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        """The six describes of the ownership check.

        ``gone`` lists resources EC2 no longer knows; ``foreign`` = (resource, "owner" |
        "untagged" | "vpc") makes one resource someone else's; ``isolated`` replaces the
        isolated route tables, which otherwise route to our NAT when ``routed``.
        """

        def owner(resource: str) -> str | None:
            if foreign == (resource, "untagged"):
                return None
            return FOREIGN_OWNER if foreign == (resource, "owner") else OWNER

        def vpc(resource: str) -> str:
            return OTHER_VPC if foreign == (resource, "vpc") else VPC

        if "nat" in gone:
            self.error("describe_nat_gateways", "NatGatewayNotFound", nat_ids())
        else:
            self.nat(nat_state, owner=owner("nat"), vpc=vpc("nat"), failure=failure)
        if "address" in gone:
            self.error("describe_addresses", "InvalidAllocationID.NotFound", address_ids())
        else:
            address = {
                "AllocationId": IDS.allocation_id,
                "Domain": "vpc",
                "PublicIp": "203.0.113.10",
                "Tags": tags(owner("address")),
            }
            self.ok("describe_addresses", address_ids(), {"Addresses": [address]})
        if "gateway" in gone:
            self.error("describe_internet_gateways", "InvalidInternetGatewayID.NotFound", igw_ids())
        else:
            gateway = {
                "InternetGatewayId": IDS.internet_gateway_id,
                "Attachments": [{"State": "available", "VpcId": vpc("gateway")}],
                "Tags": tags(owner("gateway")),
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
                "Tags": tags(owner("subnet")),
            }
            self.ok("describe_subnets", subnet_ids(), {"Subnets": [subnet]})
        if "table" in gone:
            self.error("describe_route_tables", "InvalidRouteTableID.NotFound", table_ids())
        else:
            associated = "subnet-0ffffffffffffffff" if foreign == ("table", "association") else None
            table = {
                "RouteTableId": IDS.public_route_table_id,
                "VpcId": vpc("table"),
                "Tags": tags(owner("table")),
                "Associations": [
                    {
                        "Main": False,
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

    def opened(self, ids: EgressIds = IDS, request: str = REQUEST) -> None:
        """The preflight describes and the creates of a successful open."""
        self.isolated_routed_to(None)
        attached = {"Filters": [{"Name": "attachment.vpc-id", "Values": [VPC]}]}
        self.ok("describe_internet_gateways", attached, {"InternetGateways": []})
        self.created_until_nat(ids, request)
        parts = ":".join(ids.as_tuple()[1:])
        self.ok(
            "create_nat_gateway",
            {
                "SubnetId": ids.public_subnet_id,
                "AllocationId": ids.allocation_id,
                "ConnectivityType": "public",
                "ClientToken": request,
                "TagSpecifications": tag_specification(
                    "natgateway", "nat", request, (PARTS_TAG_KEY, parts)
                ),
            },
            {
                "NatGateway": {
                    "NatGatewayId": ids.nat_gateway_id,
                    "State": "pending",
                    "SubnetId": ids.public_subnet_id,
                    "VpcId": VPC,
                }
            },
        )

    def created_until_nat(self, ids: EgressIds = IDS, request: str = REQUEST) -> None:
        igw = {"InternetGatewayId": ids.internet_gateway_id}
        self.ok(
            "create_internet_gateway",
            {"TagSpecifications": tag_specification("internet-gateway", "igw", request)},
            {"InternetGateway": igw},
        )
        self.ok("attach_internet_gateway", {**igw, "VpcId": VPC}, {})
        self.ok(
            "create_subnet",
            {
                "VpcId": VPC,
                "CidrBlock": CIDR,
                "AvailabilityZone": AZ,
                "TagSpecifications": tag_specification("subnet", "public-subnet", request),
            },
            {"Subnet": {"SubnetId": ids.public_subnet_id, "VpcId": VPC}},
        )
        self.ok(
            "create_route_table",
            {
                "VpcId": VPC,
                "TagSpecifications": tag_specification("route-table", "public", request),
            },
            {"RouteTable": {"RouteTableId": ids.public_route_table_id, "VpcId": VPC}},
        )
        self.ok(
            "create_route",
            {
                "RouteTableId": ids.public_route_table_id,
                "DestinationCidrBlock": DEFAULT_ROUTE,
                "GatewayId": ids.internet_gateway_id,
            },
            {"Return": True},
        )
        self.ok(
            "associate_route_table",
            {"RouteTableId": ids.public_route_table_id, "SubnetId": ids.public_subnet_id},
            {"AssociationId": ASSOCIATION},
        )
        self.ok(
            "allocate_address",
            {"Domain": "vpc", "TagSpecifications": tag_specification("elastic-ip", "eip", request)},
            {"AllocationId": ids.allocation_id, "PublicIp": "203.0.113.10", "Domain": "vpc"},
        )

    def nat_routes_added(self, nat_id: str = IDS.nat_gateway_id) -> None:
        for table_id in ISOLATED:
            params = {
                "RouteTableId": table_id,
                "DestinationCidrBlock": DEFAULT_ROUTE,
                "NatGatewayId": nat_id,
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
        "VpcId": VPC,
        "OwnerTag": OWNER,
        "PublicSubnetCidr": CIDR,
        "AvailabilityZone": AZ,
        "RouteTableIds": list(ISOLATED),
        "Generation": "1",
        **overrides,
    }


def teardown_props(ids: EgressIds = IDS, **overrides: Any) -> dict[str, Any]:
    return {
        "ServiceToken": "arn:aws:lambda:eu-west-1:111122223333:function:provider",
        "VpcId": VPC,
        "OwnerTag": OWNER,
        "RouteTableIds": list(ISOLATED),
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


# --- teardown ----------------------------------------------------------------------------------


def test_teardown_waits_for_nat_deletion_over_polls_then_removes_the_rest(
    ec2: EC2Client, stub: Script
) -> None:
    stub.egress(nat_state="available")
    stub.routes_deleted()
    stub.nat_deleted()
    for _ in range(2):
        stub.egress(nat_state="deleting", routed=False)
    stub.egress(nat_state="deleted", routed=False)
    stub.rest_removed()

    create = event(TEARDOWN_RESOURCE_TYPE, "Create", teardown_props())
    assert handle_on_event(ec2, create) == {"PhysicalResourceId": f"teardown:{IDS.nat_gateway_id}"}
    polled = {**create, "PhysicalResourceId": f"teardown:{IDS.nat_gateway_id}"}
    assert [handle_is_complete(ec2, polled)["IsComplete"] for _ in range(3)] == [
        False,
        False,
        True,
    ]
    assert_done(stub)


def test_release_address_in_use_then_auth_failure_is_retried_until_it_succeeds(
    ec2: EC2Client, stub: Script
) -> None:
    release = {"AllocationId": IDS.allocation_id}
    stub.egress(nat_state="deleted", routed=False)
    stub.error("release_address", "InvalidIPAddress.InUse", release)
    stub.egress(nat_state="deleted", routed=False)
    stub.error("release_address", "AuthFailure", release)
    stub.egress(nat_state="deleted", routed=False)
    stub.rest_removed()

    assert [teardown_step(ec2, SCOPE, IDS) for _ in range(3)] == [False, False, True]
    assert_done(stub)


@pytest.mark.parametrize("gone", RESOURCES)
def test_a_resource_ec2_no_longer_knows_counts_as_removed(
    ec2: EC2Client, stub: Script, gone: str
) -> None:
    stub.egress(nat_state="deleted", gone=[gone], routed=False)
    stub.rest_removed(skip=[gone])

    assert teardown_step(ec2, SCOPE, IDS) is True
    assert_done(stub)


def test_not_found_answers_to_the_mutating_calls_count_as_removed(
    ec2: EC2Client, stub: Script
) -> None:
    stub.egress(nat_state="available", routed=True)
    for table_id in ISOLATED:
        params = {"RouteTableId": table_id, "DestinationCidrBlock": DEFAULT_ROUTE}
        stub.error("delete_route", "InvalidRoute.NotFound", params)
    stub.error(
        "delete_nat_gateway", "InvalidNatGatewayID.NotFound", {"NatGatewayId": IDS.nat_gateway_id}
    )
    stub.error(
        "release_address", "InvalidAllocationID.NotFound", {"AllocationId": IDS.allocation_id}
    )
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

    assert teardown_step(ec2, SCOPE, IDS) is True
    assert_done(stub)


def test_delete_of_an_egress_already_torn_down_is_a_quick_no_op(
    ec2: EC2Client, stub: Script
) -> None:
    for _ in range(2):
        stub.egress(gone=RESOURCES, routed=False)

    delete = event(EGRESS_RESOURCE_TYPE, "Delete", egress_props(), physical_id=IDS.physical_id)
    assert handle_on_event(ec2, delete) == {"PhysicalResourceId": IDS.physical_id}
    assert handle_is_complete(ec2, delete) == {"IsComplete": True}
    assert_done(stub)


def test_a_second_teardown_after_done_makes_no_mutating_call(ec2: EC2Client, stub: Script) -> None:
    stub.egress(nat_state="deleted", routed=True)
    stub.routes_deleted()
    stub.rest_removed()
    # What EC2 shows afterwards: the deleted NAT stays listed for a while, the rest is gone.
    stub.egress(nat_state="deleted", gone=RESOURCES[1:], routed=False)

    assert teardown_step(ec2, SCOPE, IDS) is True
    assert teardown_step(ec2, SCOPE, IDS) is True
    assert_done(stub)


def test_teardown_leaves_routes_to_other_targets_in_the_isolated_tables(
    ec2: EC2Client, stub: Script
) -> None:
    ours = isolated_table(ISOLATED[0], default_to=IDS.nat_gateway_id)
    theirs = isolated_table(ISOLATED[1], default_to="nat-0someoneelse0000")
    theirs["Routes"].append(
        {"DestinationCidrBlock": "192.168.0.0/16", "NatGatewayId": IDS.nat_gateway_id}
    )
    stub.egress(nat_state="deleted", isolated=[ours, theirs])
    stub.ok(
        "delete_route", {"RouteTableId": ISOLATED[0], "DestinationCidrBlock": DEFAULT_ROUTE}, {}
    )
    stub.ok(
        "delete_route", {"RouteTableId": ISOLATED[1], "DestinationCidrBlock": "192.168.0.0/16"}, {}
    )
    stub.rest_removed()

    assert teardown_step(ec2, SCOPE, IDS) is True
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
        (("isolated", "vpc"), f"route table {ISOLATED[1]} (RouteTableIds) is in VPC {OTHER_VPC}"),
    ],
)
def test_anything_not_ours_stops_the_teardown_before_any_mutating_call(
    ec2: EC2Client, stub: Script, foreign: tuple[str, str], message: str
) -> None:
    stub.egress(nat_state="available", foreign=foreign)

    with pytest.raises(OwnershipError, match="nothing was changed") as raised:
        teardown_step(ec2, SCOPE, IDS)
    assert message in str(raised.value)
    assert_done(stub)


def test_teardown_update_keeps_its_physical_id(ec2: EC2Client, stub: Script) -> None:
    for _ in range(2):
        stub.egress(gone=RESOURCES, routed=False)
    update = event(
        TEARDOWN_RESOURCE_TYPE,
        "Update",
        teardown_props(),
        physical_id="teardown:nat-0previous00000000",
        old_props=teardown_props(NEW_IDS),
    )

    assert handle_on_event(ec2, update) == {"PhysicalResourceId": "teardown:nat-0previous00000000"}
    assert handle_is_complete(ec2, update) == {"IsComplete": True}
    assert_done(stub)


def test_teardown_delete_makes_no_call(ec2: EC2Client, stub: Script) -> None:
    physical_id = f"teardown:{IDS.nat_gateway_id}"
    delete = event(TEARDOWN_RESOURCE_TYPE, "Delete", teardown_props(), physical_id=physical_id)

    assert handle_on_event(ec2, delete) == {"PhysicalResourceId": physical_id}
    assert handle_is_complete(ec2, delete) == {"IsComplete": True}
    assert_done(stub)


# --- opening -----------------------------------------------------------------------------------


def test_create_opens_the_egress_then_routes_the_isolated_tables_once_the_nat_is_up(
    ec2: EC2Client, stub: Script
) -> None:
    stub.opened()
    stub.nat("pending")
    stub.isolated_routed_to(None)
    stub.nat("available")
    stub.isolated_routed_to(None)
    stub.nat_routes_added()

    create = event(EGRESS_RESOURCE_TYPE, "Create", egress_props())
    response = handle_on_event(ec2, create)
    assert response == {"PhysicalResourceId": IDS.physical_id, "Data": IDS.data()}
    polled = {**create, **response}
    assert handle_is_complete(ec2, polled) == {"IsComplete": False}
    assert handle_is_complete(ec2, polled) == {
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
    stub.nat("available")
    stub.isolated(
        isolated_table(ISOLATED[0], default_to=IDS.nat_gateway_id), isolated_table(ISOLATED[1])
    )
    params = {
        "RouteTableId": ISOLATED[1],
        "DestinationCidrBlock": DEFAULT_ROUTE,
        "NatGatewayId": IDS.nat_gateway_id,
    }
    stub.ok("create_route", params, {"Return": True})

    create = event(EGRESS_RESOURCE_TYPE, "Create", egress_props(), physical_id=IDS.physical_id)
    assert handle_is_complete(ec2, create)["IsComplete"] is True
    assert_done(stub)


def test_create_failing_halfway_removes_what_it_created_and_re_raises(
    ec2: EC2Client, stub: Script
) -> None:
    stub.isolated_routed_to(None)
    attached = {"Filters": [{"Name": "attachment.vpc-id", "Values": [VPC]}]}
    stub.ok("describe_internet_gateways", attached, {"InternetGateways": []})
    stub.created_until_nat()
    stub.stubber.add_client_error(
        "create_nat_gateway", service_error_code="NatGatewayLimitExceeded", http_status_code=400
    )
    stub.rest_removed()

    with pytest.raises(ClientError, match="NatGatewayLimitExceeded"):
        handle_on_event(ec2, event(EGRESS_RESOURCE_TYPE, "Create", egress_props()))
    assert_done(stub)


def test_create_failing_at_the_first_attach_deletes_only_the_gateway(
    ec2: EC2Client, stub: Script
) -> None:
    stub.isolated_routed_to(None)
    attached = {"Filters": [{"Name": "attachment.vpc-id", "Values": [VPC]}]}
    stub.ok("describe_internet_gateways", attached, {"InternetGateways": []})
    specs = tag_specification("internet-gateway", "igw")
    stub.ok(
        "create_internet_gateway",
        {"TagSpecifications": specs},
        {"InternetGateway": {"InternetGatewayId": IDS.internet_gateway_id}},
    )
    stub.error("attach_internet_gateway", "InvalidVpcID.NotFound", {**igw_id(), "VpcId": VPC})
    stub.ok("delete_internet_gateway", igw_id(), {})

    with pytest.raises(ClientError, match=r"InvalidVpcID\.NotFound"):
        handle_on_event(ec2, event(EGRESS_RESOURCE_TYPE, "Create", egress_props()))
    assert_done(stub)


def test_a_failed_nat_is_cleaned_up_over_polls_then_create_fails_with_its_message(
    ec2: EC2Client, stub: Script
) -> None:
    failure = "Subnet has insufficient free addresses to create this NAT gateway"
    stub.nat("failed", failure=failure)
    stub.isolated_routed_to(None)
    stub.egress(nat_state="failed", failure=failure, routed=False)
    stub.nat_deleted()
    stub.nat("deleted", failure=failure)
    stub.isolated_routed_to(None)
    stub.egress(nat_state="deleted", failure=failure, routed=False)
    stub.rest_removed()

    create = event(EGRESS_RESOURCE_TYPE, "Create", egress_props(), physical_id=IDS.physical_id)
    assert handle_is_complete(ec2, create) == {"IsComplete": False}
    with pytest.raises(EgressError, match="Everything it created has been removed") as raised:
        handle_is_complete(ec2, create)
    assert f"InsufficientFreeAddressesInSubnet): {failure}" in str(raised.value)
    assert_done(stub)


def test_a_default_route_elsewhere_fails_create_before_anything_is_created(
    ec2: EC2Client, stub: Script
) -> None:
    stub.isolated(isolated_table(ISOLATED[0]), isolated_table(ISOLATED[1], default_to="igw-0other"))
    attached = {"Filters": [{"Name": "attachment.vpc-id", "Values": [VPC]}]}
    stub.ok("describe_internet_gateways", attached, {"InternetGateways": []})

    with pytest.raises(EgressError, match="nothing was created") as raised:
        handle_on_event(ec2, event(EGRESS_RESOURCE_TYPE, "Create", egress_props()))
    assert f"route table {ISOLATED[1]} already routes {DEFAULT_ROUTE} to igw-0other" in str(
        raised.value
    )
    assert_done(stub)


def test_a_vpc_with_an_internet_gateway_already_fails_create_before_anything_is_created(
    ec2: EC2Client, stub: Script
) -> None:
    stub.isolated_routed_to(None)
    attached = {"Filters": [{"Name": "attachment.vpc-id", "Values": [VPC]}]}
    gateway = {"InternetGatewayId": "igw-0someoneelse", "Tags": tags(FOREIGN_OWNER)}
    stub.ok("describe_internet_gateways", attached, {"InternetGateways": [gateway]})

    with pytest.raises(EgressError, match=f"{VPC} already has internet gateway igw-0someoneelse"):
        handle_on_event(ec2, event(EGRESS_RESOURCE_TYPE, "Create", egress_props()))
    assert_done(stub)


def test_a_default_route_appearing_while_the_nat_starts_fails_create_after_cleanup(
    ec2: EC2Client, stub: Script
) -> None:
    elsewhere = (isolated_table(ISOLATED[0]), isolated_table(ISOLATED[1], default_to="igw-0other"))
    stub.nat("available")
    stub.isolated(*elsewhere)
    stub.egress(nat_state="available", isolated=elsewhere)
    stub.nat_deleted()
    stub.nat("deleted")
    stub.isolated(*elsewhere)
    stub.egress(nat_state="deleted", isolated=elsewhere)
    stub.rest_removed()

    create = event(EGRESS_RESOURCE_TYPE, "Create", egress_props(), physical_id=IDS.physical_id)
    assert handle_is_complete(ec2, create) == {"IsComplete": False}
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


def test_a_new_generation_closes_the_old_egress_then_opens_a_new_one(
    ec2: EC2Client, stub: Script
) -> None:
    reopen = "0b9e5d3c-3c4e-4c1c-8d0e-5a6f7b8c9d0e"
    new_nat = {
        "Filters": [
            {"Name": "vpc-id", "Values": [VPC]},
            {"Name": f"tag:{REQUEST_TAG_KEY}", "Values": [reopen]},
        ]
    }
    # on_event: the old egress is still open, so its teardown starts.
    stub.egress(nat_state="available")
    stub.routes_deleted()
    stub.nat_deleted()
    # Poll 1: the old NAT is still being deleted.
    stub.egress(nat_state="deleting", routed=False)
    # Poll 2: the old egress goes away; the new one is created.
    stub.egress(nat_state="deleted", routed=False)
    stub.rest_removed()
    stub.ok("describe_nat_gateways", new_nat, {"NatGateways": []})
    stub.opened(NEW_IDS, reopen)
    # Poll 3: the new NAT is found through its request tag and is available.
    stub.egress(nat_state="deleted", gone=RESOURCES[1:], routed=False)
    parts = ":".join(NEW_IDS.as_tuple()[1:])
    found = {
        "NatGatewayId": NEW_IDS.nat_gateway_id,
        "State": "pending",
        "Tags": tags(OWNER, (REQUEST_TAG_KEY, reopen), (PARTS_TAG_KEY, parts)),
    }
    stub.ok("describe_nat_gateways", new_nat, {"NatGateways": [found]})
    stub.nat("available", ids=NEW_IDS)
    stub.isolated_routed_to(None)
    stub.nat_routes_added(NEW_IDS.nat_gateway_id)

    update = event(
        EGRESS_RESOURCE_TYPE,
        "Update",
        egress_props(Generation="2"),
        physical_id=IDS.physical_id,
        old_props=egress_props(Generation="1"),
        request_id=reopen,
    )
    response = handle_on_event(ec2, update)
    assert response == {"PhysicalResourceId": IDS.physical_id}
    polled = {**update, **response}
    assert handle_is_complete(ec2, polled) == {"IsComplete": False}
    assert handle_is_complete(ec2, polled) == {"IsComplete": False}
    assert handle_is_complete(ec2, polled) == {
        "IsComplete": True,
        "PhysicalResourceId": NEW_IDS.physical_id,
        "Data": NEW_IDS.data(),
    }
    assert_done(stub)


def test_a_re_open_waits_while_ec2_does_not_list_its_new_nat_yet(
    ec2: EC2Client, stub: Script
) -> None:
    new_nat = {
        "Filters": [
            {"Name": "vpc-id", "Values": [VPC]},
            {"Name": f"tag:{REQUEST_TAG_KEY}", "Values": [REQUEST]},
        ]
    }
    stub.egress(gone=RESOURCES, routed=False)
    stub.ok("describe_nat_gateways", new_nat, {"NatGateways": []})
    stub.isolated_routed_to(None)
    attached = {"Filters": [{"Name": "attachment.vpc-id", "Values": [VPC]}]}
    ours = {
        "InternetGatewayId": NEW_IDS.internet_gateway_id,
        "Tags": tags(OWNER, (REQUEST_TAG_KEY, REQUEST)),
    }
    stub.ok("describe_internet_gateways", attached, {"InternetGateways": [ours]})

    update = event(
        EGRESS_RESOURCE_TYPE,
        "Update",
        egress_props(Generation="2"),
        physical_id=IDS.physical_id,
        old_props=egress_props(),
    )
    assert handle_is_complete(ec2, update) == {"IsComplete": False}
    assert_done(stub)


# --- the event contract ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"VpcId": ""}, "VpcId must be a non-empty string"),
        ({"RouteTableIds": "rtb-1"}, "RouteTableIds must be a list of route table ids"),
        ({"PublicSubnetCidr": None}, "PublicSubnetCidr must be a non-empty string"),
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


def test_an_unknown_physical_id_is_refused(ec2: EC2Client, stub: Script) -> None:
    delete = event(EGRESS_RESOURCE_TYPE, "Delete", egress_props(), physical_id="egress:nat-1")
    with pytest.raises(EgressError, match="is not a physical id of Custom::TemporaryEgress"):
        handle_on_event(ec2, delete)
    assert_done(stub)


def test_an_unknown_resource_type_is_refused(ec2: EC2Client, stub: Script) -> None:
    with pytest.raises(EgressError, match="unsupported ResourceType 'Custom::Other'"):
        handle_on_event(ec2, event("Custom::Other", "Create", egress_props()))
    assert_done(stub)


def test_physical_id_round_trips() -> None:
    assert EgressIds.from_physical_id(IDS.physical_id) == IDS
    assert IDS.physical_id.startswith(f"egress:{IDS.nat_gateway_id}:")


def test_lambda_entry_points_hand_the_module_client_to_the_handlers(
    ec2: EC2Client, stub: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handler, "_client", lambda: ec2)
    update = event(
        EGRESS_RESOURCE_TYPE,
        "Update",
        egress_props(),
        physical_id=IDS.physical_id,
        old_props=egress_props(),
    )
    assert handler.on_event(update, None)["PhysicalResourceId"] == IDS.physical_id
    assert handler.is_complete(update, None)["IsComplete"] is True
    assert_done(stub)


def test_the_default_client_is_made_once_for_the_lambda_region() -> None:
    handler._client.cache_clear()
    try:
        client = handler._client()
        assert client.meta.region_name == REGION
        assert handler._client() is client
    finally:
        handler._client.cache_clear()


# --- against moto ------------------------------------------------------------------------------


def test_open_and_close_against_moto() -> None:
    from moto import mock_aws

    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        isolated: list[str] = []
        for cidr in ("10.0.0.0/24", "10.0.1.0/24"):
            subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=f"{REGION}a")
            table_id = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
            ec2.associate_route_table(RouteTableId=table_id, SubnetId=subnet["Subnet"]["SubnetId"])
            isolated.append(table_id)

        def default_targets() -> list[list[str | None]]:
            return [
                [
                    route.get("NatGatewayId") or route.get("GatewayId")
                    for route in table["Routes"]
                    if route.get("DestinationCidrBlock") == DEFAULT_ROUTE
                ]
                for table in ec2.describe_route_tables(RouteTableIds=isolated)["RouteTables"]
            ]

        props = egress_props(VpcId=vpc, RouteTableIds=isolated)
        create = event(EGRESS_RESOURCE_TYPE, "Create", props)
        opened = handle_on_event(ec2, create)
        # moto makes NAT gateways available at once, so the first poll completes.
        complete = handle_is_complete(ec2, {**create, **opened})
        assert complete["IsComplete"] is True
        data = complete["Data"]
        assert complete["PhysicalResourceId"] == opened["PhysicalResourceId"]

        nat = ec2.describe_nat_gateways(NatGatewayIds=[data["NatGatewayId"]])["NatGateways"][0]
        assert (nat["State"], nat["SubnetId"]) == ("available", data["PublicSubnetId"])
        assert nat["NatGatewayAddresses"][0]["AllocationId"] == data["AllocationId"]
        gateway = ec2.describe_internet_gateways(InternetGatewayIds=[data["InternetGatewayId"]])
        assert gateway["InternetGateways"][0]["Attachments"][0]["VpcId"] == vpc
        assert default_targets() == [[data["NatGatewayId"]], [data["NatGatewayId"]]]

        teardown = event(
            TEARDOWN_RESOURCE_TYPE,
            "Create",
            {"VpcId": vpc, "OwnerTag": OWNER, "RouteTableIds": isolated, **data},
        )
        teardown = {**teardown, **handle_on_event(ec2, teardown)}
        # moto's NAT goes straight to "deleted" and its address frees at once, so the first
        # poll finishes; the waits AWS imposes are covered by the Stubber tests above.
        assert handle_is_complete(ec2, teardown) == {"IsComplete": True}

        gone: list[tuple[Callable[[], object], str]] = [
            (lambda: ec2.describe_addresses(AllocationIds=[data["AllocationId"]]), "Allocation"),
            (
                lambda: ec2.describe_internet_gateways(
                    InternetGatewayIds=[data["InternetGatewayId"]]
                ),
                "InternetGateway",
            ),
            (lambda: ec2.describe_subnets(SubnetIds=[data["PublicSubnetId"]]), "Subnet"),
            (
                lambda: ec2.describe_route_tables(RouteTableIds=[data["PublicRouteTableId"]]),
                "RouteTable",
            ),
        ]
        for describe, code in gone:
            with pytest.raises(ClientError, match=rf"Invalid{code}ID\.NotFound"):
                describe()
        owned: list[FilterTypeDef] = [{"Name": f"tag:{OWNER_TAG_KEY}", "Values": [OWNER]}]
        assert ec2.describe_internet_gateways(Filters=owned)["InternetGateways"] == []
        assert ec2.describe_subnets(Filters=owned)["Subnets"] == []
        assert ec2.describe_addresses(Filters=owned)["Addresses"] == []
        assert [n["State"] for n in ec2.describe_nat_gateways()["NatGateways"]] == ["deleted"]
        assert default_targets() == [[], []]
        for table in ec2.describe_route_tables(RouteTableIds=isolated)["RouteTables"]:
            assert [r.get("GatewayId") for r in table["Routes"]] == ["local"]

        # Closed twice is closed once, and the egress's own Delete then finds nothing to do.
        assert handle_is_complete(ec2, teardown) == {"IsComplete": True}
        delete = event(
            EGRESS_RESOURCE_TYPE, "Delete", props, physical_id=opened["PhysicalResourceId"]
        )
        assert handle_on_event(ec2, delete) == {"PhysicalResourceId": opened["PhysicalResourceId"]}
        assert handle_is_complete(ec2, delete) == {"IsComplete": True}
