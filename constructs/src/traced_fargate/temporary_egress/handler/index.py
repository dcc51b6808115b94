"""Custom-resource handler behind the ``TemporaryEgress`` construct.

It runs behind ``aws_cdk.custom_resources.Provider`` (``on_event`` plus ``is_complete``) and
never sleeps: whatever takes time is polled by ``is_complete``.

``Custom::TemporaryEgress`` opens an internet path for a VPC whose subnets are all isolated:
an internet gateway, a public subnet with its own route table, an Elastic IP and a NAT gateway,
then ``0.0.0.0/0 -> NAT`` in the isolated route tables once the NAT is available.
``Custom::TemporaryEgressTeardown`` closes that path again. Only what this handler created is
ever removed: each resource carries the owner tag, and the teardown checks the tag and the VPC
of every resource before its first mutating call.

The egress's physical id lists everything it created
(``egress:<nat>:<eipalloc>:<igw>:<subnet>:<rtb>``) because Update and Delete events carry no
``Data``, and the ids must stay known after the teardown has removed the resources.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.literals import ResourceTypeType
    from mypy_boto3_ec2.type_defs import (
        FilterTypeDef,
        InternetGatewayTypeDef,
        NatGatewayTypeDef,
        RouteTableTypeDef,
        RouteTypeDef,
        TagSpecificationTypeDef,
        TagTypeDef,
    )

    _Handler = Callable[[EC2Client, Mapping[str, Any]], dict[str, Any]]

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

EGRESS_RESOURCE_TYPE = "Custom::TemporaryEgress"
TEARDOWN_RESOURCE_TYPE = "Custom::TemporaryEgressTeardown"
OWNER_TAG_KEY = "traced-fargate:egress-owner"
# Tags the resources with the CloudFormation request that created them, so that a re-open,
# which creates from is_complete, finds in later polls what an earlier poll created.
REQUEST_TAG_KEY = "traced-fargate:egress-request"
# On the NAT gateway only: the other ids of its egress, readable for as long as EC2 still
# describes the NAT (about an hour after deletion), even once those resources are gone.
PARTS_TAG_KEY = "traced-fargate:egress-parts"
DEFAULT_ROUTE = "0.0.0.0/0"
DATA_KEYS = (
    "NatGatewayId",
    "AllocationId",
    "InternetGatewayId",
    "PublicSubnetId",
    "PublicRouteTableId",
)
_ID_PREFIXES = ("nat-", "eipalloc-", "igw-", "subnet-", "rtb-")

_NAT_GONE = frozenset({"NatGatewayNotFound", "InvalidNatGatewayID.NotFound"})
_ADDRESS_GONE = frozenset({"InvalidAllocationID.NotFound"})
_GATEWAY_GONE = frozenset({"InvalidInternetGatewayID.NotFound"})
_SUBNET_GONE = frozenset({"InvalidSubnetID.NotFound"})
_ROUTE_TABLE_GONE = frozenset({"InvalidRouteTableID.NotFound"})
_ROUTE_GONE = frozenset({"InvalidRoute.NotFound"})
_ASSOCIATION_GONE = frozenset({"InvalidAssociationID.NotFound"})
_NOT_ATTACHED = frozenset({"Gateway.NotAttached"})
# The NAT's network interface and address mapping outlive the NAT by a while; EC2 reports it
# with these codes until they are released, so they mean "try again on the next poll".
_STILL_IN_USE = frozenset({"DependencyViolation"})
_ADDRESS_STILL_IN_USE = frozenset({"InvalidIPAddress.InUse", "AuthFailure"})
# A NAT in any of these states still has to be deleted; "deleting" only has to be waited for.
_NAT_TO_DELETE = frozenset({"pending", "available", "failed"})
_ROUTE_TARGET_KEYS = (
    "NatGatewayId",
    "GatewayId",
    "TransitGatewayId",
    "VpcPeeringConnectionId",
    "NetworkInterfaceId",
    "InstanceId",
    "EgressOnlyInternetGatewayId",
    "LocalGatewayId",
    "CarrierGatewayId",
    "CoreNetworkArn",
)

_T = TypeVar("_T")


class EgressError(Exception):
    """A request this handler refuses or cannot complete; the message says why."""


class OwnershipError(EgressError):
    """A resource named in the request is not this egress's: nothing was changed."""


class _StillOpeningError(EgressError):
    """An earlier call for the same request created the egress; EC2 does not list it yet."""


class Outcome(Enum):
    """How one mutating call ended."""

    DONE = "done"
    GONE = "already gone"
    RETRY = "retry on the next poll"


@dataclass(frozen=True)
class Scope:
    """Where an egress lives and whose it is: the ownership check compares against this."""

    vpc_id: str
    owner_tag: str
    route_table_ids: tuple[str, ...]


