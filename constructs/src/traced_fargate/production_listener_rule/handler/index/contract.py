"""What the construct and the handler agree on; both import it, neither copies it.

Nothing here imports anything: the construct reads these names when it synthesizes, where
the handler's own dependencies (boto3) need not be installed.
"""

from __future__ import annotations

RESOURCE_TYPE = "Custom::ProductionListenerRule"

# --- resource properties -------------------------------------------------------------------
LISTENER_ARN = "ListenerArn"
PRIORITY = "Priority"
CONDITIONS = "Conditions"
"""In the Elastic Load Balancing API's shape (``Field``, ``PathPatternConfig``, ...)."""
TARGET_GROUP_ARNS = "TargetGroupArns"
"""Two: the one the rule forwards to at create, and the alternate one."""

# --- attributes ----------------------------------------------------------------------------
RULE_ARN = "RuleArn"
