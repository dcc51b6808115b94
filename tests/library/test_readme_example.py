"""The library examples of both READMEs synthesize as written.

- README.md, "Use the constructs in your own app": the deployment in one stack.
- constructs/README.md (the distribution's readme), "Minimal example".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = {
    "repository": (ROOT / "README.md", "Use the constructs in your own app"),
    "distribution": (ROOT / "constructs" / "README.md", "Minimal example"),
}

Resources = dict[str, Any]


def readme_example(readme: Path, heading: str) -> str:
    section = readme.read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, f"{readme.name}, {heading!r}: a Python example"
    return match.group(1)


def synthesize(example: str, tmp_path: Path) -> Resources:
    """Run the example with its app folder and outdir under ``tmp_path``; its resources."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\n")
    # aws-cdk-lib's runtime was started before this test: it resolves relative paths
    # against its own working directory and read its environment then.
    # CloudFormation's synth-time checks are off, as in every test here.
    example = example.replace('from_asset("app")', f'from_asset("{tmp_path / "app"}")').replace(
        "App()", f"App(outdir='{tmp_path / 'out'}', builtin_cloud_formation_validation=False)"
    )
    assert example.count(str(tmp_path)) == 2
    exec(compile(example, "README.md", "exec"), {})
    templates = list((tmp_path / "out").glob("*.template.json"))
    assert [t.name for t in templates] == ["Traced.template.json"]
    return dict(json.loads(templates[0].read_text())["Resources"])


def by_type(resources: Resources, resource_type: str) -> Resources:
    return {k: r for k, r in resources.items() if r["Type"] == resource_type}


def tracing_image(resources: Resources) -> str:
    (task,) = by_type(resources, "AWS::ECS::TaskDefinition").values()
    (tracing,) = [c for c in task["Properties"]["ContainerDefinitions"] if c["Name"] == "tracing"]
    return json.dumps(tracing["Image"])


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Resources]:
    """Each README's example, synthesized once per module."""
    done: dict[str, Resources] = {}

    def resources(name: str) -> Resources:
        if name not in done:
            readme, heading = EXAMPLES[name]
            example = readme_example(readme, heading)
            done[name] = synthesize(example, tmp_path_factory.mktemp(name))
        return done[name]

    return resources


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_readme_example_runs_the_sidecar_through_the_cache(
    name: str, synthesized: Callable[[str], Resources]
) -> None:
    resources = synthesized(name)
    assert len(by_type(resources, "AWS::ECR::PullThroughCacheRule")) == 1
    assert "/traced-ecr-public/xray/aws-xray-daemon:" in tracing_image(resources)
    (service,) = by_type(resources, "AWS::ECS::Service").values()
    assert "DesiredCount" not in service["Properties"]
    assert len(by_type(resources, "AWS::ElasticLoadBalancingV2::LoadBalancer")) == 1


def test_repository_readme_example_waits_for_and_closes_the_egress(
    synthesized: Callable[[str], Resources],
) -> None:
    resources = synthesized("repository")
    types = {r["Type"]: (k, r) for k, r in resources.items()}
    assert "Custom::TemporaryEgressTeardown" in types
    egress_id, _ = types["Custom::TemporaryEgress"]
    for waiting in ("AWS::ECS::Service", "AWS::EC2::Instance"):
        assert egress_id in types[waiting][1]["DependsOn"], f"{waiting} waits for the egress"