@dataclass(frozen=True)
class EgressSpec:
    """The properties of ``Custom::TemporaryEgress``; any difference means a new egress."""

    scope: Scope
    public_subnet_cidr: str
    availability_zone: str
    generation: str

    @classmethod
    def parse(cls, props: Mapping[str, Any]) -> EgressSpec:
        problems: list[str] = []
        scope = _parse_scope(props, problems)
        spec = cls(
            scope=scope,
            public_subnet_cidr=_text(props, "PublicSubnetCidr", problems),
            availability_zone=_text(props, "AvailabilityZone", problems),
            generation=_optional_text(props, "Generation", problems),
        )
        _raise_if_problems(EGRESS_RESOURCE_TYPE, problems)
        return spec


@dataclass(frozen=True)
class EgressIds:
    """The ids of everything one egress created."""

    nat_gateway_id: str
    allocation_id: str
    internet_gateway_id: str
    public_subnet_id: str
    public_route_table_id: str

    def as_tuple(self) -> tuple[str, str, str, str, str]:
        return (
            self.nat_gateway_id,
            self.allocation_id,
            self.internet_gateway_id,
            self.public_subnet_id,
            self.public_route_table_id,
        )

    @property
    def physical_id(self) -> str:
        return ":".join(("egress", *self.as_tuple()))

    def data(self) -> dict[str, str]:
        return dict(zip(DATA_KEYS, self.as_tuple(), strict=True))

    @classmethod
    def from_physical_id(cls, physical_id: str) -> EgressIds:
        kind, *ids = physical_id.split(":")
        if kind != "egress" or not _valid_ids(ids):
            raise EgressError(
                f"{physical_id!r} is not a physical id of {EGRESS_RESOURCE_TYPE}; expected "
                "egress:<nat-id>:<eipalloc-id>:<igw-id>:<subnet-id>:<rtb-id>"
            )
        return cls(*ids)

    @classmethod
    def from_properties(cls, props: Mapping[str, Any], problems: list[str]) -> EgressIds:
        ids = [_text(props, key, problems) for key in DATA_KEYS]
        for key, value, prefix in zip(DATA_KEYS, ids, _ID_PREFIXES, strict=True):
            if value and not value.startswith(prefix):
                problems.append(f"{key} must start with {prefix!r}, got {value!r}")
        return cls(*ids)


@dataclass(frozen=True)
class Remaining:
    """What is left of one egress, in the order the teardown removes it."""

    routes: tuple[tuple[str, RouteTypeDef], ...] = ()
    nat_gateway_id: str | None = None
    nat_state: str = ""
    allocation_id: str | None = None
    route_table_id: str | None = None
    association_ids: tuple[str, ...] = ()
    subnet_id: str | None = None
    internet_gateway_id: str | None = None
    attached_vpc_ids: tuple[str, ...] = ()


# --- properties ----------------------------------------------------------------------------


def _text(props: Mapping[str, Any], key: str, problems: list[str]) -> str:
    value = props.get(key)
    if isinstance(value, str) and value:
        return value
    problems.append(f"{key} must be a non-empty string, got {value!r}")
    return ""


def _optional_text(props: Mapping[str, Any], key: str, problems: list[str]) -> str:
    value = props.get(key, "")
    if isinstance(value, str):
        return value
    problems.append(f"{key} must be a string, got {value!r}")
    return ""


def _parse_scope(props: Mapping[str, Any], problems: list[str]) -> Scope:
    tables = props.get("RouteTableIds")
    if not isinstance(tables, list) or not all(isinstance(t, str) and t for t in tables):
        problems.append(f"RouteTableIds must be a list of route table ids, got {tables!r}")
        tables = []
    return Scope(
        vpc_id=_text(props, "VpcId", problems),
        owner_tag=_text(props, "OwnerTag", problems),
        # Sorted so that reordering the same tables is not a change.
        route_table_ids=tuple(sorted(set(tables))),
    )


def _raise_if_problems(resource_type: str, problems: list[str]) -> None:
    if problems:
        raise EgressError(f"{resource_type}: invalid properties: {'; '.join(problems)}")


def _valid_ids(ids: Sequence[str]) -> bool:
    return len(ids) == len(_ID_PREFIXES) and all(
        value.startswith(prefix) and len(value) > len(prefix)
        for value, prefix in zip(ids, _ID_PREFIXES, strict=True)
    )


def _teardown_target(props: Mapping[str, Any]) -> tuple[Scope, EgressIds]:
    problems: list[str] = []
    scope = _parse_scope(props, problems)
    ids = EgressIds.from_properties(props, problems)
    _raise_if_problems(TEARDOWN_RESOURCE_TYPE, problems)
    return scope, ids


# --- small EC2 helpers ---------------------------------------------------------------------


