"""What EC2 shows of an egress: found by the owner's tags and by the ids a request names.

Describe calls only. Opening and closing both start from an :class:`Inventory`, so a part
created by an earlier poll (or by a poll that died before it answered) is found, not
created again, and a part no physical id names is still removed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from .contract import REQUEST_TAG_KEY, VPC_TAG_KEY
from .ec2 import (
    ADDRESS_GONE,
    GATEWAY_GONE,
    NAT_GONE,
    ROUTE_TABLE_GONE,
    SUBNET_GONE,
    describe_one,
    is_owned,
    isolated_tables,
    owner_filters,
    tag_value,
)

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import (
        AddressTypeDef,
        FilterTypeDef,
        InternetGatewayTypeDef,
        NatGatewayTypeDef,
        RouteTableTypeDef,
        SubnetTypeDef,
    )

    from .model import EgressIds, Scope

_P = TypeVar("_P", bound=Mapping[str, object])


@dataclass(frozen=True)
class Inventory:
    """The egress parts EC2 describes, by kind; ``isolated`` and ``attached`` are context."""

    nats: tuple[NatGatewayTypeDef, ...] = ()
    addresses: tuple[AddressTypeDef, ...] = ()
    gateways: tuple[InternetGatewayTypeDef, ...] = ()
    subnets: tuple[SubnetTypeDef, ...] = ()
    route_tables: tuple[RouteTableTypeDef, ...] = ()
    isolated: tuple[RouteTableTypeDef, ...] = ()
    """The scope's isolated route tables that exist."""
    attached: tuple[InternetGatewayTypeDef, ...] = ()
    """Every internet gateway attached to the VPC, ours or not (only when asked for)."""

    def of_request(self, request: str) -> Inventory:
        """The parts that ``request`` created."""

        def mine(parts: tuple[_P, ...]) -> tuple[_P, ...]:
            return tuple(p for p in parts if tag_value(p, REQUEST_TAG_KEY) == request)

        return Inventory(
            nats=mine(self.nats),
            addresses=mine(self.addresses),
            gateways=mine(self.gateways),
            subnets=mine(self.subnets),
            route_tables=mine(self.route_tables),
        )

    def without(self, ids: frozenset[str]) -> Inventory:
        """Every part but those in ``ids``."""
        return Inventory(
            nats=tuple(n for n in self.nats if n.get("NatGatewayId") not in ids),
            addresses=tuple(a for a in self.addresses if a.get("AllocationId") not in ids),
            gateways=tuple(g for g in self.gateways if g.get("InternetGatewayId") not in ids),
            subnets=tuple(s for s in self.subnets if s.get("SubnetId") not in ids),
            route_tables=tuple(t for t in self.route_tables if t.get("RouteTableId") not in ids),
            isolated=self.isolated,
            attached=self.attached,
        )


def discover(
    ec2: EC2Client,
    scope: Scope,
    *,
    tagged: bool,
    request: str | None = None,
    named: EgressIds | None = None,
    attached: bool = False,
) -> Inventory:
    """Describe the egress parts in ``scope``.

    :param tagged: find the parts by the owner's and the VPC's tags (one describe per kind).
    :param request: with ``tagged``, only the parts of this request.
    :param named: also these ids, each described by id unless the tags found it already;
        they are taken as they are, for the ownership check to judge.
    :param attached: also list every internet gateway attached to the VPC.
    """
    filters = owner_filters(scope, request) if tagged else None
    # The kinds that EC2 places in a VPC are filtered by it, an Elastic IP by its VPC tag;
    # internet gateways are few, and is_owned() tells which are attached or tagged to it.
    in_vpc: list[FilterTypeDef] = [*(filters or ()), {"Name": "vpc-id", "Values": [scope.vpc_id]}]
    vpc_tag: list[FilterTypeDef] = [
        *(filters or ()),
        {"Name": f"tag:{VPC_TAG_KEY}", "Values": [scope.vpc_id]},
    ]
    names = named.as_tuple() if named is not None else (None,) * 5
    nat_id, allocation_id, gateway_id, subnet_id, table_id = names

    def owned(parts: Sequence[_P]) -> list[_P]:
        return [p for p in parts if is_owned(p, scope, request)]

    nats = _found(
        (lambda: owned(ec2.describe_nat_gateways(Filters=in_vpc)["NatGateways"]))
        if filters
        else None,
        nat_id,
        lambda i: ec2.describe_nat_gateways(NatGatewayIds=[i])["NatGateways"],
        NAT_GONE,
        "NatGatewayId",
    )
    if filters and any(_tagged_by_this_version(n, nat_id, scope) for n in nats):
        # The named egress carries the tags throughout: they found its NAT gateway (EC2
        # describes one until about an hour after its deletion), so they found whatever else
        # of it is left, and describing each id as well would only repeat their answer.
        allocation_id = gateway_id = subnet_id = table_id = None
    addresses = _found(
        (lambda: owned(ec2.describe_addresses(Filters=vpc_tag)["Addresses"])) if filters else None,
        allocation_id,
        lambda i: ec2.describe_addresses(AllocationIds=[i])["Addresses"],
        ADDRESS_GONE,
        "AllocationId",
    )
    gateways = _found(
        (lambda: owned(ec2.describe_internet_gateways(Filters=filters)["InternetGateways"]))
        if filters
        else None,
        gateway_id,
        lambda i: ec2.describe_internet_gateways(InternetGatewayIds=[i])["InternetGateways"],
        GATEWAY_GONE,
        "InternetGatewayId",
    )
    subnets = _found(
        (lambda: owned(ec2.describe_subnets(Filters=in_vpc)["Subnets"])) if filters else None,
        subnet_id,
        lambda i: ec2.describe_subnets(SubnetIds=[i])["Subnets"],
        SUBNET_GONE,
        "SubnetId",
    )
    route_tables = _found(
        (lambda: owned(ec2.describe_route_tables(Filters=in_vpc)["RouteTables"]))
        if filters
        else None,
        table_id,
        lambda i: ec2.describe_route_tables(RouteTableIds=[i])["RouteTables"],
        ROUTE_TABLE_GONE,
        "RouteTableId",
    )
    return Inventory(
        nats=nats,
        addresses=addresses,
        gateways=gateways,
        subnets=subnets,
        route_tables=route_tables,
        isolated=tuple(isolated_tables(ec2, scope.route_table_ids)),
        attached=tuple(
            ec2.describe_internet_gateways(
                Filters=[{"Name": "attachment.vpc-id", "Values": [scope.vpc_id]}]
            )["InternetGateways"]
            if attached
            else ()
        ),
    )


def _tagged_by_this_version(nat: NatGatewayTypeDef, nat_id: str | None, scope: Scope) -> bool:
    """Whether ``nat`` is ``nat_id`` with the VPC tag, which all parts of its egress carry."""
    return nat.get("NatGatewayId") == nat_id and tag_value(nat, VPC_TAG_KEY) == scope.vpc_id


def _found(
    by_tags: Callable[[], list[_P]] | None,
    named_id: str | None,
    by_id: Callable[[str], Sequence[_P]],
    gone: frozenset[str],
    id_key: str,
) -> tuple[_P, ...]:
    found = by_tags() if by_tags is not None else []
    if named_id and named_id not in {p.get(id_key) for p in found}:
        part = describe_one(lambda: by_id(named_id), gone)
        if part is not None:
            found.append(part)
    return tuple(sorted(found, key=lambda p: str(p.get(id_key))))
