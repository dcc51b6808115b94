"""EC2 calls and what their answers mean; no decision about the egress is taken here."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, TypeVar

from botocore.exceptions import ClientError

from .contract import OWNER_TAG_KEY, REQUEST_TAG_KEY, VPC_TAG_KEY

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.literals import ResourceTypeType
    from mypy_boto3_ec2.type_defs import (
        FilterTypeDef,
        RouteTableTypeDef,
        RouteTypeDef,
        TagSpecificationTypeDef,
        TagTypeDef,
    )

    from .model import Scope

logger = logging.getLogger(__name__)

DEFAULT_ROUTE = "0.0.0.0/0"

NAT_GONE = frozenset({"NatGatewayNotFound", "InvalidNatGatewayID.NotFound"})
ADDRESS_GONE = frozenset({"InvalidAllocationID.NotFound"})
GATEWAY_GONE = frozenset({"InvalidInternetGatewayID.NotFound"})
SUBNET_GONE = frozenset({"InvalidSubnetID.NotFound"})
ROUTE_TABLE_GONE = frozenset({"InvalidRouteTableID.NotFound"})
ROUTE_GONE = frozenset({"InvalidRoute.NotFound"})
ASSOCIATION_GONE = frozenset({"InvalidAssociationID.NotFound"})
NOT_ATTACHED = frozenset({"Gateway.NotAttached"})
# The NAT's network interface and address mapping outlive the NAT by a while; EC2 reports it
# with these codes until they are released, so they mean "try again on the next poll".
STILL_IN_USE = frozenset({"DependencyViolation"})
ADDRESS_STILL_IN_USE = frozenset({"InvalidIPAddress.InUse", "AuthFailure"})
# What an earlier call already did, before EC2 lists it; the next poll sees it listed (or,
# for a route, reports whose it is).
ALREADY_ASSOCIATED = frozenset({"Resource.AlreadyAssociated"})
ROUTE_EXISTS = frozenset({"RouteAlreadyExists"})

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


class Outcome(Enum):
    """How one mutating call ended."""

    DONE = "done"
    GONE = "already gone"
    RETRY = "retry on the next poll"


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def tag_value(part: Mapping[str, object], key: str) -> str | None:
    """The value of tag ``key`` on a described resource, if it has that tag."""
    tags = part.get("Tags")
    for tag in tags if isinstance(tags, list) else ():
        if isinstance(tag, Mapping) and tag.get("Key") == key:
            value = tag.get("Value")
            return value if isinstance(value, str) else None
    return None


def is_owned(part: Mapping[str, object], scope: Scope, request: str | None = None) -> bool:
    """Whether the part carries the owner's tag (and ``request``'s, if given) and is in the
    scope's VPC: by its VPC tag, or without one (a part created before that tag existed) by
    where EC2 shows it.

    Checked again after every tag filter: some EC2 implementations ignore a filter (moto does
    for NAT gateways), and a resource of another owner must never be taken for ours.
    """
    vpc_tag = tag_value(part, VPC_TAG_KEY)
    return (
        tag_value(part, OWNER_TAG_KEY) == scope.owner_tag
        and (request is None or tag_value(part, REQUEST_TAG_KEY) == request)
        and (vpc_tag == scope.vpc_id if vpc_tag is not None else _shown_in(part, scope.vpc_id))
    )


def _shown_in(part: Mapping[str, object], vpc_id: str) -> bool:
    attachments = part.get("Attachments")
    return part.get("VpcId") == vpc_id or any(
        isinstance(a, Mapping) and a.get("VpcId") == vpc_id
        for a in (attachments if isinstance(attachments, list) else ())
    )


def owner_filters(scope: Scope, request: str | None = None) -> list[FilterTypeDef]:
    """The owner's parts (of ``request`` only, if given), in any VPC: narrow them further."""
    filters: list[FilterTypeDef] = [{"Name": f"tag:{OWNER_TAG_KEY}", "Values": [scope.owner_tag]}]
    if request is not None:
        filters.append({"Name": f"tag:{REQUEST_TAG_KEY}", "Values": [request]})
    return filters


def tag_specifications(
    resource_type: ResourceTypeType, scope: Scope, request: str, name: str
) -> list[TagSpecificationTypeDef]:
    tags: list[TagTypeDef] = [
        {"Key": "Name", "Value": f"{scope.owner_tag}/{name}"},
        {"Key": OWNER_TAG_KEY, "Value": scope.owner_tag},
        {"Key": REQUEST_TAG_KEY, "Value": request},
        {"Key": VPC_TAG_KEY, "Value": scope.vpc_id},
    ]
    return [{"ResourceType": resource_type, "Tags": tags}]


def describe_one(call: Callable[[], Sequence[_T]], gone: frozenset[str]) -> _T | None:
    """The one resource a describe-by-id returns, or None when EC2 no longer knows it."""
    try:
        found = call()
    except ClientError as error:
        if error_code(error) in gone:
            return None
        raise
    return found[0] if found else None


def attempt(
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
        code = error_code(error)
        if code in gone:
            logger.info("%s: nothing to do (%s)", action, code)
            return Outcome.GONE
        if code in retry:
            logger.info("%s: %s, retrying on the next poll (%s)", action, code, error)
            return Outcome.RETRY
        raise
    logger.info("%s", action)
    return Outcome.DONE


def isolated_tables(ec2: EC2Client, table_ids: Sequence[str]) -> list[RouteTableTypeDef]:
    """The isolated route tables that still exist (a filter, unlike ids, skips missing ones)."""
    if not table_ids:
        return []
    filters: list[FilterTypeDef] = [{"Name": "route-table-id", "Values": list(table_ids)}]
    return ec2.describe_route_tables(Filters=filters)["RouteTables"]


def default_route(table: RouteTableTypeDef) -> RouteTypeDef | None:
    return next(
        (r for r in table.get("Routes", []) if r.get("DestinationCidrBlock") == DEFAULT_ROUTE),
        None,
    )


def route_target(route: RouteTypeDef) -> str:
    fields: Mapping[str, object] = route
    for key in _ROUTE_TARGET_KEYS:
        if value := fields.get(key):
            return str(value)
    return "an unknown target"


def delete_route(ec2: EC2Client, table_id: str, route: RouteTypeDef) -> Outcome:
    """Delete ``route`` from ``table_id`` by whichever destination it has."""
    if cidr := route.get("DestinationCidrBlock"):
        return attempt(
            f"DeleteRoute {cidr} from {table_id}",
            lambda: ec2.delete_route(RouteTableId=table_id, DestinationCidrBlock=cidr),
            gone=ROUTE_GONE,
        )
    if ipv6 := route.get("DestinationIpv6CidrBlock"):
        return attempt(
            f"DeleteRoute {ipv6} from {table_id}",
            lambda: ec2.delete_route(RouteTableId=table_id, DestinationIpv6CidrBlock=ipv6),
            gone=ROUTE_GONE,
        )
    prefix_list = route.get("DestinationPrefixListId", "")
    return attempt(
        f"DeleteRoute {prefix_list or 'an unknown destination'} from {table_id}",
        lambda: ec2.delete_route(RouteTableId=table_id, DestinationPrefixListId=prefix_list),
        gone=ROUTE_GONE,
    )
