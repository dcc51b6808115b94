"""Constructs for a traced ECS Fargate service in a closed VPC."""

from traced_fargate.errors import InvalidPropsError

__all__ = ["InvalidPropsError"]