def _error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _tag(tags: Sequence[TagTypeDef] | None, key: str) -> str | None:
    for tag in tags or ():
        if tag.get("Key") == key:
            return tag.get("Value")
    return None


def _describe_one(call: Callable[[], Sequence[_T]], gone: frozenset[str]) -> _T | None:
    """The one resource a describe-by-id returns, or None when EC2 no longer knows it."""
    try:
        found = call()
    except ClientError as error:
        if _error_code(error) in gone:
            return None
        raise
    return found[0] if found else None


def _attempt(
    action: str,
    call: Callable[[], object],
    *,
    gone: frozenset[str] = frozenset(),
    retry: frozenset[str] = frozenset(),
) -> Outcome:
    """Run one mutating call and log it; ``gone``/``retry`` codes are outcomes, not errors."""
    try:
        call()
    except ClientError as error:
        code = _error_code(error)
        if code in gone:
            logger.info("%s: nothing to do (%s)", action, code)
            return Outcome.GONE
        if code in retry:
            logger.info("%s: %s, retrying on the next poll (%s)", action, code, error)
            return Outcome.RETRY
        raise
    logger.info("%s", action)
    return Outcome.DONE


def _tag_specifications(
    resource_type: ResourceTypeType,
    scope: Scope,
    request_id: str,
    name: str,
    extra: Sequence[TagTypeDef] = (),
) -> list[TagSpecificationTypeDef]:
    tags: list[TagTypeDef] = [
        {"Key": "Name", "Value": f"{scope.owner_tag}/{name}"},
        {"Key": OWNER_TAG_KEY, "Value": scope.owner_tag},
        {"Key": REQUEST_TAG_KEY, "Value": request_id},
        *extra,
    ]
    return [{"ResourceType": resource_type, "Tags": tags}]


def _isolated_tables(ec2: EC2Client, table_ids: Sequence[str]) -> list[RouteTableTypeDef]:
    """The isolated route tables that still exist (a filter, unlike ids, skips missing ones)."""
    if not table_ids:
        return []
    filters: list[FilterTypeDef] = [{"Name": "route-table-id", "Values": list(table_ids)}]
    return ec2.describe_route_tables(Filters=filters)["RouteTables"]


def _default_route(table: RouteTableTypeDef) -> RouteTypeDef | None:
    return next(
        (r for r in table.get("Routes", []) if r.get("DestinationCidrBlock") == DEFAULT_ROUTE),
        None,
    )


def _route_target(route: RouteTypeDef) -> str:
    fields: Mapping[str, object] = route
    for key in _ROUTE_TARGET_KEYS:
        if value := fields.get(key):
            return str(value)
    return "an unknown target"


def _destination(route: RouteTypeDef) -> str:
    return (
        route.get("DestinationCidrBlock")
        or route.get("DestinationIpv6CidrBlock")
        or route.get("DestinationPrefixListId")
        or "an unknown destination"
    )


# --- teardown ------------------------------------------------------------------------------


def _owner_problems(label: str, tags: Sequence[TagTypeDef] | None, owner: str) -> list[str]:
    actual = _tag(tags, OWNER_TAG_KEY)
    if actual is None:
        return [f"{label} has no {OWNER_TAG_KEY} tag (expected {owner!r})"]
    if actual != owner:
        return [f"{label} has {OWNER_TAG_KEY}={actual!r} (expected {owner!r})"]
    return []


def _vpc_problems(label: str, actual: str | None, expected: str) -> list[str]:
    return [] if actual == expected else [f"{label} is in VPC {actual} (expected {expected})"]


def _attached_vpcs(
    label: str, gateway: InternetGatewayTypeDef, vpc_id: str, problems: list[str]
) -> tuple[str, ...]:
    attached = tuple(
        attachment.get("VpcId", "")
        for attachment in gateway.get("Attachments", [])
        if attachment.get("State") != "detached"
    )
    for attached_to in attached:
        problems += _vpc_problems(f"{label} attachment", attached_to, vpc_id)
    return attached


def _subnet_associations(
    label: str, table: RouteTableTypeDef, subnet_id: str, problems: list[str]
) -> tuple[str, ...]:
    """The table's associations with our subnet; any other association is a problem."""
    ours: list[str] = []
    for association in table.get("Associations", []):
        if association.get("Main"):
            problems.append(f"{label} is the main route table of its VPC")
        elif association.get("SubnetId") != subnet_id:
            other = association.get("SubnetId") or association.get("GatewayId")
            problems.append(f"{label} is also associated with {other}")
        else:
            ours.append(association.get("RouteTableAssociationId", ""))
    return tuple(ours)


