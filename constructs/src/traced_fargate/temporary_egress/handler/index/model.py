"""The events' properties and physical ids, parsed and checked before any EC2 call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .contract import (
    AVAILABILITY_ZONE,
    DATA_KEYS,
    EGRESS_RESOURCE_TYPE,
    GENERATION,
    OWNER_TAG,
    PUBLIC_SUBNET_CIDR,
    ROUTE_TABLE_IDS,
    TEARDOWN_RESOURCE_TYPE,
    VPC_ID,
)

_ID_PREFIXES = ("nat-", "eipalloc-", "igw-", "subnet-", "rtb-")
_EGRESS = "egress"
_OPENING = "egress-opening"
_TEARDOWN = "teardown"


class EgressError(Exception):
    """A request this handler refuses or cannot complete; the message says why."""


class OwnershipError(EgressError):
    """A resource named in the request is not this egress's: nothing was changed."""


@dataclass(frozen=True)
class Scope:
    """Where an egress lives and whose it is: every ownership check compares against this."""

    vpc_id: str
    owner_tag: str
    route_table_ids: tuple[str, ...]

    def merged(self, other: Scope) -> Scope | None:
        """One scope for both, when they are the same egress's (same VPC and owner)."""
        if (self.vpc_id, self.owner_tag) != (other.vpc_id, other.owner_tag):
            return None
        tables = tuple(sorted({*self.route_table_ids, *other.route_table_ids}))
        return Scope(self.vpc_id, self.owner_tag, tables)


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
        spec = cls(
            scope=_parse_scope(props, problems),
            public_subnet_cidr=_text(props, PUBLIC_SUBNET_CIDR, problems),
            availability_zone=_text(props, AVAILABILITY_ZONE, problems),
            generation=_optional_text(props, GENERATION, problems),
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
        """``egress:<nat>:<eipalloc>:<igw>:<subnet>:<rtb>``: Update and Delete events carry
        no ``Data``, and the ids must stay known after the teardown removed the parts."""
        return ":".join((_EGRESS, *self.as_tuple()))

    def data(self) -> dict[str, str]:
        return dict(zip(DATA_KEYS, self.as_tuple(), strict=True))

    @classmethod
    def from_properties(cls, props: Mapping[str, Any], problems: list[str]) -> EgressIds:
        ids = [_text(props, key, problems) for key in DATA_KEYS]
        for key, value, prefix in zip(DATA_KEYS, ids, _ID_PREFIXES, strict=True):
            if value and not value.startswith(prefix):
                problems.append(f"{key} must start with {prefix!r}, got {value!r}")
        return cls(*ids)


@dataclass(frozen=True)
class Opening:
    """The physical id of an egress whose Create has not completed yet.

    It names the request whose tags the parts carry: if the Create fails from here on,
    CloudFormation follows it with a Delete of this id, and that Delete finds them by the tag.
    """

    request_id: str

    @property
    def physical_id(self) -> str:
        return f"{_OPENING}:{self.request_id}"


def parse_egress_physical_id(physical_id: object) -> EgressIds | Opening:
    kind, _, rest = str(physical_id).partition(":")
    ids = rest.split(":")
    if kind == _EGRESS and _valid_ids(ids):
        return EgressIds(*ids)
    if kind == _OPENING and rest:
        return Opening(rest)
    raise EgressError(
        f"{physical_id!r} is not a physical id of {EGRESS_RESOURCE_TYPE}; expected "
        f"{_EGRESS}:<nat-id>:<eipalloc-id>:<igw-id>:<subnet-id>:<rtb-id> or "
        f"{_OPENING}:<request-id>"
    )


def teardown_physical_id(ids: EgressIds) -> str:
    return f"{_TEARDOWN}:{ids.nat_gateway_id}"


def parse_teardown(props: Mapping[str, Any]) -> tuple[Scope, EgressIds]:
    """The properties of ``Custom::TemporaryEgressTeardown``: where, whose, and which ids."""
    problems: list[str] = []
    scope = _parse_scope(props, problems)
    ids = EgressIds.from_properties(props, problems)
    _raise_if_problems(TEARDOWN_RESOURCE_TYPE, problems)
    return scope, ids


def properties(event: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    props = event.get(key)
    if not isinstance(props, Mapping):
        raise EgressError(f"event has no {key}")
    return props


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
    tables = props.get(ROUTE_TABLE_IDS)
    if not isinstance(tables, list) or not all(isinstance(t, str) and t for t in tables):
        problems.append(f"{ROUTE_TABLE_IDS} must be a list of route table ids, got {tables!r}")
        tables = []
    return Scope(
        vpc_id=_text(props, VPC_ID, problems),
        owner_tag=_text(props, OWNER_TAG, problems),
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
