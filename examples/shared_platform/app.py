"""A platform team's app built from traced_fargate: three stacks in one account.

``Images``: the app repositories, deployed (and pushed to) before anything runs from them;
their names are generated, so a redeploy after ``cdk destroy`` never collides.

``Platform``: a closed VPC, a pull-through cache for the tracing sidecars, one ECS
cluster and one internal HTTPS load balancer shared by two frontend services (routed by
path; ``Orders`` deploys blue/green, its rule's traffic split left to ECS), and a backend
service without a load balancer that only the frontends may call
(Cloud Map DNS). A temporary egress is open while the services first pull their sidecar
images through the cache (ECR needs a route out for a cache miss), and closed after.

``Imported``: a VPC that exists already, imported with ``Vpc.from_vpc_attributes``, and
one service with a load balancer of its own. The library knows nothing of that VPC's
endpoints, so it grants none: the stack opens the tasks' HTTPS egress to them itself. That
VPC has no route out, so its cache is warmed by tag before the first deploy, from a
machine that can reach ECR (a pull by digest does not fill the cache)::

    docker pull 111111111111.dkr.ecr.eu-west-1.amazonaws.com/\
imported-ecr-public/xray/aws-xray-daemon:3.3.15

Synthesize with ``cdk synth --app "python3 examples/shared_platform/app.py"``.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import App, Duration, Environment, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

from traced_fargate import (
    AdotCollector,
    AlarmTopic,
    AppImageRepository,
    BlueGreenDeployment,
    ClosedVpc,
    InternalLoadBalancer,
    NewLoadBalancer,
    PullThroughCache,
    ServiceDiscovery,
    SharedListener,
    TemporaryEgress,
    TracedFargateService,
    TracedTaskDefinition,
    TracingSidecar,
    XRayDaemon,
)

ACCOUNT = "111111111111"
REGION = "eu-west-1"
ENV = Environment(account=ACCOUNT, region=REGION)

CONTEXT = {
    f"availability-zones:account={ACCOUNT}:region={REGION}": [
        f"{REGION}a",
        f"{REGION}b",
        f"{REGION}c",
    ],
}
"""What a lookup would write to ``cdk.context.json``: a VPC in a stack with an account and
region takes its zones from here, so synth needs no AWS credentials and the zones stay the
same on every synth."""

PLATFORM_CIDR = "10.50.0.0/16"
CERTIFICATE_ARN = (
    "arn:aws:acm:eu-west-1:111111111111:certificate/0d5c8f3e-7a21-4b6f-9c1e-2f4a6b8d0e12"
)
NAMESPACE = "platform.internal"
APP_PORT = 8080
RELEASE = "prod-1.4.2"
"""The image tag each app repository runs (tags are immutable: a tag is one build)."""

# The existing VPC of the second stack, as its network team hands it over.
IMPORTED_VPC_ID = "vpc-0a1b2c3d4e5f67890"
IMPORTED_CIDR = "10.60.0.0/16"
IMPORTED_AZS = ("eu-west-1a", "eu-west-1b")
IMPORTED_SUBNET_IDS = ("subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002")
IMPORTED_ROUTE_TABLE_IDS = ("rtb-0a1b2c3d4e5f60001", "rtb-0a1b2c3d4e5f60002")
IMPORTED_ENDPOINT_SECURITY_GROUP_ID = "sg-0a1b2c3d4e5f60003"
"""The group of that VPC's interface endpoints (ECR, Logs, X-Ray); it admits HTTPS from
the VPC's range already, so this app only opens the tasks' side."""
IMPORTED_S3_PREFIX_LIST_ID = "pl-6da54004"
"""The managed prefix list ``com.amazonaws.eu-west-1.s3`` (``aws ec2
describe-managed-prefix-lists``): the route of the VPC's S3 gateway endpoint, where ECR keeps
image layers."""

PYTHON_HEALTH_CHECK = ecs.HealthCheck(
    command=[
        "CMD",
        "python3",
        "-c",
        f"import urllib.request as r; r.urlopen('http://127.0.0.1:{APP_PORT}/healthz', timeout=3)",
    ]
)
"""A probe run inside the app image (a Python app that answers ``/healthz``)."""


class ImagesStack(Stack):
    """The app repositories that CI pushes to: stateful, so apart from what runs."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id, env=ENV)
        self.repositories = {
            name: AppImageRepository(self, name) for name in ("Orders", "Users", "Inventory")
        }


