"""The delivery pipeline: source, synth (the gate), dev, a manual approval, prod.

How an image reaches each stage. The Service stacks of the pipeline's environments take
their app image tag from an SSM parameter (``registry.app_image_tag_parameter``), declared
as a template parameter of type ``AWS::SSM::Parameter::Value<String>``: CloudFormation
reads it when the deploy action creates the change set, so a tag that is only known while
the pipeline runs reaches an ordinary CloudFormation deploy action. A CodeBuild step
writes the parameter just before the Service stack's change set is created:

- dev: ``Image``, a pre-step of dev's Service stack, after dev's Registry stack deployed (the
  repository must exist, its URI comes from the Registry's output): builds ``sample_app/``
  once per commit, pushes ``dev-<commit>``, writes ``dev-<commit>`` to dev's parameter.
- prod: after the approval and prod's Registry stack, ``Promote`` copies the manifest of
  ``dev-<commit>`` by digest into prod's repository as ``prod-<commit>`` (no rebuild; the
  step fails unless both digests are equal), then writes prod's parameter.

Each repository's lifecycle rules then keep ``prod-*`` 100 days and ``dev-*`` 10 days.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jsii
from aws_cdk import CfnOutput, Stack, Tags, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.pipeline_config import PipelineConfig
from stacks.pipeline_nag import acknowledge_pipeline
from stacks.stage import TracedFargateStage

SYNTH_COMMANDS = ("make synth", "make test")
"""The README's two commands: the pipeline's gate is the CI gate."""

RELEASE_TAG = "traced-fargate:release-repository"
"""Tags the app repository of each pipeline environment: the only repositories its steps write."""
NOTIFICATIONS = "codestar-notifications.amazonaws.com"
BUILD_IMAGE = codebuild.LinuxBuildImage.STANDARD_7_0


def tag_parameter_name(environment: str) -> str:
    """The SSM parameter that holds the app image tag the environment deploys."""
    return f"/traced-fargate/{environment}/app-image-tag"


def trace_map_url(region: str) -> str:
    """The X-Ray trace map of ``region`` in the CloudWatch console."""
    return f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#xray:service-map/map"


def pipeline_environment(env: EnvironmentConfig) -> EnvironmentConfig:
    """``env`` as the pipeline deploys it: image tags from the environment's parameter."""
    registry = dataclasses.replace(
        env.registry, app_image_tag_parameter=tag_parameter_name(env.name)
    )
    return dataclasses.replace(env, registry=registry)


@jsii.implements(pipelines.ICodePipelineActionFactory)
class NotifyingApprovalStep(pipelines.Step):
    """A manual approval that notifies ``topic`` and links the reviewer to ``review_url``.

    CDK Pipelines' ManualApprovalStep takes no topic; this step produces CodePipeline's
    ``ManualApprovalAction`` itself.
    """

    def __init__(
        self, step_id: str, *, topic: sns.ITopic, review_url: str, information: str
    ) -> None:
        super().__init__(step_id)
        self.topic = topic
        self.review_url = review_url
        self.information = information

    def produce_action(
        self, stage: codepipeline.IStage, *, action_name: str, run_order: int, **_: Any
    ) -> pipelines.CodePipelineActionFactoryResult:
        stage.add_action(
            actions.ManualApprovalAction(
                action_name=action_name,
                run_order=run_order,
                notification_topic=self.topic,
                external_entity_link=self.review_url,
                additional_information=self.information,
            )
        )
        return pipelines.CodePipelineActionFactoryResult(run_orders_consumed=1)


class ApprovalTopic(Construct):
    """A KMS-encrypted, SSL-only topic for approval requests.

    The pipeline's role publishes through its IAM policy (the approval action grants it,
    including the key). The topic policy, which replaces SNS's default policy, adds
    CodeStar Notifications of this account; the key policy lets that service encrypt.
    """

    def __init__(self, scope: Construct, construct_id: str, *, emails: tuple[str, ...]) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.key = kms.Key(
            self, "Key", description="Encrypts the approval topic", enable_key_rotation=True
        )
        self.key.grant(iam.ServicePrincipal(NOTIFICATIONS), "kms:Decrypt", "kms:GenerateDataKey*")
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name="traced-fargate release approval",
            master_key=self.key,
            enforce_ssl=True,
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCodeStarNotificationsOfThisAccount",
                principals=[iam.ServicePrincipal(NOTIFICATIONS)],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))


