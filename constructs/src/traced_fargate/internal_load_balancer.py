"""An internal Application Load Balancer that several services can share."""

from __future__ import annotations

import jsii
from aws_cdk import Acknowledgment, Annotations, Duration, RemovalPolicy, Stack, Token, Validations
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_s3 as s3
from constructs import Construct

from traced_fargate._checkov import skip
from traced_fargate._props import bool_problems, has_attributes, kind_problems
from traced_fargate._security_groups import keep_closed
from traced_fargate._vpc import resolve_vpc, vpc_problems
from traced_fargate.closed_vpc import ClosedVpc
from traced_fargate.errors import raise_if_problems

DEFAULT_SSL_POLICY = elbv2.SslPolicy.RECOMMENDED_TLS
"""``ELBSecurityPolicy-TLS13-1-2-2021-06``: TLS 1.3 and 1.2 only."""

ACCESS_LOG_DAYS = 90
ACCESS_LOG_NONCURRENT_DAYS = 30
"""Days a deleted or overwritten access log stays recoverable (the bucket is versioned)."""


@jsii.implements(ec2.IConnectable)
class InternalLoadBalancer(Construct):
    """An internal ALB in private subnets, reachable only from peers granted with
    :meth:`allow_from`.

    With a ``certificate`` it serves HTTPS on 443 under a TLS 1.2+ policy and redirects
    HTTP on 80 to it; without one it serves plain HTTP on 80, which is for traffic that
    stays inside the VPC. Services attach to :attr:`listener` (see
    :class:`~traced_fargate.SharedListener`); the listener's default action answers 404
    until a rule matches.

    Children (construct ids are stable): ``SecurityGroup``, ``LoadBalancer``, ``Http``
    (the HTTP listener), ``Https`` (with a certificate), ``AccessLogsBucket`` (when access
    logs are on and no bucket is given).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc | ClosedVpc,
        vpc_subnets: ec2.SubnetSelection | None = None,
        certificate: acm.ICertificate | None = None,
        ssl_policy: elbv2.SslPolicy = DEFAULT_SSL_POLICY,
        access_logs: bool | None = None,
        access_logs_bucket: s3.IBucket | None = None,
        idle_timeout: Duration | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        default_action: elbv2.ListenerAction | None = None,
    ) -> None:
        """
        :param vpc: a :class:`~traced_fargate.ClosedVpc` or any ``ec2.IVpc``.
        :param vpc_subnets: where the load balancer's nodes go. Default: the ClosedVpc's
            workload subnets, or the isolated subnets of a plain VPC.
        :param certificate: an ACM certificate for HTTPS. Default: none, HTTP only
            (internal traffic only).
        :param ssl_policy: the HTTPS listener's policy. Default: :data:`DEFAULT_SSL_POLICY`.
        :param access_logs: whether the load balancer writes access logs. The bucket
            policy names the region's log-delivery principal, so they need a stack with
            a known region. Default: on when the region is known; in an
            environment-agnostic stack off, with a warning and a narrow cdk-nag
            acknowledgment.
        :param access_logs_bucket: where access logs go. Default: a new SSE-S3 bucket
            (ALB log delivery supports no KMS keys) that expires logs after 90 days; it is
            versioned, so a deleted or overwritten log stays recoverable for 30 more days.
        :param idle_timeout: connection idle timeout. Default: 60 s (the ALB's).
        :param removal_policy: applies to the access-log bucket created here. Default:
            RETAIN (its name is generated, so a redeploy never collides).
        :param default_action: what :attr:`listener` does with a request no rule matches,
            e.g. forward to one service's target group. Default: a fixed 404 response.
        """
        super().__init__(scope, construct_id)
        region_known = not Token.is_unresolved(Stack.of(self).region)
        problems = vpc_problems("vpc", vpc)
        problems += kind_problems(
            "certificate",
            certificate,
            has_attributes("certificate_arn"),
            "an acm.ICertificate",
            optional=True,
        )
        problems += kind_problems(
            "access_logs_bucket",
            access_logs_bucket,
            has_attributes("bucket_name", "bucket_arn"),
            "an s3.IBucket",
            optional=True,
        )
        if access_logs is not None:
            problems += bool_problems("access_logs", access_logs)
        if access_logs and not region_known:
            problems.append(
                "access_logs: the stack has no region; give the stack an env with a region, "
                "or leave access_logs out"
            )
        raise_if_problems(self.node.path, problems)
        network = resolve_vpc(vpc, vpc_subnets)

        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=network.vpc,
            description="Internal load balancer: listener ports from granted peers only",
            allow_all_outbound=False,
        )
        """The load balancer's security group."""
        keep_closed(self.security_group)
        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=network.vpc,
            internet_facing=False,
            vpc_subnets=network.subnets,
            security_group=self.security_group,
            drop_invalid_header_fields=True,
            idle_timeout=idle_timeout,
        )
        """The ``elbv2.ApplicationLoadBalancer``."""

        self.access_logs_bucket: s3.IBucket | None = None
        """Where the access logs go; None when access logs are off."""
        if access_logs is None:
            access_logs = region_known
            if not region_known:
                self._acknowledge_no_access_logs()
        if access_logs:
            self.access_logs_bucket = access_logs_bucket or self._access_logs_bucket(removal_policy)
            self.load_balancer.log_access_logs(self.access_logs_bucket, prefix="alb")

        self.certificate = certificate
        """The HTTPS certificate, if any."""
        self.redirect_listener: elbv2.ApplicationListener | None = None
        """The HTTP listener that redirects to HTTPS; None without a certificate."""
        self.listener: elbv2.ApplicationListener
        """The listener services attach to: HTTPS 443 with a certificate, else HTTP 80."""
        if certificate is None:
            self.listener = self.load_balancer.add_listener(
                "Http",
                port=80,
                protocol=elbv2.ApplicationProtocol.HTTP,
                open=False,
                default_action=default_action or _not_found(),
            )
            for check_id in ("CKV_AWS_2", "CKV_AWS_103"):
                skip(
                    self.listener,
                    check_id,
                    "No certificate was given: plain HTTP on an internal load balancer, whose "
                    "clients are granted peers inside the VPC. Pass certificate= to serve "
                    "HTTPS (TLS 1.2+) and redirect HTTP to it.",
                )
        else:
            self.listener = self.load_balancer.add_listener(
                "Https",
                port=443,
                protocol=elbv2.ApplicationProtocol.HTTPS,
                certificates=[elbv2.ListenerCertificate.from_certificate_manager(certificate)],
                ssl_policy=ssl_policy,
                open=False,
                default_action=default_action or _not_found(),
            )
            self.redirect_listener = self.load_balancer.add_listener(
                "Http",
                port=80,
                protocol=elbv2.ApplicationProtocol.HTTP,
                open=False,
                default_action=elbv2.ListenerAction.redirect(
                    protocol="HTTPS", port="443", permanent=True
                ),
            )

    @property
    def connections(self) -> ec2.Connections:
        """The load balancer's security group."""
        return self.load_balancer.connections

    @property
    def port(self) -> int:
        """The port services are reached on: 443 with a certificate, else 80."""
        return 80 if self.certificate is None else 443

    @property
    def url(self) -> str:
        """``http://<dns name>`` or ``https://<dns name>``. With HTTPS, clients verify the
        certificate against the name they use, usually a DNS alias of yours."""
        scheme = "http" if self.certificate is None else "https"
        return f"{scheme}://{self.load_balancer.load_balancer_dns_name}"

    def allow_from(self, peer: ec2.IConnectable, description: str = "") -> None:
        """Let ``peer`` reach the listeners (80, and 443 with a certificate).

        The rules are created from the peer's side, so a client in a later stack adds
        them to its own stack.
        """
        ports = {80: "HTTP"} if self.certificate is None else {80: "HTTP", 443: "HTTPS"}
        for port, protocol in ports.items():
            peer.connections.allow_to(
                self.load_balancer,
                ec2.Port.tcp(port),
                description or f"{protocol} to the internal load balancer",
            )

    def _access_logs_bucket(self, removal_policy: RemovalPolicy) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "AccessLogsBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=Duration.days(ACCESS_LOG_DAYS),
                    noncurrent_version_expiration=Duration.days(ACCESS_LOG_NONCURRENT_DAYS),
                ),
                s3.LifecycleRule(expired_object_delete_marker=True),
            ],
            removal_policy=removal_policy,
        )
        skip(
            bucket,
            "CKV_AWS_18",
            "This bucket only receives the load balancer's access logs; logging access to it "
            "would need another bucket whose own access goes unlogged.",
        )
        Validations.of(bucket).acknowledge(
            Acknowledgment(
                id="AwsSolutions-S1",
                reason="This bucket only receives the load balancer's access logs; logging "
                "access to it would need another bucket whose own access goes unlogged.",
            )
        )
        return bucket

    def _acknowledge_no_access_logs(self) -> None:
        Annotations.of(self).add_warning_v2(
            "traced-fargate:accessLogsOff",
            "Access logs are off: the stack has no region, and the bucket policy names the "
            "region's log-delivery principal. Give the stack an env with a region to turn "
            "them on.",
        )
        Validations.of(self.load_balancer).acknowledge(
            Acknowledgment(
                id="AwsSolutions-ELB2",
                reason="Environment-agnostic stack: the access-log bucket policy needs the "
                "region's log-delivery principal. Access logs turn on once the stack's "
                "region is known.",
            )
        )


def _not_found() -> elbv2.ListenerAction:
    return elbv2.ListenerAction.fixed_response(
        404, content_type="text/plain", message_body="no route"
    )


def is_listener(value: object) -> bool:
    """Whether ``value`` looks like an ``elbv2.IApplicationListener``."""
    return has_attributes("listener_arn", "connections")(value)
