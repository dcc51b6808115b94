"""Which action each event gets: the table of the handler package's docstring, as code."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from . import closing, opening
from .contract import EGRESS_RESOURCE_TYPE, TEARDOWN_RESOURCE_TYPE
from .model import (
    EgressError,
    EgressIds,
    EgressSpec,
    Opening,
    parse_egress_physical_id,
    parse_teardown,
    properties,
    teardown_physical_id,
)

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

    _Action = Callable[[EC2Client, Mapping[str, Any]], dict[str, Any]]

logger = logging.getLogger(__name__)

# --- Custom::TemporaryEgress ---------------------------------------------------------------


def _egress_create(ec2: EC2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    spec = EgressSpec.parse(properties(event, "ResourceProperties"))
    # Read-only: a refusal here leaves nothing behind. Everything is created by is_complete,
    # after this physical id exists, so that CloudFormation follows any failure with a Delete.
    opening.preflight(ec2, spec)
    return {"PhysicalResourceId": Opening(event["RequestId"]).physical_id}


def _egress_open(ec2: EC2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    spec = EgressSpec.parse(properties(event, "ResourceProperties"))
    opened = opening.open_step(ec2, spec, _opening(event).request_id)
    return _opened(opened)


def _egress_update(ec2: EC2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    physical_id = event["PhysicalResourceId"]
    ids, spec, old = _update(event)
    if spec == old:
        logger.info("No property of egress %s changed; keeping it", physical_id)
        return {"PhysicalResourceId": physical_id, "Data": ids.data()}
    logger.info("Re-opening: egress %s is replaced, closed first", physical_id)
    return {"PhysicalResourceId": physical_id}


def _egress_reopen(ec2: EC2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    ids, spec, old = _update(event)
    if spec == old:
        return {"IsComplete": True, "Data": ids.data()}
    return _opened(opening.open_step(ec2, spec, event["RequestId"], replaced=(old.scope, ids)))


def _egress_delete(ec2: EC2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    _egress_target(event)  # refuse a malformed event before the provider starts polling
    return {"PhysicalResourceId": event["PhysicalResourceId"]}


def _egress_close(ec2: EC2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    return {"IsComplete": closing.close_step(ec2, _egress_target(event))}


def _opening(event: Mapping[str, Any]) -> Opening:
    parsed = parse_egress_physical_id(event.get("PhysicalResourceId"))
    if not isinstance(parsed, Opening):
        raise EgressError(f"Create of {parsed.physical_id} has an egress's physical id already")
    return parsed


def _update(event: Mapping[str, Any]) -> tuple[EgressIds, EgressSpec, EgressSpec]:
    parsed = parse_egress_physical_id(event["PhysicalResourceId"])
    if not isinstance(parsed, EgressIds):
        raise EgressError(f"{parsed.physical_id} never opened; it cannot be updated")
    spec = EgressSpec.parse(properties(event, "ResourceProperties"))
    return parsed, spec, EgressSpec.parse(properties(event, "OldResourceProperties"))


def _egress_target(event: Mapping[str, Any]) -> closing.Target:
    scope = EgressSpec.parse(properties(event, "ResourceProperties")).scope
    parsed = parse_egress_physical_id(event["PhysicalResourceId"])
    if isinstance(parsed, Opening):
        # A Create that failed after its physical id: what its request created, by its tags.
        return closing.Target(scope, tagged=True, request=parsed.request_id)
    # What this egress names, and nothing else of the owner: CloudFormation also deletes the
    # physical id that a re-open replaced, and that Delete must leave the new egress alone.
    return closing.Target(scope, named=parsed)


def _opened(ids: EgressIds | None) -> dict[str, Any]:
    if ids is None:
        return {"IsComplete": False}
    return {"IsComplete": True, "PhysicalResourceId": ids.physical_id, "Data": ids.data()}


# --- Custom::TemporaryEgressTeardown -------------------------------------------------------


def _teardown_create(ec2: EC2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    _, ids = parse_teardown(properties(event, "ResourceProperties"))
    return {"PhysicalResourceId": teardown_physical_id(ids)}


def _teardown_update(ec2: EC2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    parse_teardown(properties(event, "ResourceProperties"))
    return {"PhysicalResourceId": event["PhysicalResourceId"]}


def _teardown_close(ec2: EC2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    scope, ids = parse_teardown(properties(event, "ResourceProperties"))
    # The named egress and anything else of the owner in the VPC: closed means closed.
    return {"IsComplete": closing.close_step(ec2, closing.Target(scope, named=ids, tagged=True))}


def _keep_physical_id(ec2: EC2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    return {"PhysicalResourceId": event["PhysicalResourceId"]}


def _complete(ec2: EC2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    return {"IsComplete": True}


# (resource type, request type) -> (on_event, is_complete)
_ACTIONS: Mapping[tuple[str, str], tuple[_Action, _Action]] = {
    (EGRESS_RESOURCE_TYPE, "Create"): (_egress_create, _egress_open),
    (EGRESS_RESOURCE_TYPE, "Update"): (_egress_update, _egress_reopen),
    (EGRESS_RESOURCE_TYPE, "Delete"): (_egress_delete, _egress_close),
    (TEARDOWN_RESOURCE_TYPE, "Create"): (_teardown_create, _teardown_close),
    (TEARDOWN_RESOURCE_TYPE, "Update"): (_teardown_update, _teardown_close),
    # The egress's own Delete removes whatever is still there.
    (TEARDOWN_RESOURCE_TYPE, "Delete"): (_keep_physical_id, _complete),
}


def _actions_for(event: Mapping[str, Any]) -> tuple[_Action, _Action]:
    resource_type = event.get("ResourceType")
    request_type = event.get("RequestType")
    if resource_type not in (EGRESS_RESOURCE_TYPE, TEARDOWN_RESOURCE_TYPE):
        raise EgressError(
            f"unsupported ResourceType {resource_type!r}; expected one of "
            f"{EGRESS_RESOURCE_TYPE}, {TEARDOWN_RESOURCE_TYPE}"
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
    return _ACTIONS[(resource_type, request_type)]


def handle_on_event(ec2: EC2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    """``on_event`` with the EC2 client passed in."""
    return _actions_for(event)[0](ec2, event)


def handle_is_complete(ec2: EC2Client, event: Mapping[str, Any]) -> dict[str, Any]:
    """``is_complete`` with the EC2 client passed in."""
    return _actions_for(event)[1](ec2, event)


@functools.cache
def client() -> EC2Client:
    """The function's EC2 client, made once per execution environment."""
    return boto3.client("ec2", config=Config(retries={"mode": "standard"}))
