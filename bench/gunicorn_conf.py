"""The app container's previous server, kept for the benchmark's side-by-side: gunicorn with
gthread workers, 2 processes x 4 threads, as the image ran it before Granian.

    gunicorn --config bench/gunicorn_conf.py traced_app.wsgi:app      (cwd: sample_app/)

The settings are the ones the image had, but for the access log: the app now writes its own
line per request, so gunicorn's is off (it would log every request twice).
"""

from __future__ import annotations

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8080')}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
graceful_timeout = 20
timeout = 30
keepalive = 75
worker_tmp_dir = "/tmp"
control_socket_disable = True
loglevel = os.environ.get("LOG_LEVEL", "info")
errorlog = "-"
accesslog = None
