"""Opening: one idempotent find-or-create path for every part, used by Create and re-open.

Each poll of a request describes the owner's parts in the VPC (``inventory.discover``)
and then, in order:

1. refuses when the egress could not work: an isolated route table missing, in another VPC,
   or routing ``0.0.0.0/0`` to something not ours; an internet gateway not ours attached;
2. removes every part of the owner that this request did not create (the egress being
   replaced, or what a request that died left behind); a poll that removed anything ends
   there, so each later step starts from what EC2 shows;
3. finds this request's part by its tags or creates it, for each part in turn: internet
   gateway, its attachment, subnet, route table, its ``0.0.0.0/0`` route, its association,
   Elastic IP, NAT gateway; then, once the NAT is available, the isolated tables' routes.

A poll that stops anywhere (a crash, a timeout) leaves only tagged parts, which the next
poll finds. When opening fails, nothing is removed here: with a physical id returned,
CloudFormation follows the failure with a Delete (after a Create) or with the update's
rollback (after a re-open), and that removes everything this request created.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import parts
from .closing import Target, advance, close_step, plan
from .contract import OWNER_TAG_KEY
from .ec2 import DEFAULT_ROUTE, default_route, route_target, tag_value
from .inventory import Inventory, discover
from .model import EgressError, EgressIds

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import (
        AddressTypeDef,
        InternetGatewayTypeDef,
        NatGatewayTypeDef,
        RouteTableTypeDef,
        SubnetTypeDef,
    )

    from .model import EgressSpec, Scope

logger = logging.getLogger(__name__)

# Which of a request's NAT gateways to keep, should EC2 list more than one.
_NAT_PREFERENCE = {"available": 0, "pending": 1, "failed": 2, "deleting": 3, "deleted": 4}


@dataclass(frozen=True)
class Mine:
    """The parts one request created, at most one of each; absent ones are still to create."""

    nat: NatGatewayTypeDef | None = None
    address: AddressTypeDef | None = None
    gateway: InternetGatewayTypeDef | None = None
    subnet: SubnetTypeDef | None = None
    route_table: RouteTableTypeDef | None = None

    def ids(self) -> frozenset[str]:
        ids = (
            self.nat.get("NatGatewayId") if self.nat else None,
            self.address.get("AllocationId") if self.address else None,
            self.gateway.get("InternetGatewayId") if self.gateway else None,
            self.subnet.get("SubnetId") if self.subnet else None,
            self.route_table.get("RouteTableId") if self.route_table else None,
        )
        return frozenset(i for i in ids if i)


def preflight(ec2: EC2Client, spec: EgressSpec) -> None:
    """Refuse, before creating anything, an egress that could not work."""
    found = discover(ec2, spec.scope, tagged=True, attached=True)
    if problems := conflicts(spec.scope, found):
        raise EgressError(
            f"Cannot open an egress for {spec.scope.owner_tag!r} in {spec.scope.vpc_id}; "
            f"nothing was created: {'; '.join(problems)}"
        )


def open_step(
    ec2: EC2Client,
    spec: EgressSpec,
    request: str,
    replaced: tuple[Scope, EgressIds] | None = None,
) -> EgressIds | None:
    """One poll of opening for ``request``: the egress's ids once it is open, else None.

    :param replaced: the scope and ids of the egress this one replaces (a re-open); its
        parts are removed first, as are all other parts of the owner in the VPC.
    """
    scope, named = spec.scope, None
    if replaced is not None:
        old_scope, old_ids = replaced
        merged = scope.merged(old_scope)
        if merged is None:  # another VPC or owner: close the old egress on its own terms
            if not close_step(ec2, Target(old_scope, named=old_ids)):
                return None
        else:
            scope, named = merged, old_ids
    found = discover(ec2, scope, tagged=True, named=named, attached=True)
    mine = choose(found.of_request(request), spec.scope.vpc_id)
    others = plan(scope, found.without(mine.ids()), f"what request {request} replaces", named)
    if problems := conflicts(spec.scope, found):
        raise EgressError(
            f"Cannot open the egress of request {request} for {scope.owner_tag!r} in "
            f"{scope.vpc_id}: {'; '.join(problems)}"
        )
    if not others.empty:
        logger.info("Removing the owner's other egress parts first: %s", others)
        advance(ec2, others)
        return None
    return _build(ec2, spec, request, mine, found)


def conflicts(scope: Scope, found: Inventory) -> list[str]:
    """Why ``0.0.0.0/0`` through a new NAT could not work in ``scope``, if it could not."""
    tables = {t.get("RouteTableId", ""): t for t in found.isolated}
    problems = [
        f"route table {missing} (RouteTableIds) not found"
        for missing in scope.route_table_ids
        if missing not in tables
    ]
    owned_nats = {n.get("NatGatewayId") for n in found.nats}
    for table_id in scope.route_table_ids:
        table = tables.get(table_id)
        if table is None:
            continue
        label = f"route table {table_id}"
        if table.get("VpcId") != scope.vpc_id:
            problems.append(f"{label} is in VPC {table.get('VpcId')} (expected {scope.vpc_id})")
        route = default_route(table)
        if route is not None and route.get("NatGatewayId") not in owned_nats:
            problems.append(
                f"{label} already routes {DEFAULT_ROUTE} to {route_target(route)} "
                f"({route.get('State', 'unknown state')}); remove that route or leave the "
                "table out of RouteTableIds"
            )
    owned_gateways = {g.get("InternetGatewayId") for g in found.gateways}
    for gateway in found.attached:
        if gateway.get("InternetGatewayId") not in owned_gateways:
            problems.append(
                f"{scope.vpc_id} already has internet gateway {gateway.get('InternetGatewayId')} "
                f"attached ({OWNER_TAG_KEY}={tag_value(gateway, OWNER_TAG_KEY)!r}); a VPC "
                "takes one"
            )
    return problems


def choose(mine: Inventory, vpc_id: str) -> Mine:
    """One part of each kind from a request's parts, preferring the ones in use."""
    nat = min(
        mine.nats,
        key=lambda n: (_NAT_PREFERENCE.get(n.get("State", ""), 9), n.get("NatGatewayId", "")),
        default=None,
    )
    used = nat.get("NatGatewayAddresses", []) if nat else []
    used_ids = {a.get("AllocationId") for a in used}
    address = next((a for a in mine.addresses if a.get("AllocationId") in used_ids), None)
    subnet = next(
        (s for s in mine.subnets if nat and s.get("SubnetId") == nat.get("SubnetId")), None
    )
    subnet = subnet or next(iter(mine.subnets), None)
    subnet_id = subnet.get("SubnetId") if subnet else None
    table = next((t for t in mine.route_tables if _associated(t, subnet_id)), None)
    gateway = next((g for g in mine.gateways if _attached(g, vpc_id)), None)
    return Mine(
        nat=nat,
        address=address or next(iter(mine.addresses), None),
        gateway=gateway or next(iter(mine.gateways), None),
        subnet=subnet,
        route_table=table or next(iter(mine.route_tables), None),
    )


