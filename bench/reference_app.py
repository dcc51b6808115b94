"""The reference app, transcribed from seed 000 (the build this project grew from): its
main.py as it is, run by Bottle's development server. Only the address differs: loopback and
a free port from the command line, instead of 0.0.0.0:8080.

    python bench/reference_app.py PORT       (AWS_XRAY_DAEMON_ADDRESS picks the daemon)
"""

import sys

from aws_xray_sdk.core import xray_recorder
from aws_xray_sdk.ext.bottle.middleware import XRayMiddleware
from bottle import Bottle, run

app = Bottle()

xray_recorder.configure(service="fa-074")
plugins = ("ECSPlugin",)
xray_recorder.configure(plugins=plugins)

app.install(XRayMiddleware(xray_recorder))


@app.route("/")  # type: ignore[untyped-decorator]
def hello() -> str:
    return "Hello X-Ray!"


if __name__ == "__main__":
    run(app=app, host="127.0.0.1", port=int(sys.argv[1]))
