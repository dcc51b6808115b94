"""A Fargate service running a traced task, reached through a load balancer or Cloud Map."""

from __future__ import annotations

import jsii
from aws_cdk import Annotations, Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_servicediscovery as servicediscovery
from aws_cdk import aws_sns as sns
from constructs import Construct

from traced_fargate._exec_grants import prepare_exec
from traced_fargate._load_balancer_routing import Routing, route_through_load_balancer
from traced_fargate._security_groups import keep_closed
from traced_fargate._service_props import service_namespace, service_prop_problems
from traced_fargate._vpc import resolve_vpc
from traced_fargate.closed_vpc import ClosedVpc
from traced_fargate.deployment import BlueGreenDeployment, Deployment, RollingDeployment
from traced_fargate.ecs_exec import ExecuteCommandSessions
from traced_fargate.errors import raise_if_problems
from traced_fargate.ingress import Ingress, NewLoadBalancer, ServiceDiscovery, SharedListener
from traced_fargate.internal_load_balancer import InternalLoadBalancer
from traced_fargate.production_listener_rule import ProductionListenerRule
from traced_fargate.service_alarms import ServiceAlarms
from traced_fargate.service_scaling import ServiceScaling, capacity_strategies
from traced_fargate.traced_task_definition import TracedTaskDefinition

HEALTH_CHECK_PATH = "/healthz"


