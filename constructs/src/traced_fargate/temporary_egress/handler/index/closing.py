"""Closing: remove egress parts, in the one order EC2 allows, over as many polls as it takes.

Each poll describes what is left (:func:`plan`), refuses before its first mutating call when
anything it would touch is not the owner's, then goes as far as it can without waiting
(:func:`advance`). Every step is idempotent: a poll that died halfway is simply run again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .contract import OWNER_TAG_KEY, VPC_TAG_KEY
from .ec2 import (
    ADDRESS_GONE,
    ADDRESS_STILL_IN_USE,
    ASSOCIATION_GONE,
    GATEWAY_GONE,
    NAT_GONE,
    NOT_ATTACHED,
    ROUTE_TABLE_GONE,
    STILL_IN_USE,
    SUBNET_GONE,
    Outcome,
    attempt,
    delete_route,
    tag_value,
)
from .inventory import Inventory, discover
from .model import OwnershipError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import InternetGatewayTypeDef, RouteTypeDef

    from .model import EgressIds, Scope

logger = logging.getLogger(__name__)

# A NAT in any of these states still has to be deleted; "deleting" only has to be waited for.
_NAT_TO_DELETE = frozenset({"pending", "available", "failed"})


@dataclass(frozen=True)
class Target:
    """What one teardown removes: named parts, tagged parts, or both."""

    scope: Scope
    named: EgressIds | None = None
    """Ids from a physical id or from the teardown's properties."""
    tagged: bool = False
    """Also every part tagged with the owner and the VPC..."""
    request: str | None = None
    """...of this request only."""

    @property
    def label(self) -> str:
        if self.named is not None:
            return f"egress {self.named.physical_id}"
        if self.request is not None:
            return f"the egress parts of request {self.request}"
        return "the egress parts"


@dataclass(frozen=True)
class Remaining:
    """What is left to remove, in the order the teardown removes it."""

    routes: tuple[tuple[str, RouteTypeDef], ...] = ()
    """(isolated route table, route to one of the NAT gateways below)"""
    nats: tuple[tuple[str, str], ...] = ()
    """(NAT gateway, state)"""
    allocation_ids: tuple[str, ...] = ()
    route_tables: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(route table, its subnet associations)"""
    subnet_ids: tuple[str, ...] = ()
    gateways: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(internet gateway, the VPCs it is attached to)"""

    @property
    def empty(self) -> bool:
        return not any(
            (
                self.routes,
                [n for n, state in self.nats if state != "deleted"],
                self.allocation_ids,
                self.route_tables,
                self.subnet_ids,
                self.gateways,
            )
        )


def close_step(ec2: EC2Client, target: Target) -> bool:
    """One idempotent pass of the teardown: True once ``target`` is entirely gone."""
    found = discover(
        ec2, target.scope, tagged=target.tagged, request=target.request, named=target.named
    )
    done = advance(ec2, plan(target.scope, found, target.label, target.named))
    logger.info("Teardown of %s: %s", target.label, "done" if done else "in progress")
    return done


def plan(scope: Scope, found: Inventory, what: str, named: EgressIds | None = None) -> Remaining:
    """What removing every part in ``found`` takes, once all of it is known to be ours.

    Makes no call. Raises ``OwnershipError`` naming every part whose owner tag or VPC
    differs from ``scope``, before anything is changed.
    """
    # A public route table may be associated with our subnets only (EC2 may still show an
    # association with the named one for a moment after it is gone).
    our_subnets = {s.get("SubnetId", "") for s in found.subnets}
    our_subnets |= {named.public_subnet_id} if named else set()
    if problems := _ownership_problems(scope, found, our_subnets):
        raise OwnershipError(
            f"Refusing to tear down {what} of {scope.owner_tag!r} in {scope.vpc_id}; nothing "
            f"was changed: {'; '.join(problems)}"
        )
    nat_ids = {n.get("NatGatewayId") for n in found.nats}
    return Remaining(
        routes=tuple(
            (t.get("RouteTableId", ""), route)
            for t in found.isolated
            for route in t.get("Routes", [])
            if route.get("NatGatewayId") in nat_ids
        ),
        nats=tuple((n.get("NatGatewayId", ""), n.get("State", "")) for n in found.nats),
        allocation_ids=tuple(a.get("AllocationId", "") for a in found.addresses),
        route_tables=tuple(
            (
                t.get("RouteTableId", ""),
                tuple(
                    a.get("RouteTableAssociationId", "")
                    for a in t.get("Associations", [])
                    if a.get("SubnetId") in our_subnets
                ),
            )
            for t in found.route_tables
        ),
        subnet_ids=tuple(s.get("SubnetId", "") for s in found.subnets),
        gateways=tuple((g.get("InternetGatewayId", ""), _attachments(g)) for g in found.gateways),
    )