def inspect_egress(ec2: EC2Client, scope: Scope, ids: EgressIds) -> Remaining:
    """Describe what is left of the egress and check that all of it is ours.

    Makes no mutating call. Raises :class:`OwnershipError` naming every resource whose owner
    tag or VPC differs from ``scope``; a resource EC2 no longer knows counts as removed.
    """
    nat = _describe_one(
        lambda: ec2.describe_nat_gateways(NatGatewayIds=[ids.nat_gateway_id])["NatGateways"],
        _NAT_GONE,
    )
    address = _describe_one(
        lambda: ec2.describe_addresses(AllocationIds=[ids.allocation_id])["Addresses"],
        _ADDRESS_GONE,
    )
    gateway = _describe_one(
        lambda: ec2.describe_internet_gateways(InternetGatewayIds=[ids.internet_gateway_id])[
            "InternetGateways"
        ],
        _GATEWAY_GONE,
    )
    subnet = _describe_one(
        lambda: ec2.describe_subnets(SubnetIds=[ids.public_subnet_id])["Subnets"],
        _SUBNET_GONE,
    )
    table = _describe_one(
        lambda: ec2.describe_route_tables(RouteTableIds=[ids.public_route_table_id])["RouteTables"],
        _ROUTE_TABLE_GONE,
    )
    isolated = _isolated_tables(ec2, scope.route_table_ids)

    owner, vpc = scope.owner_tag, scope.vpc_id
    problems: list[str] = []
    if nat is not None:
        label = f"NAT gateway {ids.nat_gateway_id}"
        problems += _owner_problems(label, nat.get("Tags"), owner)
        problems += _vpc_problems(label, nat.get("VpcId"), vpc)
    if address is not None:
        problems += _owner_problems(f"Elastic IP {ids.allocation_id}", address.get("Tags"), owner)
    attached: tuple[str, ...] = ()
    if gateway is not None:
        label = f"internet gateway {ids.internet_gateway_id}"
        problems += _owner_problems(label, gateway.get("Tags"), owner)
        attached = _attached_vpcs(label, gateway, vpc, problems)
    if subnet is not None:
        label = f"subnet {ids.public_subnet_id}"
        problems += _owner_problems(label, subnet.get("Tags"), owner)
        problems += _vpc_problems(label, subnet.get("VpcId"), vpc)
    associations: tuple[str, ...] = ()
    if table is not None:
        label = f"route table {ids.public_route_table_id}"
        problems += _owner_problems(label, table.get("Tags"), owner)
        problems += _vpc_problems(label, table.get("VpcId"), vpc)
        associations = _subnet_associations(label, table, ids.public_subnet_id, problems)
    for isolated_table in isolated:
        problems += _vpc_problems(
            f"route table {isolated_table.get('RouteTableId')} (RouteTableIds)",
            isolated_table.get("VpcId"),
            vpc,
        )
    if problems:
        raise OwnershipError(
            f"Refusing to tear down egress {ids.physical_id} of {owner!r} in {vpc}; nothing "
            f"was changed: {'; '.join(problems)}"
        )
    return Remaining(
        routes=tuple(
            (t.get("RouteTableId", ""), route)
            for t in isolated
            for route in t.get("Routes", [])
            if route.get("NatGatewayId") == ids.nat_gateway_id
        ),
        nat_gateway_id=ids.nat_gateway_id if nat is not None else None,
        nat_state=nat.get("State", "") if nat is not None else "",
        allocation_id=ids.allocation_id if address is not None else None,
        route_table_id=ids.public_route_table_id if table is not None else None,
        association_ids=associations,
        subnet_id=ids.public_subnet_id if subnet is not None else None,
        internet_gateway_id=ids.internet_gateway_id if gateway is not None else None,
        attached_vpc_ids=attached,
    )


def _delete_route(ec2: EC2Client, table_id: str, route: RouteTypeDef) -> Outcome:
    action = f"DeleteRoute {_destination(route)} from {table_id}"
    if cidr := route.get("DestinationCidrBlock"):
        return _attempt(
            action,
            lambda: ec2.delete_route(RouteTableId=table_id, DestinationCidrBlock=cidr),
            gone=_ROUTE_GONE,
        )
    if ipv6 := route.get("DestinationIpv6CidrBlock"):
        return _attempt(
            action,
            lambda: ec2.delete_route(RouteTableId=table_id, DestinationIpv6CidrBlock=ipv6),
            gone=_ROUTE_GONE,
        )
    prefix_list = route.get("DestinationPrefixListId", "")
    return _attempt(
        action,
        lambda: ec2.delete_route(RouteTableId=table_id, DestinationPrefixListId=prefix_list),
        gone=_ROUTE_GONE,
    )


def _disassociate(ec2: EC2Client, association_id: str) -> Outcome:
    return _attempt(
        f"DisassociateRouteTable {association_id}",
        lambda: ec2.disassociate_route_table(AssociationId=association_id),
        gone=_ASSOCIATION_GONE,
    )


