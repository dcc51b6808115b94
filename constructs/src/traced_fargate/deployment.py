"""How a :class:`~traced_fargate.TracedFargateService` replaces its tasks: one of two choices.

- :class:`RollingDeployment` (the default): new tasks start beside the old ones (up to
  200 %), old ones stop once the new are healthy; the circuit breaker rolls a failing
  deployment back.
- :class:`BlueGreenDeployment`: ECS native blue/green. A full set of new tasks starts in a
  second target group, the load balancer's production rule shifts to it at once, and the
  old tasks keep running through the bake time, so that a rollback is a shift back. It
  needs a load balancer (``NewLoadBalancer`` or ``SharedListener``).

What blue/green changes, and why:

- The production rule is a :class:`~traced_fargate.ProductionListenerRule`, not an
  ``elbv2.ApplicationListenerRule``: ECS rewrites the rule's action on every deployment,
  and CloudFormation would write its own back whenever the rule changed (aws-cdk#36649).
  aws-cdk-lib's ``AlternateTarget`` takes only an ``ApplicationListenerRule``, so the
  service's ``AdvancedConfiguration`` is set on the L1 ``CfnService`` (escape hatch).
- ECS's infrastructure role gets an inline policy scoped to this service's two target
  groups and its rule, not the managed ``AmazonECSInfrastructureRolePolicyForLoadBalancers``
  (which allows every target group and listener of the account).
- Request-count scaling is left out: ALB's per-target request metric is per target group,
  and the serving one alternates. CPU tracking stays. The alarms watch both target groups.
- A ``cdk deploy`` that starts a deployment returns after the bake time: CloudFormation
  waits for the deployment to finish.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_cdk import Duration

BAKE_TIME_MINUTES = (0, 1440)
"""What ECS accepts as a bake time, in minutes."""
DEFAULT_BAKE_MINUTES = 5


@dataclass(frozen=True)
class RollingDeployment:
    """Rolling replacement with the deployment circuit breaker and rollback."""


@dataclass(frozen=True)
class BlueGreenDeployment:
    """ECS native blue/green behind the service's load balancer.

    :param bake_time: how long the old tasks keep running after production traffic has
        shifted, for an instant rollback, 0-1440 minutes. Default: 5 minutes.
    """

    bake_time: Duration = field(default_factory=lambda: Duration.minutes(DEFAULT_BAKE_MINUTES))
    """How long the old revision stays after the shift."""


Deployment = RollingDeployment | BlueGreenDeployment
"""One of :class:`RollingDeployment` or :class:`BlueGreenDeployment`."""


def deployment_problems(deployment: object, *, behind_load_balancer: bool) -> list[str]:
    """What is wrong with ``deployment`` for a service with or without a load balancer."""
    if not isinstance(deployment, RollingDeployment | BlueGreenDeployment):
        return [
            f"deployment: {deployment!r} is not allowed; expected RollingDeployment() or "
            "BlueGreenDeployment(...)"
        ]
    if not isinstance(deployment, BlueGreenDeployment):
        return []
    problems = []
    if not behind_load_balancer:
        problems.append(
            "deployment: BlueGreenDeployment needs a load balancer to shift traffic on; "
            "with ServiceDiscovery use RollingDeployment()"
        )
    bake = deployment.bake_time
    if not isinstance(bake, Duration):
        problems.append(f"deployment.bake_time: {bake!r} is not allowed; expected a Duration")
    elif not bake.is_unresolved():
        minutes = bake.to_seconds() / 60
        low, high = BAKE_TIME_MINUTES
        if minutes != int(minutes) or not low <= minutes <= high:
            problems.append(
                f"deployment.bake_time: {bake.to_seconds()} s is not allowed; expected "
                f"whole minutes from {low} to {high}"
            )
    return problems
