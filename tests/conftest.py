"""Session-wide fixtures: the whole app is synthesized once per test session."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack, Validations, cx_api
from aws_cdk.assertions import Template

from stacks.app_builder import build_app
from stacks.config import EnvironmentConfig, load_environments
from stacks.stage import TracedFargateStage

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def cdk_json_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]
    return context


def new_app(outdir: str | None = None, **context: Any) -> App:
    """An App with the project's feature flags, without CloudFormation's synth-time checks
    (cfn-lint runs on the test assembly afterwards in `make test`)."""
    flags = {k: v for k, v in cdk_json_context().items() if k != "environments"}
    return App(
        context={**flags, **context},
        outdir=outdir,
        builtin_cloud_formation_validation=False,
    )


def bare_app(outdir: str | None = None) -> App:
    """An App as a library consumer has it: none of the project's feature flags, and
    without CloudFormation's synth-time checks (as new_app)."""
    return App(outdir=outdir, builtin_cloud_formation_validation=False)


@dataclasses.dataclass(frozen=True)
class ExampleApp:
    """examples/shared_platform, built on a bare App under cdk-nag and synthesized."""

    built: Any
    assembly: cx_api.CloudAssembly
    directory: Path


@pytest.fixture(scope="session")
def shared_platform(tmp_path_factory: pytest.TempPathFactory) -> ExampleApp:
    """The example app, synthesized once per session for every module that reads it."""
    from cdk_nag import AwsSolutionsChecks

    from examples.shared_platform.app import build

    outdir = tmp_path_factory.mktemp("shared-platform")
    app = bare_app(str(outdir))
    built = build(app)
    # An open finding makes synth raise: reaching the tests means there is none.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return ExampleApp(built, app.synth(), outdir)


@pytest.fixture(scope="session")
def environments() -> list[EnvironmentConfig]:
    return load_environments(cdk_json_context()["environments"])


class Synthesized:
    """The app built from cdk.json, synthesized once; templates by environment and stack."""

    def __init__(self, stages: list[TracedFargateStage], assembly: cx_api.CloudAssembly) -> None:
        self.stages = {s.stage_name: s for s in stages}
        self.assembly = assembly
        self._templates: dict[tuple[str, str], Template] = {}

    def stack(self, env: str, stack_id: str) -> Stack:
        node = self.stages[env].node.find_child(stack_id)
        assert isinstance(node, Stack)
        return node

    def template(self, env: str, stack_id: str) -> Template:
        key = (env, stack_id)
        if key not in self._templates:
            stage_assembly = self.assembly.get_nested_assembly(f"assembly-{env}")
            stack = self.stack(env, stack_id)
            artifact = stage_assembly.get_stack_artifact(stack.artifact_id)
            self._templates[key] = Template.from_json(artifact.template)
        return self._templates[key]

    def template_json(self, env: str, stack_id: str) -> dict[str, Any]:
        return dict(self.template(env, stack_id).to_json())

    def stack_ids(self, env: str) -> list[str]:
        return [c.node.id for c in self.stages[env].node.children if isinstance(c, Stack)]


@pytest.fixture(scope="session")
def synthesized(environments: list[EnvironmentConfig]) -> Iterator[Synthesized]:
    outdir = os.environ.get("CDK_TEST_OUTDIR")
    with tempfile.TemporaryDirectory(prefix="cdk-test-") as tmp:
        target = outdir or tmp
        if outdir:
            # Stale assemblies would be linted by cfn-lint after the tests.
            shutil.rmtree(outdir, ignore_errors=True)
        app = new_app(outdir=target)
        stages = build_app(app, environments)
        yield Synthesized(stages, app.synth())


@dataclasses.dataclass(frozen=True)
class OptInVariant:
    """dev with the opt-ins cdk.json leaves off: logging firelens, ECS Exec on the frontend
    only, the frontend on blue/green deployments. Synthesized once per session under the
    app's cdk-nag checks; its Service template joins the test assembly, so cfn-lint and
    checkov scan it too."""

    config: EnvironmentConfig
    stage: TracedFargateStage
    service: dict[str, Any]
    registry: dict[str, Any]


@pytest.fixture(scope="session")
def opt_in_variant(environments: list[EnvironmentConfig], synthesized: Synthesized) -> OptInVariant:
    # After `synthesized`, which empties CDK_TEST_OUTDIR first.
    dev = next(e for e in environments if e.name == "dev")
    config = dataclasses.replace(
        dev,
        logging="firelens",
        frontend=dataclasses.replace(dev.frontend, deployment="blue-green", bake_time_minutes=3),
        backend=dataclasses.replace(dev.backend, enable_exec=False),
    )
    app = new_app()
    (stage,) = build_app(app, [config])
    # Raises on any unacknowledged cdk-nag finding.
    stage_assembly = app.synth().get_nested_assembly(f"assembly-{stage.stage_name}")
    service = stage_assembly.get_stack_artifact(stage.service.artifact_id).template
    registry = stage_assembly.get_stack_artifact(stage.registry.artifact_id).template
    outdir = os.environ.get("CDK_TEST_OUTDIR")
    if outdir:
        target = Path(outdir) / "assembly-variant-opt-in"
        target.mkdir(parents=True, exist_ok=True)
        (target / "Service.template.json").write_text(json.dumps(service))
    return OptInVariant(config, stage, service, registry)


ENV_NAMES = ["dev", "prod"]
STACK_IDS = ["Network", "Registry", "Service", "LoadTest", "TraceCheck"]

HASH = re.compile(r"[0-9a-f]{64}")


def mask_hashes(template: dict[str, Any]) -> Any:
    """Replace asset hashes, which change with any byte of an asset, by a fixed marker."""
    return json.loads(HASH.sub("<asset-hash>", json.dumps(template, sort_keys=True)))


def render(value: Any) -> str:
    """A template string value as text: Fn::Join of literals and Refs, Refs as <Name>."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return f"<{value['Ref']}>"
    parts = value["Fn::Join"][1]
    return "".join(render(p) for p in parts)