def _detach(ec2: EC2Client, gateway_id: str, vpc_id: str) -> Outcome:
    return _attempt(
        f"DetachInternetGateway {gateway_id} from {vpc_id}",
        lambda: ec2.detach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id),
        gone=_GATEWAY_GONE | _NOT_ATTACHED,
        retry=_STILL_IN_USE,
    )


def _remove_nat(ec2: EC2Client, left: Remaining) -> bool:
    nat_id = left.nat_gateway_id
    if nat_id is None or left.nat_state == "deleted":
        return True
    if left.nat_state not in _NAT_TO_DELETE:
        logger.info("NAT gateway %s is %s; waiting for deleted", nat_id, left.nat_state)
        return False
    deleted = _attempt(
        f"DeleteNatGateway {nat_id}",
        lambda: ec2.delete_nat_gateway(NatGatewayId=nat_id),
        gone=_NAT_GONE,
    )
    # Accepted is not deleted: the address and the subnet stay busy until EC2 says "deleted".
    return deleted is Outcome.GONE


def _release_address(ec2: EC2Client, left: Remaining) -> bool:
    allocation_id = left.allocation_id
    if allocation_id is None:
        return True
    released = _attempt(
        f"ReleaseAddress {allocation_id}",
        lambda: ec2.release_address(AllocationId=allocation_id),
        gone=_ADDRESS_GONE,
        retry=_ADDRESS_STILL_IN_USE,
    )
    return released is not Outcome.RETRY


def _remove_route_table(ec2: EC2Client, left: Remaining) -> bool:
    table_id = left.route_table_id
    if table_id is None:
        return True
    for association_id in left.association_ids:
        _disassociate(ec2, association_id)
    deleted = _attempt(
        f"DeleteRouteTable {table_id}",
        lambda: ec2.delete_route_table(RouteTableId=table_id),
        gone=_ROUTE_TABLE_GONE,
        retry=_STILL_IN_USE,
    )
    return deleted is not Outcome.RETRY


def _remove_subnet(ec2: EC2Client, left: Remaining) -> bool:
    subnet_id = left.subnet_id
    if subnet_id is None:
        return True
    deleted = _attempt(
        f"DeleteSubnet {subnet_id}",
        lambda: ec2.delete_subnet(SubnetId=subnet_id),
        gone=_SUBNET_GONE,
        retry=_STILL_IN_USE,
    )
    return deleted is not Outcome.RETRY


def _remove_gateway(ec2: EC2Client, left: Remaining) -> bool:
    gateway_id = left.internet_gateway_id
    if gateway_id is None:
        return True
    for vpc_id in left.attached_vpc_ids:
        if _detach(ec2, gateway_id, vpc_id) is Outcome.RETRY:
            return False
    deleted = _attempt(
        f"DeleteInternetGateway {gateway_id}",
        lambda: ec2.delete_internet_gateway(InternetGatewayId=gateway_id),
        gone=_GATEWAY_GONE,
        retry=_STILL_IN_USE,
    )
    return deleted is not Outcome.RETRY


def advance(ec2: EC2Client, left: Remaining) -> bool:
    """Remove what ``left`` lists, in order, as far as possible without waiting.

    Returns True once nothing is left, False when a later poll has to continue.
    """
    for table_id, route in left.routes:
        _delete_route(ec2, table_id, route)
    steps = (_remove_nat, _release_address, _remove_route_table, _remove_subnet, _remove_gateway)
    # all() stops at the first step that has to wait: each step needs the ones before it.
    return all(step(ec2, left) for step in steps)


def teardown_step(ec2: EC2Client, scope: Scope, ids: EgressIds) -> bool:
    """One idempotent pass of the teardown: True once the egress is entirely gone."""
    done = advance(ec2, inspect_egress(ec2, scope, ids))
    logger.info("Teardown of egress %s: %s", ids.physical_id, "done" if done else "in progress")
    return done


# --- opening -------------------------------------------------------------------------------


def _route_conflicts(
    scope: Scope, tables: Sequence[RouteTableTypeDef], nat_id: str | None
) -> list[str]:
    """Why ``0.0.0.0/0 -> nat_id`` cannot go into the isolated route tables, if it cannot."""
    problems = [
        f"route table {missing} (RouteTableIds) not found"
        for missing in sorted(
            set(scope.route_table_ids) - {t.get("RouteTableId", "") for t in tables}
        )
    ]
    for table in tables:
        label = f"route table {table.get('RouteTableId')}"
        problems += _vpc_problems(label, table.get("VpcId"), scope.vpc_id)
        route = _default_route(table)
        if route is not None and (nat_id is None or route.get("NatGatewayId") != nat_id):
            problems.append(
                f"{label} already routes {DEFAULT_ROUTE} to {_route_target(route)} "
                f"({route.get('State', 'unknown state')}); remove that route or leave the "
                "table out of RouteTableIds"
            )
    return problems


