"""Consumer apps of the traced_fargate library."""