def _ownership_problems(scope: Scope, found: Inventory, our_subnets: set[str]) -> list[str]:
    vpc = scope.vpc_id
    problems: list[str] = []
    for nat in found.nats:
        label = f"NAT gateway {nat.get('NatGatewayId')}"
        problems += _owner_problems(label, nat, scope)
        problems += _vpc_problems(label, nat.get("VpcId"), vpc)
    for address in found.addresses:
        problems += _owner_problems(f"Elastic IP {address.get('AllocationId')}", address, scope)
    for gateway in found.gateways:
        label = f"internet gateway {gateway.get('InternetGatewayId')}"
        problems += _owner_problems(label, gateway, scope)
        for attached_to in _attachments(gateway):
            problems += _vpc_problems(f"{label} attachment", attached_to, vpc)
    for subnet in found.subnets:
        label = f"subnet {subnet.get('SubnetId')}"
        problems += _owner_problems(label, subnet, scope)
        problems += _vpc_problems(label, subnet.get("VpcId"), vpc)
    for table in found.route_tables:
        label = f"route table {table.get('RouteTableId')}"
        problems += _owner_problems(label, table, scope)
        problems += _vpc_problems(label, table.get("VpcId"), vpc)
        for association in table.get("Associations", []):
            if association.get("Main"):
                problems.append(f"{label} is the main route table of its VPC")
            elif association.get("SubnetId") not in our_subnets:
                other = association.get("SubnetId") or association.get("GatewayId")
                problems.append(f"{label} is also associated with {other}")
    for isolated in found.isolated:
        label = f"route table {isolated.get('RouteTableId')} (RouteTableIds)"
        problems += _vpc_problems(label, isolated.get("VpcId"), vpc)
    return problems


def advance(ec2: EC2Client, left: Remaining) -> bool:
    """Remove what ``left`` lists, in order, as far as possible without waiting.

    Returns True once nothing is left, False when a later poll has to continue.
    """
    for table_id, route in left.routes:
        delete_route(ec2, table_id, route)
    steps = (
        _remove_nats,
        _release_addresses,
        _remove_route_tables,
        _remove_subnets,
        _remove_gateways,
    )
    # all() stops at the first step that has to wait: each step needs the ones before it.
    # Within a step, every part is tried (the list), so that parts advance side by side.
    return all(step(ec2, left) for step in steps)


def _owner_problems(label: str, part: Mapping[str, object], scope: Scope) -> list[str]:
    problems = []
    owner = tag_value(part, OWNER_TAG_KEY)
    if owner is None:
        problems.append(f"{label} has no {OWNER_TAG_KEY} tag (expected {scope.owner_tag!r})")
    elif owner != scope.owner_tag:
        problems.append(f"{label} has {OWNER_TAG_KEY}={owner!r} (expected {scope.owner_tag!r})")
    # Parts created before the VPC tag existed do not carry it; the other checks cover them.
    vpc = tag_value(part, VPC_TAG_KEY)
    if vpc is not None and vpc != scope.vpc_id:
        problems.append(f"{label} has {VPC_TAG_KEY}={vpc!r} (expected {scope.vpc_id!r})")
    return problems


def _vpc_problems(label: str, actual: str | None, expected: str) -> list[str]:
    return [] if actual == expected else [f"{label} is in VPC {actual} (expected {expected})"]


