"""The README's library example synthesizes as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import ROOT


def readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Use the constructs in your own app", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "the README has a Python example for the library"
    return match.group(1)


def test_readme_library_example_synthesizes(
    tmp_path: Path,
) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\n")
    # aws-cdk-lib's runtime was started before this test: it resolves relative paths
    # against its own working directory and read its environment then.
    example = (
        readme_example()
        .replace('from_asset("app")', f'from_asset("{tmp_path / "app"}")')
        .replace("App()", f"App(outdir='{tmp_path / 'out'}')")
    )
    assert example.count(str(tmp_path)) == 2
    exec(compile(example, "README.md", "exec"), {})
    templates = list((tmp_path / "out").glob("*.template.json"))
    assert [t.name for t in templates] == ["Traced.template.json"]
    resources = json.loads(templates[0].read_text())["Resources"]
    by_type = {r["Type"]: (k, r) for k, r in resources.items()}
    assert "Custom::TemporaryEgressTeardown" in by_type
    assert "AWS::ECR::PullThroughCacheRule" in by_type
    egress_id, _ = by_type["Custom::TemporaryEgress"]
    for waiting in ("AWS::ECS::Service", "AWS::EC2::Instance"):
        assert egress_id in by_type[waiting][1]["DependsOn"], f"{waiting} waits for the egress"
