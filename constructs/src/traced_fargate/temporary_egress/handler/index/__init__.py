"""The egress custom resources' function: Lambda runs ``index.on_event`` and ``index.is_complete``.

The function's code is the folder above this package, so the package is ``index`` there
(and ``traced_fargate.temporary_egress.handler.index`` in the library). One concern a module:

- ``contract``: resource types, property, tag and data keys; the construct imports it too;
- ``model``: the events' properties and physical ids, checked before any EC2 call;
- ``ec2``: EC2 calls and what their error codes mean;
- ``inventory``: what EC2 shows of an egress, by its tags and by the ids a request names;
- ``opening`` and ``closing``: one poll of each, idempotent, never waiting;
- ``dispatch``: which action each event gets (the table in the docstring one level up).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

logging.getLogger(__name__).setLevel(logging.INFO)


def on_event(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """Provider framework ``onEventHandler``."""
    # Imported on the first call: the construct imports this package's contract when it
    # synthesizes, where boto3 need not be installed.
    from .dispatch import client, handle_on_event  # noqa: PLC0415

    return handle_on_event(client(), event)


def is_complete(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """Provider framework ``isCompleteHandler``."""
    from .dispatch import client, handle_is_complete  # noqa: PLC0415

    return handle_is_complete(client(), event)