def _preflight(ec2: EC2Client, spec: EgressSpec, request_id: str) -> None:
    """Refuse, before creating anything, an egress that could not work."""
    scope = spec.scope
    problems = _route_conflicts(scope, _isolated_tables(ec2, scope.route_table_ids), None)
    attached = ec2.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [scope.vpc_id]}]
    )["InternetGateways"]
    for gateway in attached:
        gateway_id = gateway.get("InternetGatewayId")
        if _tag(gateway.get("Tags"), REQUEST_TAG_KEY) == request_id:
            raise _StillOpeningError(
                f"internet gateway {gateway_id} of this request ({request_id}) is already "
                f"attached to {scope.vpc_id}"
            )
        problems.append(
            f"{scope.vpc_id} already has internet gateway {gateway_id} attached "
            f"({OWNER_TAG_KEY}={_tag(gateway.get('Tags'), OWNER_TAG_KEY)!r}); a VPC takes one"
        )
    if problems:
        raise EgressError(
            f"Cannot open an egress for {scope.owner_tag!r} in {scope.vpc_id}; nothing was "
            f"created: {'; '.join(problems)}"
        )


def _undo(ec2: EC2Client, left: Remaining) -> None:
    """Best-effort removal of a half-created egress; the caller re-raises the cause."""
    try:
        done = advance(ec2, left)
    except Exception:
        logger.exception("Removing the half-created egress failed; left behind: %s", left)
        return
    if not done:
        logger.error("Removing the half-created egress did not finish; left behind: %s", left)


def open_egress(ec2: EC2Client, spec: EgressSpec, request_id: str) -> EgressIds:
    """Create the egress up to its NAT gateway, which ``await_egress`` then waits for.

    When a call fails, whatever this call created is removed before the error propagates:
    CloudFormation does not follow a failed Create with a Delete.
    """
    _preflight(ec2, spec, request_id)
    scope = spec.scope
    left = Remaining()
    try:
        gateway_id = ec2.create_internet_gateway(
            TagSpecifications=_tag_specifications("internet-gateway", scope, request_id, "igw")
        )["InternetGateway"]["InternetGatewayId"]
        left = replace(left, internet_gateway_id=gateway_id)
        logger.info("CreateInternetGateway %s", gateway_id)

        ec2.attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=scope.vpc_id)
        left = replace(left, attached_vpc_ids=(scope.vpc_id,))
        logger.info("AttachInternetGateway %s to %s", gateway_id, scope.vpc_id)

        subnet_id = ec2.create_subnet(
            VpcId=scope.vpc_id,
            CidrBlock=spec.public_subnet_cidr,
            AvailabilityZone=spec.availability_zone,
            TagSpecifications=_tag_specifications("subnet", scope, request_id, "public-subnet"),
        )["Subnet"]["SubnetId"]
        left = replace(left, subnet_id=subnet_id)
        logger.info("CreateSubnet %s (%s)", subnet_id, spec.public_subnet_cidr)

        table_id = ec2.create_route_table(
            VpcId=scope.vpc_id,
            TagSpecifications=_tag_specifications("route-table", scope, request_id, "public"),
        )["RouteTable"]["RouteTableId"]
        left = replace(left, route_table_id=table_id)
        logger.info("CreateRouteTable %s", table_id)

        ec2.create_route(
            RouteTableId=table_id, DestinationCidrBlock=DEFAULT_ROUTE, GatewayId=gateway_id
        )
        logger.info("CreateRoute %s -> %s in %s", DEFAULT_ROUTE, gateway_id, table_id)

        association_id = ec2.associate_route_table(RouteTableId=table_id, SubnetId=subnet_id)[
            "AssociationId"
        ]
        left = replace(left, association_ids=(association_id,))
        logger.info("AssociateRouteTable %s with %s", table_id, subnet_id)

        allocation_id = ec2.allocate_address(
            Domain="vpc",
            TagSpecifications=_tag_specifications("elastic-ip", scope, request_id, "eip"),
        )["AllocationId"]
        left = replace(left, allocation_id=allocation_id)
        logger.info("AllocateAddress %s", allocation_id)

        parts = ":".join((allocation_id, gateway_id, subnet_id, table_id))
        nat_id = ec2.create_nat_gateway(
            SubnetId=subnet_id,
            AllocationId=allocation_id,
            ConnectivityType="public",
            # Idempotent per request: a repeated call returns the same NAT gateway.
            ClientToken=request_id,
            TagSpecifications=_tag_specifications(
                "natgateway",
                scope,
                request_id,
                "nat",
                extra=[{"Key": PARTS_TAG_KEY, "Value": parts}],
            ),
        )["NatGateway"]["NatGatewayId"]
        logger.info("CreateNatGateway %s in %s", nat_id, subnet_id)
    except Exception:
        _undo(ec2, left)
        raise
    return EgressIds(nat_id, allocation_id, gateway_id, subnet_id, table_id)


