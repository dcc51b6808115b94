"""The production listener rule's function: Lambda runs ``index.on_event``.

The function's code is the folder above this package, so the package is ``index`` there
(and ``traced_fargate.production_listener_rule.handler.index`` in the library):

- ``contract``: the resource type, property and attribute keys; the construct imports it;
- ``rule``: the requests as plain functions of an Elastic Load Balancing client.
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
    from .rule import client, handle  # noqa: PLC0415

    return handle(client(), event)
