"""gunicorn settings: `gunicorn --config python:traced_app.gunicorn_conf traced_app.wsgi:app`.

Environment: PORT (default 8080), WEB_CONCURRENCY (worker processes, default 2),
WEB_THREADS (threads per worker, default 4), LOG_LEVEL (default info); gunicorn itself reads
FORWARDED_ALLOW_IPS and GUNICORN_CMD_ARGS.
"""

from __future__ import annotations

import os
from typing import Any

from gunicorn import glogging

from . import DEFAULT_PORT, HEALTH_PATH


class Logger(glogging.Logger):
    """gunicorn's logger, minus the access-log lines of health checks, which the load
    balancer and ECS send every few seconds per task."""

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if environ.get("PATH_INFO") != HEALTH_PATH:
            super().access(resp, req, environ, request_time)


bind = f"0.0.0.0:{os.environ.get('PORT', DEFAULT_PORT)}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))

# ECS sends SIGTERM, then SIGKILL after the task's stop timeout (30 s): in-flight requests
# get 20 s to finish, which leaves the arbiter time to reap its workers and exit first.
graceful_timeout = 20
timeout = 30
# Longer than the load balancer's idle timeout (60 s by default), so that the balancer, not
# gunicorn, closes idle connections: the other way round, a request racing the close gets a 502.
keepalive = 75

# The root filesystem is read-only; /tmp is the task's writable volume. The heartbeat file of
# each worker lives there, and the control socket (under $HOME by default) is not needed.
worker_tmp_dir = "/tmp"  # noqa: S108
control_socket_disable = True

logger_class = Logger
loglevel = os.environ.get("LOG_LEVEL", "info")
errorlog = "-"
accesslog = "-"
# Traced responses carry X-Amzn-Trace-Id (Root=<trace id>): logging it leads from an access
# log line to the request's trace, when the request was sampled.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s" %({x-amzn-trace-id}o)s'
