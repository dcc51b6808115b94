"""How requests reach a :class:`~traced_fargate.TracedFargateService`: one of three choices.

- :class:`NewLoadBalancer`: the service gets an internal ALB of its own (the default).
- :class:`SharedListener`: a rule on a listener you already have, so several services
  share one load balancer (route by path or host).
- :class:`ServiceDiscovery`: no load balancer; other services reach the tasks by a
  Cloud Map private DNS name (``<name>.<namespace>``), e.g. a backend behind a frontend.

Why Cloud Map DNS rather than ECS Service Connect for the last: Service Connect adds an
Envoy proxy container to every task (AWS recommends reserving 256 cpu units and 64 MiB
for it, which on a 0.5 vCPU task is half the cpu), and a proxy hop that neither the X-Ray
SDK nor OpenTelemetry sees; it also needs every client to join the namespace. Cloud Map
A records need nothing in the task and nothing in the client beyond the VPC's resolver,
which a closed VPC has without any endpoint. The cost is DNS semantics: clients resolve
task IPs themselves and keep them for the record's TTL (10 s by default here), and there
is no proxy-level retry or outlier detection. Neither option was measured on AWS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_servicediscovery as servicediscovery

from traced_fargate._props import has_attributes, int_problems, kind_problems, str_problems
from traced_fargate.internal_load_balancer import DEFAULT_SSL_POLICY, is_listener

LISTENER_PRIORITY = (1, 50000)
"""What an ALB accepts as a listener rule priority."""


@dataclass(frozen=True)
class NewLoadBalancer:
    """A new :class:`~traced_fargate.InternalLoadBalancer` for this service alone.

    :param certificate: an ACM certificate: HTTPS on 443 (TLS 1.2+), HTTP redirected.
        Default: none, HTTP on 80 (internal traffic only).
    :param ssl_policy: the HTTPS policy. Default: ``ELBSecurityPolicy-TLS13-1-2-2021-06``.
    :param access_logs: write access logs. Default: on when the stack's region is known.
    :param access_logs_bucket: where access logs go. Default: a new bucket.
    :param idle_timeout: connection idle timeout. Default: 60 s.
    :param removal_policy: applies to the access-log bucket created. Default: RETAIN.
    """

    certificate: acm.ICertificate | None = None
    """HTTPS certificate; None serves HTTP on 80."""
    ssl_policy: elbv2.SslPolicy = DEFAULT_SSL_POLICY
    """The HTTPS listener's security policy."""
    access_logs: bool | None = None
    """Whether to write access logs; None: when the region is known."""
    access_logs_bucket: s3.IBucket | None = None
    """Where access logs go; None: a new bucket."""
    idle_timeout: Duration | None = None
    """Connection idle timeout; None: 60 s."""
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN
    """Applies to the access-log bucket created."""


@dataclass(frozen=True)
class SharedListener:
    """A rule on an existing ALB listener that forwards matching requests to the service.

    :param listener: the listener, e.g. ``InternalLoadBalancer.listener`` or one imported
        with ``ApplicationListener.from_lookup``/``from_application_listener_attributes``.
    :param priority: the rule's priority, 1-50000, unique on the listener.
    :param conditions: when the rule matches: ``ListenerCondition.path_patterns([...])``
        and/or ``ListenerCondition.host_headers([...])``; at least one.
    :param port: the listener's port, which
        :meth:`~traced_fargate.TracedFargateService.allow_http_from` opens on the load
        balancer's security group. Default: none; ``allow_http_from`` then refuses, and
        clients are granted on the load balancer itself (e.g.
        :meth:`~traced_fargate.InternalLoadBalancer.allow_from`, which also opens the
        HTTP redirect port).
    """

    listener: elbv2.IApplicationListener
    """The listener the rule is added to."""
    priority: int
    """The rule's priority, unique on the listener."""
    conditions: Sequence[elbv2.ListenerCondition] = field(default_factory=tuple)
    """When the rule matches."""
    port: int | None = None
    """The listener's port, for ``allow_http_from``."""

    def problems(self) -> list[str]:
        """Problems of these props, one line each, named ``ingress.<prop>``."""
        problems = kind_problems(
            "ingress.listener", self.listener, is_listener, "an elbv2.IApplicationListener"
        )
        low, high = LISTENER_PRIORITY
        problems += int_problems("ingress.priority", self.priority, low, high)
        if self.port is not None:
            problems += int_problems("ingress.port", self.port, 1, 65535)
        conditions = self.conditions
        if isinstance(conditions, str) or not isinstance(conditions, Sequence) or not conditions:
            problems.append(
                "ingress.conditions: a shared listener needs at least one condition, e.g. "
                "ListenerCondition.path_patterns(['/api/*']) or host_headers([...])"
            )
        else:
            problems += [
                f"ingress.conditions[{i}]: expected an elbv2.ListenerCondition, got "
                f"{type(c).__name__}"
                for i, c in enumerate(conditions)
                if not isinstance(c, elbv2.ListenerCondition)
            ]
        return problems


@dataclass(frozen=True)
class ServiceDiscovery:
    """No load balancer: the tasks register A records ``<name>.<namespace>`` in Cloud Map.

    :param name: the DNS label of the service, e.g. ``"backend"``.
    :param namespace: a Cloud Map private DNS namespace in the service's VPC. Default:
        the cluster's default namespace (``cluster.add_default_cloud_map_namespace``).
    :param dns_ttl: how long clients may cache the records. Default: 10 s.
    """

    name: str
    """The DNS label of the service."""
    namespace: servicediscovery.INamespace | None = None
    """The Cloud Map namespace; None: the cluster's default."""
    dns_ttl: Duration = field(default_factory=lambda: Duration.seconds(10))
    """How long clients may cache the A records."""

    def problems(self) -> list[str]:
        """Problems of these props, one line each, named ``ingress.<prop>``."""
        problems = str_problems("ingress.name", self.name)
        if not problems and not _is_dns_label(self.name):
            problems.append(
                f"ingress.name: {self.name!r} is not a DNS label; allowed: 1-63 lowercase "
                "letters, digits and inner hyphens"
            )
        problems += kind_problems(
            "ingress.namespace",
            self.namespace,
            has_attributes("namespace_name", "namespace_id"),
            "a servicediscovery.INamespace (private DNS)",
            optional=True,
        )
        return problems


Ingress = NewLoadBalancer | SharedListener | ServiceDiscovery


def _is_dns_label(name: str) -> bool:
    return (
        0 < len(name) <= 63
        and name[0] != "-"
        and name[-1] != "-"
        and all(c.isdigit() or ("a" <= c <= "z") or c == "-" for c in name)
    )