def _nat_failure(nat: NatGatewayTypeDef) -> str:
    label = f"NAT gateway {nat.get('NatGatewayId')}"
    if message := nat.get("FailureMessage"):
        return f"{label} failed ({nat.get('FailureCode', 'no failure code')}): {message}"
    return f"{label} is {nat.get('State', 'in an unknown state')}"


def _route_isolated_tables(
    ec2: EC2Client, tables: Sequence[RouteTableTypeDef], nat_id: str
) -> bool:
    for table in tables:
        if _default_route(table) is not None:
            continue
        if _route_to_nat(ec2, table.get("RouteTableId", ""), nat_id) is Outcome.RETRY:
            return False
    return True


def _route_to_nat(ec2: EC2Client, table_id: str, nat_id: str) -> Outcome:
    # Someone else's route appearing since the describe: the next poll reports the conflict.
    return _attempt(
        f"CreateRoute {DEFAULT_ROUTE} -> {nat_id} in {table_id}",
        lambda: ec2.create_route(
            RouteTableId=table_id, DestinationCidrBlock=DEFAULT_ROUTE, NatGatewayId=nat_id
        ),
        retry=frozenset({"RouteAlreadyExists"}),
    )


def _not_complete() -> dict[str, Any]:
    return {"IsComplete": False}


def await_egress(ec2: EC2Client, spec: EgressSpec, ids: EgressIds) -> dict[str, Any]:
    """One ``is_complete`` poll of an egress being opened.

    Once the NAT is available, routes the isolated tables to it and completes. When the NAT
    fails or a table already routes elsewhere, removes the egress over as many polls as that
    takes, then raises: a failed Create gets no Delete.
    """
    nat = _describe_one(
        lambda: ec2.describe_nat_gateways(NatGatewayIds=[ids.nat_gateway_id])["NatGateways"],
        _NAT_GONE,
    )
    if nat is None:
        logger.info("NAT gateway %s is not listed yet", ids.nat_gateway_id)
        return _not_complete()
    state = nat.get("State", "")
    tables = _isolated_tables(ec2, spec.scope.route_table_ids)
    # Checked on every poll, failed or not, so the reason survives the NAT's deletion.
    conflicts = _route_conflicts(spec.scope, tables, ids.nat_gateway_id)
    if not conflicts and state == "pending":
        logger.info("NAT gateway %s is pending", ids.nat_gateway_id)
        return _not_complete()
    if not conflicts and state == "available":
        if not _route_isolated_tables(ec2, tables, ids.nat_gateway_id):
            return _not_complete()
        logger.info("Egress %s is open", ids.physical_id)
        return {"IsComplete": True, "PhysicalResourceId": ids.physical_id, "Data": ids.data()}

    reason = "; ".join(conflicts) if conflicts else _nat_failure(nat)
    logger.error("Egress %s cannot open (%s); removing it", ids.physical_id, reason)
    if not teardown_step(ec2, spec.scope, ids):
        return _not_complete()
    raise EgressError(
        f"Could not open egress {ids.physical_id}: {reason}. Everything it created has been "
        "removed."
    )


def _opened_by(ec2: EC2Client, scope: Scope, request_id: str) -> EgressIds | None:
    """The egress that an earlier poll of ``request_id`` created, found through its NAT."""
    # The tag is checked again in case an EC2 implementation ignores the tag filter
    # (moto does): a NAT of another request must never be taken for this one.
    nats = [
        nat
        for nat in ec2.describe_nat_gateways(
            Filters=[
                {"Name": "vpc-id", "Values": [scope.vpc_id]},
                {"Name": f"tag:{REQUEST_TAG_KEY}", "Values": [request_id]},
            ]
        )["NatGateways"]
        if _tag(nat.get("Tags"), REQUEST_TAG_KEY) == request_id
    ]
    if not nats:
        return None
    nat_id = nats[0].get("NatGatewayId", "")
    parts = (_tag(nats[0].get("Tags"), PARTS_TAG_KEY) or "").split(":")
    if not _valid_ids([nat_id, *parts]):
        raise EgressError(f"NAT gateway {nat_id} has no valid {PARTS_TAG_KEY} tag: {parts!r}")
    return EgressIds(nat_id, *parts)


