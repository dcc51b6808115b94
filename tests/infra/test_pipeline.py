"""The delivery pipeline: built once per module from cdk.json plus a pipeline section."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import cx_api

from stacks.app_builder import build_app
from stacks.config import ConfigError, load_environments
from stacks.pipeline_config import load_pipeline
from stacks.pipeline_stack import (
    IMAGE_SCRIPT,
    PROMOTE_SCRIPT,
    RELEASE_TAG,
    PipelineStack,
    tag_parameter_name,
    trace_map_url,
)
from tests.conftest import Synthesized, cdk_json_context, new_app
from tests.iam_policy_check import check_templates

DEV_ACCOUNT = "111111111111"
CONNECTION = (
    "arn:aws:codeconnections:ap-northeast-1:111111111111:connection/"
    "0b1c2d3e-aaaa-bbbb-cccc-123456789012"
)
SECTION: dict[str, Any] = {
    "repository": "acme/traced-fargate",
    "branch": "main",
    "connection_arn": CONNECTION,
    "dev": "dev",
    "prod": "prod",
    "approval_emails": ["release@example.com"],
}


def _environments() -> dict[str, Any]:
    environments: dict[str, Any] = copy.deepcopy(cdk_json_context()["environments"])
    for env in environments.values():
        env["account"] = DEV_ACCOUNT
    return environments


class Built:
    def __init__(self, stack: PipelineStack, assembly: cx_api.CloudAssembly) -> None:
        self.stack = stack
        self.assembly = assembly
        self.template: dict[str, Any] = assembly.get_stack_by_name(stack.stack_name).template
        self.stages = {
            s["Name"]: s["Actions"]
            for s in self.resource("AWS::CodePipeline::Pipeline")["Properties"]["Stages"]
        }

    def resources(self, type_name: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.template["Resources"].items() if r["Type"] == type_name}

    def resource(self, type_name: str) -> dict[str, Any]:
        (only,) = self.resources(type_name).values()
        return only

    def action(self, stage: str, name: str) -> dict[str, Any]:
        return next(a for a in self.stages[stage] if a["Name"] == name)

    def project(self, action: dict[str, Any]) -> dict[str, Any]:
        project: dict[str, Any] = self.template["Resources"][
            action["Configuration"]["ProjectName"]["Ref"]
        ]
        return project

    def buildspec(self, action: dict[str, Any]) -> dict[str, Any]:
        spec: dict[str, Any] = json.loads(self.project(action)["Properties"]["Source"]["BuildSpec"])
        return spec

    def stage_template(self, env: str, stack_id: str) -> dict[str, Any]:
        stage = self.stack.dev if env == "dev" else self.stack.prod
        stack = stage.node.find_child(stack_id)
        nested = self.assembly.get_nested_assembly(f"assembly-Pipeline-{env}")
        template: dict[str, Any] = nested.get_stack_artifact(stack.artifact_id).template
        return template


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    outdir = tmp_path_factory.mktemp("pipeline")
    environments = _environments()
    app = new_app(outdir=str(outdir), environments=environments, pipeline=SECTION)
    configs = load_environments(environments)
    build_app(app, configs, load_pipeline(SECTION, configs))
    stack = app.node.find_child("Pipeline")
    assert isinstance(stack, PipelineStack)
    return Built(stack, app.synth())


def test_stages_run_gate_then_dev_then_approval_then_prod(built: Built) -> None:
    names = list(built.stages)
    assert names[:3] == ["Source", "Build", "UpdatePipeline"]
    assert names.index("dev") < names.index("prod") == len(names) - 1


def test_synth_step_runs_the_two_commands_and_outputs_cdk_out(built: Built) -> None:
    (synth,) = built.stages["Build"]
    spec = built.buildspec(synth)
    assert spec["phases"]["build"]["commands"] == ["make synth", "make test"]
    assert spec["artifacts"]["base-directory"] == "cdk.out"


def _run_order(actions: list[dict[str, Any]], name: str) -> int:
    return int(next(a["RunOrder"] for a in actions if a["Name"] == name))


def test_image_step_runs_after_the_dev_registry_and_before_the_dev_service(built: Built) -> None:
    dev = built.stages["dev"]
    image = built.action("dev", "Service.Image")
    assert image["ActionTypeId"]["Provider"] == "CodeBuild"
    assert built.project(image)["Properties"]["Environment"]["PrivilegedMode"] is True
    assert (
        _run_order(dev, "Registry.Deploy")
        < image["RunOrder"]
        < _run_order(dev, "Service.Prepare")
        < _run_order(dev, "Service.Deploy")
    )
    spec = built.buildspec(image)
    assert spec["phases"]["build"]["commands"] == [IMAGE_SCRIPT]
    assert spec["env"]["shell"] == "bash"
    variables = {
        v["name"]: v["value"] for v in json.loads(image["Configuration"]["EnvironmentVariables"])
    }
    assert variables["COMMIT_ID"].endswith(".CommitId}")
    assert variables["REPOSITORY_URI"].endswith(".AppRepositoryUri}")


def test_dev_stage_deploys_every_stack_of_the_environment(built: Built) -> None:
    deployed = {
        a["Configuration"]["StackName"]
        for a in built.stages["dev"]
        if "StackName" in a["Configuration"]
    }
    assert {"dev-Network", "dev-Registry", "dev-Service"} <= deployed
    assert deployed == {
        f"dev-{s.node.id}" for s in built.stack.dev.node.children if hasattr(s, "stack_name")
    }
    # The trace check runs as part of its stack's deploy (a trigger), inside the dev stage,
    # so a failed check stops the pipeline before the approval.
    if built.stack.dev.trace_check is not None:
        dev = built.stages["dev"]
        assert _run_order(dev, "TraceCheck.Deploy") > _run_order(dev, "Service.Deploy")


def test_prod_waits_for_an_approval_that_notifies_the_topic_with_the_trace_map(
    built: Built,
) -> None:
    prod = built.stages["prod"]
    approve = built.action("prod", "Approve")
    assert approve["ActionTypeId"] == {
        "Category": "Approval",
        "Owner": "AWS",
        "Provider": "Manual",
        "Version": "1",
    }
    assert approve["RunOrder"] == 1
    assert all(a["RunOrder"] > 1 for a in prod if a is not approve)
    topics = built.resources("AWS::SNS::Topic")
    assert approve["Configuration"]["NotificationArn"] == {"Ref": next(iter(topics))}
    assert approve["Configuration"]["ExternalEntityLink"] == trace_map_url("ap-northeast-1")
    assert approve["Configuration"]["ExternalEntityLink"] == built.stack.review_url


def test_approval_topic_is_encrypted_and_lets_codestar_notifications_publish(built: Built) -> None:
    topic = built.resource("AWS::SNS::Topic")
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key_statements = built.template["Resources"][key_id]["Properties"]["KeyPolicy"]["Statement"]
    assert any(
        s.get("Principal") == {"Service": "codestar-notifications.amazonaws.com"}
        and "kms:GenerateDataKey*" in s["Action"]
        for s in key_statements
    )
    policy = built.resource("AWS::SNS::TopicPolicy")["Properties"]["PolicyDocument"]["Statement"]
    allow = next(s for s in policy if s["Effect"] == "Allow")
    assert allow["Principal"] == {"Service": "codestar-notifications.amazonaws.com"}
    assert allow["Condition"] == {"StringEquals": {"aws:SourceAccount": DEV_ACCOUNT}}
    assert any(s["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(s) for s in policy)
    # The pipeline role publishes through the approval action's own grant, key included.
    publisher = [
        p
        for p in built.resources("AWS::IAM::Policy").values()
        if "sns:Publish" in json.dumps(p) and "kms:GenerateDataKey*" in json.dumps(p)
    ]
    assert publisher


def test_promotion_copies_the_dev_image_as_prod_after_approval(built: Built) -> None:
    prod = built.stages["prod"]
    promote = built.action("prod", "Service.Promote")
    assert (
        1
        < _run_order(prod, "Registry.Deploy")
        < promote["RunOrder"]
        < _run_order(prod, "Service.Prepare")
    )
    assert built.buildspec(promote)["phases"]["build"]["commands"] == [PROMOTE_SCRIPT]
    variables = {
        v["name"]: v["value"] for v in json.loads(promote["Configuration"]["EnvironmentVariables"])
    }
    image = built.action("dev", "Service.Image")
    dev_variables = {
        v["name"]: v["value"] for v in json.loads(image["Configuration"]["EnvironmentVariables"])
    }
    # The source is the repository the dev step pushed to; the commit is the same variable.
    assert variables["SOURCE_REPOSITORY_URI"] == dev_variables["REPOSITORY_URI"]
    assert variables["COMMIT_ID"] == dev_variables["COMMIT_ID"]
    assert variables["REPOSITORY_URI"] != dev_variables["REPOSITORY_URI"]


# The scripts, run against stub `aws` and `docker` commands that log their arguments.
_STUB_AWS = """#!/bin/bash
echo "aws $*" >> "$LOG"
case "$*" in
  *get-login-password*) echo token ;;
  *describe-images*)
    for pair in $DIGESTS; do
      [[ "$*" == *"${pair%%=*}"* ]] && { echo "${pair#*=}"; exit 0; }
    done
    echo "ImageNotFoundException" >&2; exit 254 ;;