def _build(
    ec2: EC2Client, spec: EgressSpec, request: str, mine: Mine, found: Inventory
) -> EgressIds | None:
    """Find or create each part in turn; the ids once the NAT is available and routed."""
    scope = spec.scope
    gateway = mine.gateway or parts.create_gateway(ec2, scope, request)
    gateway_id = gateway.get("InternetGatewayId", "")
    if not _attached(gateway, scope.vpc_id) and not parts.attach(ec2, gateway_id, scope.vpc_id):
        return None
    subnet_id = (
        mine.subnet.get("SubnetId", "") if mine.subnet else parts.create_subnet(ec2, spec, request)
    )
    table = mine.route_table or parts.create_route_table(ec2, scope, request)
    table_id = table.get("RouteTableId", "")
    if not parts.route_to_gateway(ec2, table, gateway_id):
        return None
    if not _associated(table, subnet_id) and not parts.associate(ec2, table_id, subnet_id):
        return None
    if mine.nat is not None:  # then its address is the one it uses
        nat = mine.nat
        allocation_id = next(
            (a.get("AllocationId", "") for a in nat.get("NatGatewayAddresses", [])), ""
        )
    else:
        allocation_id = (
            mine.address.get("AllocationId", "")
            if mine.address
            else parts.allocate(ec2, scope, request)
        )
        nat = parts.create_nat(ec2, scope, request, subnet_id, allocation_id)
    nat_id, state = nat.get("NatGatewayId", ""), nat.get("State", "")
    logger.info("NAT gateway %s is %s", nat_id, state)
    if state == "pending":
        return None
    if state != "available":
        raise EgressError(f"Could not open the egress of request {request}: {_nat_failure(nat)}")
    if not _route_isolated_tables(ec2, spec.scope, found, nat_id):
        return None
    ids = EgressIds(nat_id, allocation_id, gateway_id, subnet_id, table_id)
    logger.info("Egress %s is open", ids.physical_id)
    return ids


def _attached(gateway: InternetGatewayTypeDef, vpc_id: str) -> bool:
    return any(
        a.get("VpcId") == vpc_id and a.get("State") not in ("detaching", "detached")
        for a in gateway.get("Attachments", [])
    )


def _associated(table: RouteTableTypeDef, subnet_id: str | None) -> bool:
    return any(a.get("SubnetId") == subnet_id for a in table.get("Associations", []))


def _route_isolated_tables(ec2: EC2Client, scope: Scope, found: Inventory, nat_id: str) -> bool:
    results = [
        parts.route_to_nat(ec2, table.get("RouteTableId", ""), nat_id)
        for table in found.isolated
        # conflicts() and the removal of the other parts leave only a route to this NAT.
        if table.get("RouteTableId") in scope.route_table_ids and default_route(table) is None
    ]
    return all(results)


def _nat_failure(nat: NatGatewayTypeDef) -> str:
    label = f"NAT gateway {nat.get('NatGatewayId')}"
    if message := nat.get("FailureMessage"):
        return f"{label} failed ({nat.get('FailureCode', 'no failure code')}): {message}"
    return f"{label} is {nat.get('State', 'in an unknown state')}"
