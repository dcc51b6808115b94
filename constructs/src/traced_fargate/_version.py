"""The version of the traced-fargate-constructs distribution (read by hatch at build time)."""

__version__ = "0.2.0"
