"""The WSGI entry point, `traced_app.wsgi:app`: the service the environment describes.

Each server worker process imports it once: logging, then the tracing SDK that TRACING_SDK
selects (settings.py lists every variable), then the routes of the ROLE.
"""

from __future__ import annotations

import logging
import os
import sys

from .app import create_app
from .settings import Settings
from .tracing import build_tracer

LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def configure_logging(level_name: str) -> None:
    level = logging.getLevelName(level_name.upper())
    if not isinstance(level, int):
        level = logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr, format=LOG_FORMAT)
    # Below WARNING the SDKs log a line for every request (which rule sampled it, the whole
    # segment sent, every export); keep that for explicit debugging.
    sdk_level = level if level <= logging.DEBUG else max(level, logging.WARNING)
    for name in ("aws_xray_sdk", "opentelemetry"):
        logging.getLogger(name).setLevel(sdk_level)


settings = Settings.from_environ(os.environ)
configure_logging(settings.log_level)
# The OpenTelemetry provider flushes its last spans at exit by itself; X-Ray buffers nothing.
tracer = build_tracer(settings)
app = create_app(tracer, settings)
