"""The sample web service that runs in the app container of the traced Fargate task."""

HEALTH_PATH = "/healthz"
DEFAULT_PORT = 8080