esac
"""
_STUB_DOCKER = """#!/bin/bash
echo "docker $*" >> "$LOG"
exit 0
"""
DEV_URI = "111111111111.dkr.ecr.ap-northeast-1.amazonaws.com/dev-repo"
PROD_URI = "111111111111.dkr.ecr.ap-northeast-1.amazonaws.com/prod-repo"


def _run(tmp_path: Path, script: str, digests: str, **env: str) -> tuple[int, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("aws", _STUB_AWS), ("docker", _STUB_DOCKER)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "log"
    log.write_text("")
    result = subprocess.run(
        ["bash", "-c", script],
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "LOG": str(log),
            "DIGESTS": digests,
            "COMMIT_ID": "abc123",
            **env,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode, log.read_text().splitlines()


def test_image_script_builds_pushes_and_publishes_the_dev_tag(tmp_path: Path) -> None:
    code, log = _run(
        tmp_path,
        IMAGE_SCRIPT,
        "",
        REPOSITORY_URI=DEV_URI,
        TAG_PARAMETER="/traced-fargate/dev/app-image-tag",
    )
    assert code == 0
    assert f"docker build --platform linux/amd64 -t {DEV_URI}:dev-abc123 sample_app" in log
    assert f"docker push {DEV_URI}:dev-abc123" in log
    assert log[-1] == (
        "aws ssm put-parameter --region ap-northeast-1 --overwrite --type String "
        "--name /traced-fargate/dev/app-image-tag --value dev-abc123"
    )


def test_image_script_reuses_the_image_of_a_retried_commit(tmp_path: Path) -> None:
    code, log = _run(
        tmp_path, IMAGE_SCRIPT, "dev-abc123=sha256:aa", REPOSITORY_URI=DEV_URI, TAG_PARAMETER="/p"
    )
    assert code == 0
    assert not [line for line in log if line.startswith(("docker build", "docker push"))]
    assert log[-1].endswith("--name /p --value dev-abc123")


def test_promote_script_fails_when_the_copy_has_another_digest(tmp_path: Path) -> None:
    env = {"SOURCE_REPOSITORY_URI": DEV_URI, "REPOSITORY_URI": PROD_URI, "TAG_PARAMETER": "/p"}
    code, log = _run(tmp_path, PROMOTE_SCRIPT, "dev-abc123=sha256:aa prod-abc123=sha256:bb", **env)
    assert code != 0
    assert not [line for line in log if "put-parameter" in line]
    code, log = _run(tmp_path, PROMOTE_SCRIPT, "dev-abc123=sha256:aa prod-abc123=sha256:aa", **env)
    assert code == 0
    assert log[-1].endswith("--name /p --value prod-abc123")
    assert not [line for line in log if line.startswith("docker build")]


def test_promote_script_copies_by_digest_and_fails_without_a_dev_image(tmp_path: Path) -> None:
    env = {"SOURCE_REPOSITORY_URI": DEV_URI, "REPOSITORY_URI": PROD_URI, "TAG_PARAMETER": "/p"}
    # No prod tag yet: the copy runs, then the stub still finds no prod image -> failure.
    code, log = _run(tmp_path, PROMOTE_SCRIPT, "dev-abc123=sha256:aa", **env)
    assert (
        f"docker buildx imagetools create --tag {PROD_URI}:prod-abc123 {DEV_URI}@sha256:aa" in log
    )
    assert code != 0
    code, log = _run(tmp_path, PROMOTE_SCRIPT, "", **env)
    assert code != 0
    assert not [line for line in log if "imagetools" in line or "put-parameter" in line]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_each_service_reads_its_tag_from_its_parameter_at_deploy_time(
    built: Built, env: str
) -> None:
    template = built.stage_template(env, "Service")
    (name,) = [
        k
        for k, p in template["Parameters"].items()
        if p["Type"] == "AWS::SSM::Parameter::Value<String>"
        and p["Default"] == tag_parameter_name(env)
    ]
    images = [
        c["Image"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::ECS::TaskDefinition"
        for c in r["Properties"]["ContainerDefinitions"]
        if c["Name"] == "app"
    ]
    assert len(images) == 2
    # <repository uri>:<the parameter's value>
    assert all(i["Fn::Join"][1][-2:] == [":", {"Ref": name}] for i in images), images
    step = "Service.Image" if env == "dev" else "Service.Promote"
    project = built.project(built.action(env, step))
    variables = {
        v["Name"]: v["Value"] for v in project["Properties"]["Environment"]["EnvironmentVariables"]
    }
    assert variables["TAG_PARAMETER"] == tag_parameter_name(env)


def test_pipeline_roles_have_no_star_actions(built: Built) -> None:
    actions = [
        action
        for policy in built.resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    ]
    assert actions
    assert [a for a in actions if a == "*" or a.endswith(":*")] == []


def test_pipeline_policies_pass_the_offline_iam_check(built: Built) -> None:
    # The stages' templates are those that test_iam_offline checks on the shipped app.
    report = check_templates([("Pipeline", built.template)])
    # CDK's own source grant names the old prefix's action on the new prefix's ARN; the
    # stack adds codeconnections:UseConnection beside it (checked below).
    problems = [p for p in report.problems if "codestar-connections:UseConnection" not in str(p)]
    assert not problems, "\n".join(map(str, problems))
    source_role = next(
        p for k, p in built.resources("AWS::IAM::Policy").items() if k.startswith("PipelineSource")
    )
    assert any(
        "codeconnections:UseConnection" in statement["Action"]
        and statement["Resource"] == CONNECTION
        for statement in source_role["Properties"]["PolicyDocument"]["Statement"]
    )


def test_steps_write_only_the_tagged_app_repositories(built: Built) -> None:
    registry = built.stage_template("dev", "Registry")
    tagged = [
        k
        for k, r in registry["Resources"].items()
        if {"Key": RELEASE_TAG, "Value": "dev"} in r["Properties"].get("Tags", [])
    ]
    assert [registry["Resources"][k]["Type"] for k in tagged] == ["AWS::ECR::Repository"]
    for policy in built.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "ecr:PutImage" in statement["Action"]:
                (key,) = statement["Condition"]["StringEquals"]
                assert key == f"ecr:ResourceTag/{RELEASE_TAG}"


def test_pipeline_is_nag_clean(built: Built) -> None:
    report = json.loads((Path(built.assembly.directory) / "validation-report.json").read_text())
    assert [v for r in report.get("pluginReports", []) for v in r.get("violations", [])] == []


def test_without_the_section_there_is_no_pipeline(synthesized: Synthesized) -> None:
    assert set(synthesized.stages) == {"dev", "prod"}
    names = [s.stack_name for s in synthesized.assembly.stacks_recursively]
    assert "Pipeline" not in names
    assert not any(n.startswith("Pipeline") for n in names)
    assert load_pipeline(None, []) is None


def _problems(section: Any, environments: dict[str, Any] | None = None) -> list[str]:
    configs = load_environments(environments or _environments())
    with pytest.raises(ConfigError) as error:
        load_pipeline(section, configs)
    return error.value.problems


def test_section_problems_are_one_line_per_key() -> None:
    problems = _problems(
        {
            "repository": "no-slash",
            "branch": "",
            "connection_arn": "arn:aws:codeconnections:ap-northeast-1:1234:connection/x",
            "dev": "staging",
            "prod": "prod",
            "approval_emails": ["not-an-address"],
            "extra": 1,
        }
    )
    where = "cdk.json: context.pipeline"
    assert [p.split(":")[1].strip() for p in problems] == [
        "context.pipeline.extra",
        "context.pipeline.repository",
        "context.pipeline.branch",
        "context.pipeline.connection_arn",
        "context.pipeline.approval_emails",
        "context.pipeline.dev",
    ]
    assert all(p.startswith(where) and "\n" not in p for p in problems)
    assert "'staging' is not an environment" in problems[-1]


def test_missing_keys_and_environments_without_account_are_reported() -> None:
    assert _problems({"branch": "main"})[0].endswith(
        "repository: missing; required keys: repository, branch, connection_arn, dev, prod"
    )
    agnostic = copy.deepcopy(cdk_json_context()["environments"])
    problems = _problems(SECTION, agnostic)
    assert len(problems) == 2
    assert "environment 'dev' needs account and region" in problems[0]


def test_codestar_connections_arn_is_accepted() -> None:
    section = {
        **SECTION,
        "connection_arn": CONNECTION.replace("codeconnections", "codestar-connections"),
    }
    config = load_pipeline(section, load_environments(_environments()))
    assert config is not None
    assert config.environment_names == ("dev", "prod")
