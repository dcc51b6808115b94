"""Production entry point: gunicorn serves `traced_app.wsgi:app`.

Environment: SERVICE_NAME (segment name), AWS_XRAY_DAEMON_ADDRESS (default 127.0.0.1:2000),
LOG_LEVEL (default info), and the SDK's own AWS_XRAY_SDK_ENABLED, AWS_XRAY_TRACING_NAME,
AWS_XRAY_CONTEXT_MISSING.
"""

from __future__ import annotations

import logging
import os
import sys

from aws_xray_sdk.core import patch_all, xray_recorder

from .app import create_app
from .tracing import TracingSettings, configure_recorder


def configure_logging(level_name: str) -> None:
    level = logging.getLevelName(level_name.upper())
    if not isinstance(level, int):
        level = logging.INFO
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
    )
    # Below WARNING the SDK logs a line for every request (which rule sampled it, the whole
    # segment sent); keep that for explicit debugging.
    sdk_level = level if level <= logging.DEBUG else max(level, logging.WARNING)
    logging.getLogger("aws_xray_sdk").setLevel(sdk_level)


configure_logging(os.environ.get("LOG_LEVEL", "info"))
configure_recorder(xray_recorder, TracingSettings.from_environ(os.environ))
patch_all()
app = create_app(xray_recorder)