def _reopen(
    ec2: EC2Client, spec: EgressSpec, old: EgressSpec, old_ids: EgressIds, request_id: str
) -> dict[str, Any]:
    """One ``is_complete`` poll of an Update that replaces the egress.

    The old egress has to be gone first: a VPC takes one internet gateway, and the new public
    subnet reuses the CIDR block. Creating therefore happens here rather than in ``on_event``.
    """
    if not teardown_step(ec2, old.scope, old_ids):
        return _not_complete()
    opened = _opened_by(ec2, spec.scope, request_id)
    if opened is not None:
        return await_egress(ec2, spec, opened)
    try:
        open_egress(ec2, spec, request_id)
    except _StillOpeningError as pending:
        logger.info("Waiting for EC2 to list what an earlier poll created: %s", pending)
    return _not_complete()


# --- the two resource types ----------------------------------------------------------------


def _properties(event: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    props = event.get(key)
    if not isinstance(props, Mapping):
        raise EgressError(f"event has no {key}")
    return props


def _egress_on_event(ec2: EC2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    request_type = event["RequestType"]
    spec = EgressSpec.parse(_properties(event, "ResourceProperties"))
    if request_type == "Create":
        ids = open_egress(ec2, spec, event["RequestId"])
        return {"PhysicalResourceId": ids.physical_id, "Data": ids.data()}
    physical_id = event["PhysicalResourceId"]
    ids = EgressIds.from_physical_id(physical_id)
    if request_type == "Update":
        old = EgressSpec.parse(_properties(event, "OldResourceProperties"))
        if spec == old:
            logger.info("No property of egress %s changed; keeping it", physical_id)
            return {"PhysicalResourceId": physical_id, "Data": ids.data()}
        logger.info("Re-opening: egress %s is closed first", physical_id)
        teardown_step(ec2, old.scope, ids)
        return {"PhysicalResourceId": physical_id}
    teardown_step(ec2, spec.scope, ids)
    return {"PhysicalResourceId": physical_id}


def _egress_is_complete(ec2: EC2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    request_type = event["RequestType"]
    spec = EgressSpec.parse(_properties(event, "ResourceProperties"))
    ids = EgressIds.from_physical_id(event["PhysicalResourceId"])
    if request_type == "Create":
        return await_egress(ec2, spec, ids)
    if request_type == "Update":
        old = EgressSpec.parse(_properties(event, "OldResourceProperties"))
        if spec == old:
            return {"IsComplete": True, "Data": ids.data()}
        return _reopen(ec2, spec, old, ids, event["RequestId"])
    return {"IsComplete": teardown_step(ec2, spec.scope, ids)}


def _teardown_on_event(ec2: EC2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    request_type = event["RequestType"]
    if request_type == "Delete":
        # The egress's own Delete removes whatever is still there.
        return {"PhysicalResourceId": event["PhysicalResourceId"]}
    scope, ids = _teardown_target(_properties(event, "ResourceProperties"))
    teardown_step(ec2, scope, ids)
    if request_type == "Create":
        return {"PhysicalResourceId": f"teardown:{ids.nat_gateway_id}"}
    return {"PhysicalResourceId": event["PhysicalResourceId"]}


def _teardown_is_complete(ec2: EC2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    if event["RequestType"] == "Delete":
        return {"IsComplete": True}
    scope, ids = _teardown_target(_properties(event, "ResourceProperties"))
    return {"IsComplete": teardown_step(ec2, scope, ids)}


_HANDLERS: Mapping[str, tuple[_Handler, _Handler]] = {
    EGRESS_RESOURCE_TYPE: (_egress_on_event, _egress_is_complete),
    TEARDOWN_RESOURCE_TYPE: (_teardown_on_event, _teardown_is_complete),
}


def _handlers_for(event: Mapping[str, Any]) -> tuple[_Handler, _Handler]:
    resource_type = event.get("ResourceType")
    request_type = event.get("RequestType")
    if not isinstance(resource_type, str) or resource_type not in _HANDLERS:
        raise EgressError(
            f"unsupported ResourceType {resource_type!r}; expected one of {', '.join(_HANDLERS)}"
        )
    if request_type not in ("Create", "Update", "Delete"):
        raise EgressError(f"unsupported RequestType {request_type!r}")
    logger.info(
        "%s %s %s (%s)",
        request_type,
        resource_type,
        event.get("LogicalResourceId"),
        event.get("PhysicalResourceId", "new"),
    )
    return _HANDLERS[resource_type]


def handle_on_event(ec2: EC2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    """``on_event`` with the EC2 client passed in."""
    return _handlers_for(event)[0](ec2, event)


def handle_is_complete(ec2: EC2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    """``is_complete`` with the EC2 client passed in."""
    return _handlers_for(event)[1](ec2, event)


@functools.cache
def _client() -> EC2Client:
    return boto3.client("ec2", config=Config(retries={"mode": "standard"}))


def on_event(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """Provider framework ``onEventHandler``."""
    return handle_on_event(_client(), event)


def is_complete(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """Provider framework ``isCompleteHandler``."""
    return handle_is_complete(_client(), event)
