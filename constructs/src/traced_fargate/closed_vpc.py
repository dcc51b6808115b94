"""A VPC with no path to or from the internet: isolated subnets reaching AWS through endpoints."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from traced_fargate._checkov import skip_restrict_default_sg_handler
from traced_fargate._log_encryption import log_encryption_key
from traced_fargate._props import int_problems
from traced_fargate._s3_prefix_list import PREFIX_LIST_ID, s3_prefix_list_lookup
from traced_fargate._ssm_agent_buckets import ssm_agent_buckets
from traced_fargate.errors import raise_if_problems

DEFAULT_INTERFACE_ENDPOINTS: tuple[ec2.InterfaceVpcEndpointAwsService, ...] = (
    ec2.InterfaceVpcEndpointAwsService.ECR,
    ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    ec2.InterfaceVpcEndpointAwsService.XRAY,
    ec2.InterfaceVpcEndpointAwsService.SSM,
    ec2.InterfaceVpcEndpointAwsService.SSM_MESSAGES,
    ec2.InterfaceVpcEndpointAwsService.EC2_MESSAGES,
    ec2.InterfaceVpcEndpointAwsService.CLOUDFORMATION,
)
"""ECR (image pulls), logs, X-Ray, Session Manager, and CloudFormation (cfn-signal)."""

MAX_AZS = 6
CIDR_PREFIX_LENGTHS = (16, 24)
"""Eight subnets of prefix + 3 must each hold a useful number of addresses."""
SPARE_CIDR_PREFIX = 28


class ClosedVpc(Construct):
    """A VPC of isolated subnets only, with the endpoints a Fargate service and an
    SSM-managed instance need, flow logs, and a restricted default security group.

    Nothing in it routes to an internet gateway. The upper end of the address range is
    left unused (:attr:`spare_cidr`) so that a setup-time egress path can be added and
    removed without touching the subnets CloudFormation manages.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cidr: str = "10.0.0.0/16",
        max_azs: int = 2,
        endpoint_azs: int | None = None,
        interface_endpoints: Sequence[ec2.InterfaceVpcEndpointAwsService] = (
            DEFAULT_INTERFACE_ENDPOINTS
        ),
        additional_interface_endpoints: Sequence[ec2.InterfaceVpcEndpointAwsService] = (),
        additional_s3_object_arns: Sequence[str] = (),
        flow_log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        encryption_key: kms.IKey | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param cidr: IPv4 range of the VPC, /16 to /24. Default: 10.0.0.0/16.
        :param max_azs: availability zones to spread the subnets over, 2 to 6 (fewer if the
            region has fewer). Default: 2.
        :param endpoint_azs: how many AZs hold the interface endpoints: the first
            ``endpoint_azs`` workload subnets, 1 to ``max_azs``. Each endpoint bills per AZ
            hour, so fewer AZs cost less. Private DNS still resolves every endpoint VPC-wide,
            but calls from the other AZs cross an AZ boundary (inter-AZ data transfer is
            charged) and fail while the endpoints' AZ is impaired: for development
            environments. Default: every workload AZ.
        :param interface_endpoints: interface endpoints to create, with private DNS.
            Default: :data:`DEFAULT_INTERFACE_ENDPOINTS`.
        :param additional_interface_endpoints: endpoints added to ``interface_endpoints``,
            for workloads that call more AWS services. Default: none.
        :param additional_s3_object_arns: S3 object ARNs (``arn:aws:s3:::bucket/*``) the S3
            gateway endpoint also allows reading. Default: only ECR's layer bucket, the
            Amazon Linux 2023 package repositories and, with the ``ssm`` endpoint, the
            buckets SSM Agent updates and patches from.
        :param flow_log_retention: how long flow logs are kept. Default: one year.
        :param encryption_key: KMS key for the flow log group. Default: a new key with
            rotation, owned by this construct.
        :param removal_policy: applies to the flow log group and the key created here.
            Default: RETAIN.
        """
        super().__init__(scope, construct_id)
        raise_if_problems(
            self.node.path,
            cidr_problems("cidr", cidr)
            + max_azs_problems("max_azs", max_azs)
            + endpoint_azs_problems("endpoint_azs", endpoint_azs, max_azs),
        )
        network = ipaddress.IPv4Network(cidr)

        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(cidr),
            max_azs=max_azs,
            nat_gateways=0,
            # Eight slots: up to six AZs, and the last slot keeps the spare block.
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="Workload",
                    subnet_type=ec2.SubnetType.PRIVATE_ISOLATED,
                    cidr_mask=network.prefixlen + 3,
                )
            ],
            restrict_default_security_group=True,
        )
        """The ``ec2.Vpc``: isolated subnets only."""
        skip_restrict_default_sg_handler(self.vpc)
        self.workload_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        """The isolated subnets that workloads and endpoints use."""
        last_block = ipaddress.IPv4Network(
            (int(network.broadcast_address) - 2 ** (32 - SPARE_CIDR_PREFIX) + 1, SPARE_CIDR_PREFIX)
        )
        self.spare_cidr: str = str(last_block)
        """The unused /28 at the top of the range, for a setup-time public subnet."""

        self.encryption_key: kms.IKey = encryption_key or log_encryption_key(
            self,
            "FlowLogKey",
            description="Encrypts the VPC flow log group",
            removal_policy=removal_policy,
        )
        """The KMS key of the flow log group."""
        self.flow_log_group = logs.LogGroup(
            self,
            "FlowLogGroup",
            retention=flow_log_retention,
            encryption_key=self.encryption_key,
            removal_policy=removal_policy,
        )
        """Where the VPC flow logs go."""
        stack = Stack.of(self)
        self.flow_log_role = iam.Role(
            self,
            "FlowLogRole",
            # Only this account's flow logs may use the role, as AWS recommends against the
            # confused deputy: https://docs.aws.amazon.com/vpc/latest/userguide/flow-logs-iam-role.html
            assumed_by=iam.ServicePrincipal(
                "vpc-flow-logs.amazonaws.com",
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="ec2", resource="vpc-flow-log", resource_name="*"
                        )
                    },
                },
            ),
            description="VPC flow logs of this account deliver to the flow log group",
        )
        """The role the flow logs deliver with."""
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                self.flow_log_group, self.flow_log_role
            ),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )

        self.endpoint_security_group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description="Interface endpoints: HTTPS from granted workloads only",
            allow_all_outbound=False,
        )
        """The interface endpoints' security group, opened per workload by
        :meth:`allow_endpoints_from`."""
        self.endpoint_subnets = self.workload_subnets
        """The subnets holding the interface endpoints (see ``endpoint_azs``)."""
        if endpoint_azs is not None and endpoint_azs < len(self.vpc.isolated_subnets):
            self.endpoint_subnets = ec2.SubnetSelection(
                subnets=self.vpc.isolated_subnets[:endpoint_azs]
            )
        self.interface_endpoints: dict[str, ec2.InterfaceVpcEndpoint] = {}
        """The interface endpoints, keyed by service short name (e.g. ``ecr.api``)."""
        for service in [*interface_endpoints, *additional_interface_endpoints]:
            short_name = service.short_name
            if short_name in self.interface_endpoints:
                continue
            self.interface_endpoints[short_name] = self.vpc.add_interface_endpoint(
                _endpoint_id(short_name),
                service=service,
                private_dns_enabled=True,
                subnets=self.endpoint_subnets,
                security_groups=[self.endpoint_security_group],
                open=False,
            )

        def s3_objects(bucket: str) -> str:
            return f"arn:{stack.partition}:s3:::{bucket}/*"

        self.s3_endpoint = self.vpc.add_gateway_endpoint(
            "S3Endpoint",
            service=ec2.GatewayVpcEndpointAwsService.S3,
            subnets=[self.workload_subnets],
        )
        """The S3 gateway endpoint, limited by its policy."""
        self.s3_endpoint.add_to_policy(
            iam.PolicyStatement(
                sid="ReadImageLayersAndOsPackages",
                principals=[iam.AnyPrincipal()],
                actions=["s3:GetObject"],
                resources=[
                    s3_objects(f"prod-{stack.region}-starport-layer-bucket"),
                    s3_objects(f"al2023-repos-{stack.region}-de612dc2"),
                    *additional_s3_object_arns,
                ],
            )
        )
        if "ssm" in self.interface_endpoints:
            self.s3_endpoint.add_to_policy(
                iam.PolicyStatement(
                    sid="ReadSsmAgentUpdatesAndPatches",
                    principals=[iam.AnyPrincipal()],
                    actions=["s3:GetObject"],
                    resources=[s3_objects(bucket) for bucket in ssm_agent_buckets(stack)],
                )
            )
        self.s3_prefix_list_lookup = s3_prefix_list_lookup(
            self,
            "S3PrefixList",
            log_group=logs.LogGroup(
                self,
                "S3PrefixListLogs",
                retention=flow_log_retention,
                encryption_key=self.encryption_key,
                removal_policy=removal_policy,
            ),
        )
        """The custom resource that looks the region's S3 prefix list up at deploy time."""
        self.s3_prefix_list_id: str = self.s3_prefix_list_lookup.get_response_field(PREFIX_LIST_ID)
        """The region's S3 managed prefix list (a deploy-time token): the destinations the
        S3 gateway routes, for security group rules."""

    @property
    def workload_route_table_ids(self) -> list[str]:
        """Route tables of the isolated subnets, in AZ order."""
        return [s.route_table.route_table_id for s in self.vpc.isolated_subnets]

    def allow_endpoints_from(
        self, peer: ec2.IConnectable, description: str = "", *, setup_internet: bool = False
    ) -> None:
        """Let ``peer`` reach AWS from the VPC: HTTPS to every interface endpoint (opened to
        it and only to it) and HTTPS to the S3 gateway, named by the region's S3 prefix list
        (:attr:`s3_prefix_list_id`), so that nothing else is reachable even while a setup
        egress is open.

        ``setup_internet``: also HTTPS to any address, for a peer that must reach the
        internet while a setup egress is open: an ECS task whose first pull through a
        pull-through cache fetches from the upstream registry (ECR documents this). Once
        the egress is closed no route leads there. Default: False.

        The rules are created from the peer's side, so they live in the peer's stack: a
        workload stack can depend on the network stack without a cycle.
        """
        peer.connections.allow_to(
            self.endpoint_security_group,
            ec2.Port.tcp(443),
            description or "HTTPS to the interface endpoints",
        )
        peer.connections.allow_to(
            ec2.Peer.prefix_list(self.s3_prefix_list_id),
            ec2.Port.tcp(443),
            "HTTPS to the S3 gateway",
        )
        if setup_internet:
            peer.connections.allow_to(
                ec2.Peer.any_ipv4(),
                ec2.Port.tcp(443),
                "HTTPS out while a setup egress is open (first pulls through the cache)",
            )


def cidr_problems(prop: str, cidr: object) -> list[str]:
    """Problems of a VPC range: an IPv4 CIDR block without host bits, /16 to /24."""
    if not isinstance(cidr, str):
        return [f"{prop}: {cidr!r} is not allowed; expected an IPv4 CIDR block (a string)"]
    try:
        network = ipaddress.IPv4Network(cidr, strict=False)
    except ValueError:
        return [f"{prop}: {cidr!r} is not allowed; expected an IPv4 CIDR block"]
    if str(network) != cidr:
        return [f"{prop}: {cidr!r} is not allowed; host bits are set, did you mean {network}?"]
    low, high = CIDR_PREFIX_LENGTHS
    if not low <= network.prefixlen <= high:
        return [f"{prop}: {cidr!r} is not allowed; expected a prefix length from /{low} to /{high}"]
    return []


def closed_vpc_problems(prop: str, value: object) -> list[str]:
    """Problems of a prop that needs a :class:`ClosedVpc` (its spare block, endpoints and
    route tables), not just any VPC."""
    if isinstance(value, ClosedVpc):
        return []
    return [f"{prop}: expected a ClosedVpc, got {type(value).__name__}"]


def max_azs_problems(prop: str, max_azs: object) -> list[str]:
    """Problems of the number of availability zones: 2 to :data:`MAX_AZS`."""
    return int_problems(prop, max_azs, 2, MAX_AZS)


def endpoint_azs_problems(prop: str, endpoint_azs: object, max_azs: object = MAX_AZS) -> list[str]:
    """Problems of the number of AZs holding the interface endpoints: None (every workload
    AZ) or 1 to ``max_azs``."""
    if endpoint_azs is None:
        return []
    valid = isinstance(max_azs, int) and not max_azs_problems("max_azs", max_azs)
    high = max_azs if valid and isinstance(max_azs, int) else MAX_AZS
    return [f"{p} (max_azs is {high})" for p in int_problems(prop, endpoint_azs, 1, high)]


def _endpoint_id(short_name: str) -> str:
    return "".join(part.capitalize() for part in short_name.replace(".", "-").split("-")) + (
        "Endpoint"
    )
