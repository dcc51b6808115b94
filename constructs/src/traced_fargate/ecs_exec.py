"""ECS Exec: where sessions are encrypted and logged, and what a task needs for them.

``aws ecs execute-command`` opens a Session Manager session into a running container:
the ECS agent bind-mounts the SSM agent into the container, which reaches the
``ssmmessages`` endpoint with the task role. :class:`ExecuteCommandSessions` is the
cluster side (``ecs.Cluster(execute_command_configuration=sessions.configuration)``):
sessions encrypted with a KMS key and their output logged to an encrypted log group.
:class:`~traced_fargate.TracedFargateService` with ``enable_exec=True`` is the task side.

**Read-only root filesystem.** The SSM agent writes its state under
``/var/lib/amazon/ssm`` and its logs under ``/var/log/amazon/ssm``; under a read-only
root filesystem it crashes soon after launch and every session fails
(containers-roadmap#1359). With exec on, the app container gets a writable task volume
at each of :data:`AGENT_PATHS` (their parents, which the agent creates the ``ssm``
directories in), as AWS's ECS Exec workaround for read-only containers does; the rest
of the root filesystem stays read-only.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from traced_fargate._log_encryption import log_encryption_key

AGENT_PATHS = ("/var/lib/amazon", "/var/log/amazon")
"""Where the SSM agent writes inside the container: writable task volumes with exec on."""

SSM_MESSAGES_ACTIONS = (
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
)
"""What the task role needs for the agent's channels; they take no resource ARN."""


class ExecuteCommandSessions(Construct):
    """A KMS key and a log group for ECS Exec sessions, as a cluster's
    ``execute_command_configuration`` (:attr:`configuration`).

    The key encrypts the session data channel (the caller of ``execute-command`` needs
    ``kms:GenerateDataKey`` on it, the task role ``kms:Decrypt``, which the service
    grants) and the log group, which receives each session's output
    (``logging OVERRIDE``, ``cloudWatchEncryptionEnabled``).

    Children (construct ids are stable): ``Key``, ``LogGroup``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param log_retention: retention of the session log group. Default: one year
            (an audit trail of what was run in production containers).
        :param removal_policy: applies to the key and the log group. Default: RETAIN.
        """
        super().__init__(scope, construct_id)
        self.key: kms.Key = log_encryption_key(
            self,
            "Key",
            description="Encrypts ECS Exec sessions and their log group",
            removal_policy=removal_policy,
        )
        """The key that encrypts the sessions and their log group."""
        self.log_group: logs.LogGroup = logs.LogGroup(
            self,
            "LogGroup",
            retention=log_retention,
            encryption_key=self.key,
            removal_policy=removal_policy,
        )
        """The log group that receives each session's output."""
        # The configuration names the key through a reference: a service with exec on
        # adds its own statements to the policy of a key it is given (one for the Logs
        # service with kms:Describe*, which under an encryption-context condition can
        # never be allowed, and the account root, which the key has), whereas the
        # policy above already says what Logs may do. The task role's kms grants are
        # IAM policies and reach the key the same way.
        key_reference = kms.Key.from_key_arn(self, "KeyReference", self.key.key_arn)
        self.configuration: ecs.ExecuteCommandConfiguration = ecs.ExecuteCommandConfiguration(
            kms_key=key_reference,
            logging=ecs.ExecuteCommandLogging.OVERRIDE,
            log_configuration=ecs.ExecuteCommandLogConfiguration(
                cloud_watch_log_group=self.log_group,
                cloud_watch_encryption_enabled=True,
            ),
        )
        """The cluster's ``execute_command_configuration``."""