class PipelineStack(Stack):
    """CDK Pipelines from the configured branch to dev, then, once approved, to prod."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: PipelineConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.source = pipelines.CodePipelineSource.connection(
            config.repository, config.branch, connection_arn=config.connection_arn
        )
        commit = self.source.source_attribute("CommitId")
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            synth=pipelines.CodeBuildStep(
                "Synth",
                input=self.source,
                commands=list(SYNTH_COMMANDS),
                primary_output_directory="cdk.out",
            ),
            cross_account_keys=True,
            enable_key_rotation=True,
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(build_image=BUILD_IMAGE)
            ),
        )
        self.dev = TracedFargateStage(self, config=pipeline_environment(config.dev))
        self.prod = TracedFargateStage(self, config=pipeline_environment(config.prod))
        dev_uri = self._repository_output(self.dev)
        prod_uri = self._repository_output(self.prod)

        self.image_step = self._step(
            "Image",
            config.dev,
            env={"COMMIT_ID": commit, "TAG_PARAMETER": tag_parameter_name(config.dev.name)},
            outputs={"REPOSITORY_URI": dev_uri},
            script=IMAGE_SCRIPT,
            environments=[config.dev],
        )
        self.pipeline.add_stage(
            self.dev,
            stack_steps=[pipelines.StackSteps(stack=self.dev.service, pre=[self.image_step])],
        )

        self.approval_topic = ApprovalTopic(self, "ApprovalTopic", emails=config.approval_emails)
        region = config.dev.region
        assert region is not None, "load_pipeline requires the region"
        self.review_url = trace_map_url(region)
        self.approval = NotifyingApprovalStep(
            "Approve",
            topic=self.approval_topic.topic,
            review_url=self.review_url,
            information=(
                f"{config.dev.name} deployed this commit and its deploy checks passed. "
                f"Review its traces on the trace map, then approve to promote the same "
                f"image to {config.prod.name}."
            ),
        )
        self.promote_step = self._step(
            "Promote",
            config.prod,
            env={
                "COMMIT_ID": commit,
                "TAG_PARAMETER": tag_parameter_name(config.prod.name),
            },
            outputs={"SOURCE_REPOSITORY_URI": dev_uri, "REPOSITORY_URI": prod_uri},
            script=PROMOTE_SCRIPT,
            environments=[config.dev, config.prod],
        )
        self.pipeline.add_stage(
            self.prod,
            pre=[self.approval],
            stack_steps=[pipelines.StackSteps(stack=self.prod.service, pre=[self.promote_step])],
        )
        self.pipeline.build_pipeline()
        self._grant_codeconnections(config.connection_arn)
        acknowledge_pipeline(self.pipeline)

    def _grant_codeconnections(self, connection_arn: str) -> None:
        """CDK's source action grants ``codestar-connections:UseConnection`` only; a
        connection under the ``codeconnections`` prefix also needs the new prefix's action."""
        if ":codeconnections:" not in connection_arn:
            return
        roles = [
            c
            for c in self.pipeline.pipeline.node.find_all()
            if isinstance(c, iam.Role) and "/Source/" in c.node.path
        ]
        for role in roles:
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["codeconnections:UseConnection"], resources=[connection_arn]
                )
            )

    @staticmethod
    def _repository_output(stage: TracedFargateStage) -> CfnOutput:
        Tags.of(stage.registry.app_repository).add(RELEASE_TAG, stage.stage_name)
        return CfnOutput(
            stage.registry,
            "AppRepositoryUri",
            value=stage.registry.app_repository.repository.repository_uri,
        )

    def _step(
        self,
        step_id: str,
        target: EnvironmentConfig,
        *,
        env: dict[str, str],
        outputs: dict[str, CfnOutput],
        script: str,
        environments: list[EnvironmentConfig],
    ) -> pipelines.CodeBuildStep:
        """A privileged CodeBuild step allowed to pull and push the app repositories of
        ``environments`` (found by their release tag) and to write ``target``'s
        tag parameter."""
        statements = [
            iam.PolicyStatement(
                sid="RegistryLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]
            ),
            iam.PolicyStatement(
                sid="WriteTheTagParameter",
                actions=["ssm:PutParameter", "ssm:GetParameter"],
                resources=[
                    Stack.of(self).format_arn(
                        service="ssm",
                        region=target.region,
                        account=target.account,
                        resource="parameter",
                        resource_name=tag_parameter_name(target.name).lstrip("/"),
                    )
                ],
            ),
        ]
        for source in environments:
            statements.append(
                iam.PolicyStatement(
                    sid=f"AppRepositoryOf{source.name.title().replace('-', '')}",
                    actions=[
                        "ecr:BatchCheckLayerAvailability",
                        "ecr:BatchGetImage",
                        "ecr:CompleteLayerUpload",
                        "ecr:DescribeImages",
                        "ecr:GetDownloadUrlForLayer",
                        "ecr:InitiateLayerUpload",
                        "ecr:PutImage",
                        "ecr:UploadLayerPart",
                    ],
                    resources=[
                        Stack.of(self).format_arn(
                            service="ecr",
                            region=source.region,
                            account=source.account,
                            resource="repository",
                            resource_name="*",
                        )
                    ],
                    conditions={"StringEquals": {f"ecr:ResourceTag/{RELEASE_TAG}": source.name}},
                )
            )
        return pipelines.CodeBuildStep(
            step_id,
            input=self.source,
            env=env,
            env_from_cfn_outputs=outputs,
            commands=[script],
            build_environment=codebuild.BuildEnvironment(build_image=BUILD_IMAGE, privileged=True),
            role_policy_statements=statements,
            partial_build_spec=codebuild.BuildSpec.from_object({"env": {"shell": "bash"}}),
        )