class PlatformStack(Stack):
    """The shared network, cache, cluster and load balancer, and three services on them."""

    def __init__(
        self, scope: Construct, construct_id: str, *, images: dict[str, AppImageRepository]
    ) -> None:
        super().__init__(scope, construct_id, env=ENV)
        self.images = images
        self.network = ClosedVpc(self, "Network", cidr=PLATFORM_CIDR)  # the first 2 zones
        self.egress = TemporaryEgress(self, "SetupEgress", network=self.network)
        self.cache = PullThroughCache(
            self,
            "Cache",
            repository_prefix="platform-ecr-public",
            cached_repositories=[XRayDaemon.UPSTREAM_PATH, AdotCollector.UPSTREAM_PATH],
        )
        # Extension objects hold no constructs: one of each serves every task.
        xray = XRayDaemon(pull_through_cache=self.cache)
        adot = AdotCollector(pull_through_cache=self.cache)

        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=self.network.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
            enable_fargate_capacity_providers=True,
            default_cloud_map_namespace=ecs.CloudMapNamespaceOptions(
                name=NAMESPACE, vpc=self.network.vpc
            ),
        )
        certificate = acm.Certificate.from_certificate_arn(self, "Certificate", CERTIFICATE_ARN)
        self.load_balancer = InternalLoadBalancer(
            self, "SharedLoadBalancer", vpc=self.network, certificate=certificate
        )
        # Callers inside the VPC; nothing from outside it.
        self.load_balancer.allow_from(
            ec2.Peer.ipv4(PLATFORM_CIDR), "HTTP(S) from workloads in the VPC"
        )
        self.alarm_topic = AlarmTopic(self, "Alarms", display_name="platform alarms")

        self.orders = self._service(
            "Orders",
            tracing=xray,
            ingress=SharedListener(
                listener=self.load_balancer.listener,
                priority=10,
                conditions=[elbv2.ListenerCondition.path_patterns(["/orders/*"])],
            ),
            deployment=BlueGreenDeployment(bake_time=Duration.minutes(10)),
        )
        self.users = self._service(
            "Users",
            tracing=adot,
            ingress=SharedListener(
                listener=self.load_balancer.listener,
                priority=20,
                conditions=[elbv2.ListenerCondition.path_patterns(["/users/*"])],
            ),
            spot_weight=1,  # above the one FARGATE base task, half the tasks run on Spot
        )
        self.inventory = self._service(
            "Inventory",
            tracing=xray,
            ingress=ServiceDiscovery(name="inventory"),  # inventory.platform.internal
            app_health_check=PYTHON_HEALTH_CHECK,
        )
        for frontend in (self.orders, self.users):
            self.inventory.connections.allow_from(
                frontend, self.inventory.connections.default_port, "Frontend to inventory"
            )
        # The first pulls through the cache need the egress; a service is created once its
        # tasks are steady, so the egress closes after every image came through.
        services = [s.service for s in (self.orders, self.users, self.inventory)]
        self.egress.required_by(*services)
        self.egress.add_teardown(self, "CloseSetupEgress", after=services)

    def _service(
        self,
        name: str,
        *,
        tracing: TracingSidecar,
        ingress: SharedListener | ServiceDiscovery,
        app_health_check: ecs.HealthCheck | None = None,
        spot_weight: int = 0,
        deployment: BlueGreenDeployment | None = None,
    ) -> TracedFargateService:
        repository = self.images[name]
        task = TracedTaskDefinition(
            self,
            f"{name}Task",
            service_name=name.lower(),
            app_image=repository.container_image(RELEASE),
            app_port=APP_PORT,
            tracing=tracing,
            app_health_check=app_health_check,
        )
        return TracedFargateService(
            self,
            name,
            task_definition=task,
            vpc=self.network,
            cluster=self.cluster,
            ingress=ingress,
            spot_weight=spot_weight,
            max_count=4,
            alarm_topic=self.alarm_topic.topic,
            deployment=deployment,
        )


class ImportedStack(Stack):
    """One service with its own load balancer in a VPC this app does not own."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id, env=ENV)
        self.vpc = ec2.Vpc.from_vpc_attributes(
            self,
            "Vpc",
            vpc_id=IMPORTED_VPC_ID,
            vpc_cidr_block=IMPORTED_CIDR,
            availability_zones=list(IMPORTED_AZS),
            isolated_subnet_ids=list(IMPORTED_SUBNET_IDS),
            isolated_subnet_route_table_ids=list(IMPORTED_ROUTE_TABLE_IDS),
        )
        self.endpoint_security_group = ec2.SecurityGroup.from_security_group_id(
            self,
            "EndpointSecurityGroup",
            IMPORTED_ENDPOINT_SECURITY_GROUP_ID,
            mutable=False,  # the network team's group: no rules are added to it here
        )
        # One rule per prefix per registry and account: this stack's cache has its own.
        cache = PullThroughCache(
            self,
            "Cache",
            repository_prefix="imported-ecr-public",
            cached_repositories=[XRayDaemon.UPSTREAM_PATH],
        )
        repository = ecr.Repository.from_repository_name(self, "Images", "reports")
        task = TracedTaskDefinition(
            self,
            "ReportsTask",
            service_name="reports",
            app_image=ecs.ContainerImage.from_ecr_repository(repository, RELEASE),
            app_port=APP_PORT,
            tracing=XRayDaemon(pull_through_cache=cache),
        )
        self.service = TracedFargateService(
            self,
            "Reports",
            task_definition=task,
            vpc=self.vpc,
            ingress=NewLoadBalancer(),
        )
        self.service.allow_http_from(ec2.Peer.ipv4(IMPORTED_CIDR), "HTTP from the VPC")
        # A plain IVpc: the service was granted no endpoint. Open what the tasks use.
        self.service.connections.allow_to(
            self.endpoint_security_group,
            ec2.Port.tcp(443),
            "HTTPS to the VPC's interface endpoints",
        )
        self.service.connections.allow_to(
            ec2.Peer.prefix_list(IMPORTED_S3_PREFIX_LIST_ID),
            ec2.Port.tcp(443),
            "HTTPS to S3 through the gateway endpoint (image layers)",
        )


@dataclass(frozen=True)
class SharedPlatform:
    """The stacks of the app."""

    images: ImagesStack
    platform: PlatformStack
    imported: ImportedStack


def build(app: App) -> SharedPlatform:
    """Add the example's stacks to ``app`` (it must have no children yet)."""
    for key, value in CONTEXT.items():
        if app.node.try_get_context(key) is None:
            app.node.set_context(key, value)
    images = ImagesStack(app, "Images")
    return SharedPlatform(
        images=images,
        platform=PlatformStack(app, "Platform", images=images.repositories),
        imported=ImportedStack(app, "Imported"),
    )


if __name__ == "__main__":
    application = App()
    build(application)
    application.synth()
