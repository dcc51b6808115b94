"""The traced-fargate deployment: per-environment stacks composed from the construct library."""