def _attachments(gateway: InternetGatewayTypeDef) -> tuple[str, ...]:
    return tuple(
        attachment.get("VpcId", "")
        for attachment in gateway.get("Attachments", [])
        if attachment.get("State") != "detached"
    )


def _remove_nats(ec2: EC2Client, left: Remaining) -> bool:
    return all([_remove_nat(ec2, nat_id, state) for nat_id, state in left.nats])


def _remove_nat(ec2: EC2Client, nat_id: str, state: str) -> bool:
    if state == "deleted":
        return True
    if state not in _NAT_TO_DELETE:
        logger.info("NAT gateway %s is %s; waiting for deleted", nat_id, state)
        return False
    deleted = attempt(
        f"DeleteNatGateway {nat_id}",
        lambda: ec2.delete_nat_gateway(NatGatewayId=nat_id),
        gone=NAT_GONE,
    )
    # Accepted is not deleted: the address and the subnet stay busy until EC2 says "deleted".
    return deleted is Outcome.GONE


def _release_addresses(ec2: EC2Client, left: Remaining) -> bool:
    return all([_release_address(ec2, allocation_id) for allocation_id in left.allocation_ids])


def _release_address(ec2: EC2Client, allocation_id: str) -> bool:
    released = attempt(
        f"ReleaseAddress {allocation_id}",
        lambda: ec2.release_address(AllocationId=allocation_id),
        gone=ADDRESS_GONE,
        retry=ADDRESS_STILL_IN_USE,
    )
    return released is not Outcome.RETRY


def _remove_route_tables(ec2: EC2Client, left: Remaining) -> bool:
    return all([_remove_route_table(ec2, table_id, ids) for table_id, ids in left.route_tables])


def _remove_route_table(ec2: EC2Client, table_id: str, association_ids: tuple[str, ...]) -> bool:
    for association_id in association_ids:
        _disassociate(ec2, association_id)
    deleted = attempt(
        f"DeleteRouteTable {table_id}",
        lambda: ec2.delete_route_table(RouteTableId=table_id),
        gone=ROUTE_TABLE_GONE,
        retry=STILL_IN_USE,
    )
    return deleted is not Outcome.RETRY


def _disassociate(ec2: EC2Client, association_id: str) -> Outcome:
    return attempt(
        f"DisassociateRouteTable {association_id}",
        lambda: ec2.disassociate_route_table(AssociationId=association_id),
        gone=ASSOCIATION_GONE,
    )


def _remove_subnets(ec2: EC2Client, left: Remaining) -> bool:
    return all([_remove_subnet(ec2, subnet_id) for subnet_id in left.subnet_ids])


def _remove_subnet(ec2: EC2Client, subnet_id: str) -> bool:
    deleted = attempt(
        f"DeleteSubnet {subnet_id}",
        lambda: ec2.delete_subnet(SubnetId=subnet_id),
        gone=SUBNET_GONE,
        retry=STILL_IN_USE,
    )
    return deleted is not Outcome.RETRY


def _remove_gateways(ec2: EC2Client, left: Remaining) -> bool:
    return all([_remove_gateway(ec2, gateway_id, vpcs) for gateway_id, vpcs in left.gateways])


def _remove_gateway(ec2: EC2Client, gateway_id: str, vpc_ids: tuple[str, ...]) -> bool:
    for vpc_id in vpc_ids:
        if _detach(ec2, gateway_id, vpc_id) is Outcome.RETRY:
            return False
    deleted = attempt(
        f"DeleteInternetGateway {gateway_id}",
        lambda: ec2.delete_internet_gateway(InternetGatewayId=gateway_id),
        gone=GATEWAY_GONE,
        retry=STILL_IN_USE,
    )
    return deleted is not Outcome.RETRY


def _detach(ec2: EC2Client, gateway_id: str, vpc_id: str) -> Outcome:
    return attempt(
        f"DetachInternetGateway {gateway_id} from {vpc_id}",
        lambda: ec2.detach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id),
        gone=GATEWAY_GONE | NOT_ATTACHED,
        retry=STILL_IN_USE,
    )