@jsii.implements(ec2.IConnectable)
class TracedFargateService(Construct):
    """A Fargate service of a :class:`~traced_fargate.TracedTaskDefinition` in private
    subnets, with circuit-breaker rollbacks (rolling, or ECS native blue/green), auto
    scaling and alarms.

    Requests reach it one of three ways (``ingress``): a new internal ALB (default), a
    rule on a shared listener, or Cloud Map DNS with no load balancer. Its security group
    admits only the load balancer (when it has one) and peers granted with
    :meth:`allow_http_from` or through :attr:`connections`.

    In a :class:`~traced_fargate.ClosedVpc` the tasks are granted its endpoints. In any
    other ``ec2.IVpc`` nothing is granted on endpoints the construct does not know: allow
    the tasks' egress yourself (``service.connections.allow_to(endpoints_sg,
    ec2.Port.tcp(443))``) or give them a route out.

    Children (construct ids are stable): ``Cluster`` (when none is given),
    ``SecurityGroup``, ``Service``, ``LoadBalancer`` (:class:`NewLoadBalancer`),
    ``TargetGroup`` and ``ListenerRule`` (behind a load balancer; with
    :class:`BlueGreenDeployment`, ``AlternateTargetGroup``, ``ProductionRule`` and
    ``TrafficShiftRole`` instead of ``ListenerRule``), ``Scaling``, ``Alarms``,
    ``ExecSessions`` (``enable_exec`` without a cluster given).
    """

    exec_sessions: ExecuteCommandSessions | None = None
    """Key and log group of the default cluster's ECS Exec sessions (``enable_exec``
    without a cluster given); None otherwise."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        task_definition: TracedTaskDefinition,
        vpc: ec2.IVpc | ClosedVpc,
        vpc_subnets: ec2.SubnetSelection | None = None,
        cluster: ecs.ICluster | None = None,
        ingress: Ingress | None = None,
        health_check_path: str = HEALTH_CHECK_PATH,
        health_check_grace_period: Duration | None = None,
        desired_count: int | None = None,
        min_count: int = 1,
        max_count: int = 2,
        fargate_base: int = 1,
        fargate_weight: int = 1,
        spot_weight: int = 0,
        cpu_target_percent: int = 60,
        requests_per_target: int = 500,
        alarm_topic: sns.ITopic | None = None,
        enable_exec: bool = False,
        deployment: Deployment | None = None,
    ) -> None:
        """
        :param task_definition: the task the service runs.
        :param vpc: a :class:`~traced_fargate.ClosedVpc` (its endpoints are granted) or any
            ``ec2.IVpc`` (nothing is granted on its endpoints).
        :param vpc_subnets: where the tasks run. Default: the ClosedVpc's workload subnets,
            or the isolated subnets of a plain VPC.
        :param cluster: the cluster, e.g. one shared by several services. Capacity
            provider strategies name FARGATE and FARGATE_SPOT, so a cluster you bring must
            have them enabled. Default: a new cluster with Container Insights and both
            Fargate capacity providers.
        :param ingress: :class:`NewLoadBalancer`, :class:`SharedListener` or
            :class:`ServiceDiscovery`. Default: ``NewLoadBalancer()``, HTTP on 80.
        :param health_check_path: the target group's health check path (behind a load
            balancer): it must answer 200. Default: ``/healthz``.
        :param health_check_grace_period: how long a new task may fail load-balancer health
            checks. Default: 60 s behind a load balancer.
        :param desired_count: tasks after a deploy. CloudFormation re-applies it on every
            deploy that updates the service, resetting what auto scaling chose. Default:
            none; ECS starts the new service with one task, registering the scalable
            target raises it to ``min_count``, and auto scaling owns the count after.
        :param min_count: auto scaling lower bound. Default: 1.
        :param max_count: auto scaling upper bound. Default: 2.
        :param fargate_base: tasks always placed on FARGATE. Default: 1.
        :param fargate_weight: share of tasks above the base placed on FARGATE. Default: 1.
        :param spot_weight: share placed on FARGATE_SPOT; 0 leaves Spot out. Default: 0.
        :param cpu_target_percent: target CPU utilization for scaling, 1-100. Default: 60.
        :param requests_per_target: target ALB requests per task per minute (behind a load
            balancer). Default: 500.
        :param alarm_topic: SNS topic the alarms notify; its policy must let CloudWatch
            publish. Default: a new :class:`~traced_fargate.AlarmTopic`.
        :param enable_exec: allow ``aws ecs execute-command`` into the app container:
            ``enableExecuteCommand``, the task role's four ``ssmmessages`` actions (they
            take no resource ARN), and writable task volumes for the SSM agent under the
            read-only root filesystem (:mod:`traced_fargate.ecs_exec`). Sessions go
            through the cluster's ``execute_command_configuration``: a cluster you bring
            must have one with a KMS key and a log group (e.g. from
            :class:`~traced_fargate.ExecuteCommandSessions`); the default cluster gets
            one (``ExecSessions``). In a ClosedVpc the agent reaches the ``ssmmessages``
            endpoint (one of its defaults) and KMS, whose endpoint you add
            (``additional_interface_endpoints``); a ClosedVpc without either is a prop
            error. Default: False.
        :param deployment: :class:`~traced_fargate.RollingDeployment` or
            :class:`~traced_fargate.BlueGreenDeployment` (behind a load balancer only; its
            production rule is a :class:`~traced_fargate.ProductionListenerRule`, and
            scaling tracks CPU only; see :mod:`traced_fargate.deployment`). Default:
            ``RollingDeployment()``.
        """
        super().__init__(scope, construct_id)
        ingress = NewLoadBalancer() if ingress is None else ingress
        deployment = RollingDeployment() if deployment is None else deployment
        raise_if_problems(
            self.node.path,
            service_prop_problems(
                task_definition=task_definition,
                vpc=vpc,
                cluster=cluster,
                ingress=ingress,
                health_check_path=health_check_path,
                desired_count=desired_count,
                min_count=min_count,
                max_count=max_count,
                fargate_base=fargate_base,
                fargate_weight=fargate_weight,
                spot_weight=spot_weight,
                cpu_target_percent=cpu_target_percent,
                requests_per_target=requests_per_target,
                enable_exec=enable_exec,
                deployment=deployment,
            ),
        )
        network = resolve_vpc(vpc, vpc_subnets)
        self.task_definition = task_definition
        """The task the service runs."""
        self.ingress: Ingress = ingress
        """How requests reach the service."""

        self.cluster: ecs.ICluster = cluster or self._default_cluster(network.vpc, enable_exec)
        """The cluster the service runs in."""
        namespace = service_namespace(self.node.path, ingress, self.cluster)

        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=network.vpc,
            description="Service tasks: the app port from the load balancer and granted peers",
            allow_all_outbound=False,
        )
        """The tasks' security group."""
        keep_closed(self.security_group)
        # setup_internet: a first pull through a pull-through cache goes to the upstream
        # registry, which the tasks reach only while a setup egress is open.
        network.allow_endpoints_from(
            self.security_group, "Service tasks to AWS endpoints", setup_internet=True
        )

        behind_load_balancer = not isinstance(ingress, ServiceDiscovery)
        blue_green = isinstance(deployment, BlueGreenDeployment)
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=task_definition.task_definition,
            desired_count=desired_count,
            vpc_subnets=network.subnets,
            security_groups=[self.security_group],
            assign_public_ip=False,
            capacity_provider_strategies=capacity_strategies(
                fargate_base, fargate_weight, spot_weight
            ),
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            deployment_strategy=ecs.DeploymentStrategy.BLUE_GREEN if blue_green else None,
            bake_time=deployment.bake_time if isinstance(deployment, BlueGreenDeployment) else None,
            min_healthy_percent=100,
            max_healthy_percent=200,
            health_check_grace_period=(
                (health_check_grace_period or Duration.seconds(60))
                if behind_load_balancer
                else None
            ),
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
            enable_ecs_managed_tags=True,
            enable_execute_command=enable_exec or None,
            cloud_map_options=(
                ecs.CloudMapOptions(
                    name=ingress.name,
                    cloud_map_namespace=namespace,
                    dns_record_type=servicediscovery.DnsRecordType.A,
                    dns_ttl=ingress.dns_ttl,
                )
                if isinstance(ingress, ServiceDiscovery)
                else None
            ),
        )
        """The ``ecs.FargateService``."""
        if enable_exec:
            prepare_exec(task_definition)
        # A delete must remove the service before the cluster's capacity-provider
        # association ("capacity provider is in use" otherwise). The association is
        # created late, at synth, so the dependency is on the whole cluster.
        if isinstance(self.cluster, ecs.Cluster):
            self.service.node.add_dependency(self.cluster)

        routing = (
            route_through_load_balancer(
                self,
                service=self.service,
                ingress=ingress,
                vpc=vpc,
                vpc_subnets=vpc_subnets,
                network_vpc=network.vpc,
                port=task_definition.app_port,
                health_check_path=health_check_path,
                blue_green=blue_green,
                log_encryption_key=task_definition.log_encryption_key,
            )
            if isinstance(ingress, NewLoadBalancer | SharedListener)
            else Routing()
        )
        self.load_balancer: InternalLoadBalancer | None = routing.load_balancer
        """The load balancer created for this service (:class:`NewLoadBalancer`)."""
        self.listener: elbv2.IApplicationListener | None = routing.listener
        """The listener that forwards to the service; None with :class:`ServiceDiscovery`."""
        self.target_group: elbv2.ApplicationTargetGroup | None = routing.target_group
        """The service's target group; None with :class:`ServiceDiscovery`. With
        :class:`BlueGreenDeployment`, the one the first tasks register in."""
        self.alternate_target_group: elbv2.ApplicationTargetGroup | None = (
            routing.alternate_target_group
        )
        """The target group each blue/green deployment's new tasks register in (the two
        alternate); None without :class:`BlueGreenDeployment`."""
        self.production_rule: ProductionListenerRule | None = routing.production_rule
        """The rule ECS shifts traffic on; None without :class:`BlueGreenDeployment`."""
        self._discovery_host: str | None = None
        if isinstance(ingress, ServiceDiscovery):
            assert namespace is not None
            self._discovery_host = f"{ingress.name}.{namespace.namespace_name}"
            if not task_definition.has_app_health_check:
                Annotations.of(self).add_warning_v2(
                    "traced-fargate:noHealthCheck",
                    "No load balancer and no app_health_check: ECS judges a task healthy "
                    "while its container runs. Give the task definition an "
                    "app_health_check.",
                )

        self.scaling = ServiceScaling(
            self,
            "Scaling",
            service=self.service,
            min_count=min_count,
            max_count=max_count,
            cpu_target_percent=cpu_target_percent,
            # The per-target request metric is per target group; blue/green alternates them.
            target_group=None if blue_green else self.target_group,
            requests_per_target=requests_per_target,
        )
        """Auto scaling of the task count."""
        self.alarms = ServiceAlarms(
            self,
            "Alarms",
            service=self.service,
            target_group=self.target_group,
            alternate_target_group=self.alternate_target_group,
            alarm_topic=alarm_topic,
        )
        """The service's alarms and the topic they notify."""
        if blue_green:
            # Through the bake time, a 5xx burst or failing tasks shift traffic back.
            self.service.enable_deployment_alarms(
                [alarm.alarm_name for alarm in self.alarms.target_group_alarms],
                behavior=ecs.AlarmBehavior.ROLLBACK_ON_ALARM,
            )

    @property
    def connections(self) -> ec2.Connections:
        """The tasks' security group, default port the app port: ``backend.connections.
        allow_from(frontend, backend.connections.default_port)`` admits a peer."""
        return ec2.Connections(
            security_groups=[self.security_group],
            default_port=ec2.Port.tcp(self.task_definition.app_port),
        )

    @property
    def url(self) -> str:
        """Where clients send requests: the load balancer's URL, or
        ``http://<name>.<namespace>:<app port>`` with :class:`ServiceDiscovery`. Behind a
        shared listener, the listener's load balancer DNS name is yours to know: this is
        then the empty string."""
        if self.load_balancer is not None:
            return self.load_balancer.url
        if self._discovery_host is not None:
            return f"http://{self._discovery_host}:{self.task_definition.app_port}"
        return ""

    def allow_http_from(self, peer: ec2.IConnectable, description: str = "") -> None:
        """Let ``peer`` send requests: to the load balancer's listener ports, or straight to
        the tasks' app port with :class:`ServiceDiscovery`.

        The rules are created from the peer's side, so a client in a later stack adds
        them to its own stack.
        """
        if self.load_balancer is not None:
            self.load_balancer.allow_from(peer, description)
        elif isinstance(self.ingress, SharedListener):
            if self.ingress.port is None:
                raise_if_problems(
                    self.node.path,
                    [
                        "allow_http_from: the SharedListener has no port; give "
                        "SharedListener(port=...) or grant the client on the load balancer "
                        "(e.g. InternalLoadBalancer.allow_from)"
                    ],
                )
            peer.connections.allow_to(
                self.ingress.listener,
                ec2.Port.tcp(self.ingress.port),
                description or "HTTP to the shared load balancer",
            )
        else:
            peer.connections.allow_to(
                self, self.connections.default_port, description or "HTTP to the service"
            )

    def _default_cluster(self, vpc: ec2.IVpc, enable_exec: bool) -> ecs.Cluster:
        if enable_exec:
            self.exec_sessions = ExecuteCommandSessions(self, "ExecSessions")
        return ecs.Cluster(
            self,
            "Cluster",
            vpc=vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
            enable_fargate_capacity_providers=True,
            execute_command_configuration=(
                self.exec_sessions.configuration if self.exec_sessions else None
            ),
        )