# Each step is one script: its functions and variables live in one shell, and set -eu stops
# it at the first failing command. The region of a repository is in its URI.
_PRELUDE = """set -eu
region() { echo "$1" | cut -d. -f4; }
login() {
  aws ecr get-login-password --region "$(region "$1")" |
    docker login --username AWS --password-stdin "${1%%/*}"
}
digest() {
  aws ecr describe-images --region "$(region "$1")" --repository-name "${1#*/}" \\
    --image-ids imageTag="$2" --query 'imageDetails[0].imageDigest' --output text \\
    2>/dev/null || true
}
publish_tag() {
  aws ssm put-parameter --region "$(region "$REPOSITORY_URI")" --overwrite --type String \\
    --name "$TAG_PARAMETER" --value "$TAG"
}
"""
IMAGE_SCRIPT = (
    _PRELUDE
    + """TAG="dev-$COMMIT_ID"
login "$REPOSITORY_URI"
# Tags are immutable: a retried execution of the same commit reuses its image.
if [ -z "$(digest "$REPOSITORY_URI" "$TAG")" ]; then
  docker build --platform linux/amd64 -t "$REPOSITORY_URI:$TAG" sample_app
  docker push "$REPOSITORY_URI:$TAG"
fi
publish_tag
"""
)
PROMOTE_SCRIPT = (
    _PRELUDE
    + """SOURCE_TAG="dev-$COMMIT_ID"
TAG="prod-$COMMIT_ID"
login "$SOURCE_REPOSITORY_URI"
login "$REPOSITORY_URI"
SOURCE_DIGEST="$(digest "$SOURCE_REPOSITORY_URI" "$SOURCE_TAG")"
[ -n "$SOURCE_DIGEST" ] || { echo "no image $SOURCE_TAG in $SOURCE_REPOSITORY_URI"; exit 1; }
# A copy of the manifest and its blobs by digest: the same image, not a rebuild.
if [ -z "$(digest "$REPOSITORY_URI" "$TAG")" ]; then
  docker buildx imagetools create --tag "$REPOSITORY_URI:$TAG" \\
    "$SOURCE_REPOSITORY_URI@$SOURCE_DIGEST"
fi
[ "$(digest "$REPOSITORY_URI" "$TAG")" = "$SOURCE_DIGEST" ] ||
  { echo "$TAG is not the image of $SOURCE_TAG"; exit 1; }
publish_tag
"""
)
