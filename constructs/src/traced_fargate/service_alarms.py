"""The alarms of a Fargate service: sustained CPU and, behind an ALB, 5xx and unhealthy tasks."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_sns as sns
from constructs import Construct

from traced_fargate._props import has_attributes, kind_problems
from traced_fargate.alarm_topic import AlarmTopic
from traced_fargate.errors import raise_if_problems

_AT_LEAST = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD


class ServiceAlarms(Construct):
    """Alarms that notify a topic on ALARM and on OK.

    - ``CpuHighAlarm``: average CPU above 85 % for 5 minutes (scaling did not keep up).
    - ``Target5xxAlarm``: 5 or more 5xx answers from the tasks in 5 minutes (with a
      target group).
    - ``UnhealthyHostsAlarm``: a task failing the target group's health check for 3
      minutes (with a target group).

    With an alternate target group (blue/green), the target-group alarms watch both: the
    5xx count summed, the unhealthy count of the worse one.

    Children (construct ids are stable): the alarms above, and ``Topic`` (an
    :class:`~traced_fargate.AlarmTopic`) when no topic is given.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        service: ecs.BaseService,
        target_group: elbv2.ApplicationTargetGroup | None = None,
        alternate_target_group: elbv2.ApplicationTargetGroup | None = None,
        alarm_topic: sns.ITopic | None = None,
    ) -> None:
        """
        :param service: the service watched.
        :param target_group: its target group behind an ALB. Default: none, CPU only.
        :param alternate_target_group: the second target group of a blue/green service,
            with ``target_group``. Default: none.
        :param alarm_topic: where the alarms notify. Its policy must let
            ``cloudwatch.amazonaws.com`` publish (an :class:`~traced_fargate.AlarmTopic`
            does). Default: a new AlarmTopic; subscribe to ``topic``.
        """
        super().__init__(scope, construct_id)
        raise_if_problems(
            self.node.path,
            kind_problems(
                "alarm_topic",
                alarm_topic,
                has_attributes("topic_arn"),
                "an sns.ITopic",
                optional=True,
            )
            + (
                ["alternate_target_group: given without target_group"]
                if alternate_target_group is not None and target_group is None
                else []
            ),
        )
        self.topic: sns.ITopic = alarm_topic or AlarmTopic(self, "Topic").topic
        """The topic the alarms notify."""
        self.alarms: list[cloudwatch.Alarm] = [
            cloudwatch.Alarm(
                self,
                "CpuHighAlarm",
                alarm_description="Service CPU stays high even after scaling out",
                metric=service.metric_cpu_utilization(
                    period=Duration.minutes(1), statistic="Average"
                ),
                threshold=85,
                evaluation_periods=5,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.MISSING,
            )
        ]
        """Every alarm, CPU first."""
        self.target_group_alarms: list[cloudwatch.Alarm] = []
        """The 5xx and unhealthy-task alarms (with a target group): they watch the load
        balancer's metrics, not the service's, so a service may roll back on them."""
        if target_group is not None:
            groups = [target_group, *([alternate_target_group] if alternate_target_group else [])]
            self.target_group_alarms = [
                cloudwatch.Alarm(
                    self,
                    "Target5xxAlarm",
                    alarm_description="The app answered with 5xx errors",
                    metric=_combined(
                        "+",
                        [
                            g.metrics.http_code_target(
                                elbv2.HttpCodeTarget.TARGET_5XX_COUNT,
                                period=Duration.minutes(5),
                                statistic="Sum",
                            )
                            for g in groups
                        ],
                        Duration.minutes(5),
                    ),
                    threshold=5,
                    evaluation_periods=1,
                    comparison_operator=_AT_LEAST,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                ),
                cloudwatch.Alarm(
                    self,
                    "UnhealthyHostsAlarm",
                    alarm_description="Tasks fail the load balancer's health check",
                    metric=_combined(
                        "MAX",
                        [
                            g.metrics.unhealthy_host_count(
                                period=Duration.minutes(1), statistic="Maximum"
                            )
                            for g in groups
                        ],
                        Duration.minutes(1),
                    ),
                    threshold=1,
                    evaluation_periods=3,
                    comparison_operator=_AT_LEAST,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                ),
            ]
            self.alarms += self.target_group_alarms
        action = cloudwatch_actions.SnsAction(self.topic)
        for alarm in self.alarms:
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)


def _combined(how: str, metrics: list[cloudwatch.IMetric], period: Duration) -> cloudwatch.IMetric:
    """The one metric, or the metrics summed (``+``) or their maximum (``MAX``), a missing
    point counting as 0: the idle target group of a blue/green service reports nothing."""
    if len(metrics) == 1:
        return metrics[0]
    names = {f"m{i}": m for i, m in enumerate(metrics)}
    filled = [f"FILL({name}, 0)" for name in names]
    expression = " + ".join(filled) if how == "+" else f"MAX([{', '.join(filled)}])"
    return cloudwatch.MathExpression(expression=expression, using_metrics=names, period=period)
