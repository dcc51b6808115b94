"""An encrypted SNS topic that CloudWatch alarms of this account and region can publish to."""

from __future__ import annotations

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

CLOUDWATCH = "cloudwatch.amazonaws.com"


class AlarmTopic(Construct):
    """An SNS topic under a customer-managed key, SSL-only, that CloudWatch alarms publish to.

    A topic policy replaces SNS's default policy, so the SSL-only Deny alone would leave
    CloudWatch without any Allow: alarms would fire and notify no one. The policy here
    allows ``cloudwatch.amazonaws.com`` to publish only for alarms of the topic's own
    account and region (``aws:SourceAccount``, ``aws:SourceArn``). CloudWatch cannot
    publish to a topic under the AWS-managed SNS key, hence the customer key, whose policy
    lets CloudWatch encrypt messages for the topic.

    Children (construct ids are stable): ``Key``, ``Topic``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        display_name: str | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
    ) -> None:
        """
        :param display_name: the topic's display name (the sender of e-mail notifications).
            Default: none.
        :param removal_policy: applies to the key. Default: DESTROY (after the KMS
            waiting period): the topic holds no data.
        """
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.key = kms.Key(
            self,
            "Key",
            description="Encrypts the alarm topic",
            enable_key_rotation=True,
            removal_policy=removal_policy,
        )
        """The topic's KMS key."""
        self.key.grant(iam.ServicePrincipal(CLOUDWATCH), "kms:Decrypt", "kms:GenerateDataKey*")
        self.topic = sns.Topic(
            self, "Topic", display_name=display_name, master_key=self.key, enforce_ssl=True
        )
        """The ``sns.Topic``."""
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsOfThisAccount",
                principals=[iam.ServicePrincipal(CLOUDWATCH)],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name="*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    },
                },
            )
        )

    @property
    def topic_arn(self) -> str:
        """The topic's ARN."""
        return self.topic.topic_arn
