"""load_client.enabled false: no instance, and the LoadTest stack still closes the egress
after the service has set up; with no egress either, there is no LoadTest stack."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest
from aws_cdk import cx_api

from stacks.app_builder import build_app
from stacks.config import load_environments
from stacks.stage import TracedFargateStage
from tests.conftest import cdk_json_context, new_app


@dataclass(frozen=True)
class Built:
    stage: TracedFargateStage
    assembly: cx_api.CloudAssembly

    def template(self, stack: Any) -> dict[str, Any]:
        template: dict[str, Any] = self.assembly.get_stack_artifact(stack.artifact_id).template
        return template


def _build(name: str, **sections: dict[str, Any]) -> Built:
    raw = copy.deepcopy(cdk_json_context()["environments"]["dev"])
    raw["load_client"]["enabled"] = False
    for section, values in sections.items():
        raw[section] = values
    (config,) = load_environments({name: raw})
    app = new_app()
    (stage,) = build_app(app, [config])
    return Built(stage, app.synth().get_nested_assembly(f"assembly-{name}"))


@pytest.fixture(scope="module")
def without_client() -> Built:
    return _build("noclient")


def test_no_instance_and_nothing_that_serves_one(without_client: Built) -> None:
    stage = without_client.stage
    assert stage.load_test is not None
    assert stage.load_test.client is None
    template = without_client.template(stage.load_test)
    types = {r["Type"] for r in template["Resources"].values()}
    assert types == {"Custom::TemporaryEgressTeardown"}
    assert "Outputs" not in template or not template["Outputs"]
    service = without_client.template(stage.service)
    ingress = [
        r["Properties"]
        for r in service["Resources"].values()
        if r["Type"] == "AWS::EC2::SecurityGroupIngress" and r["Properties"].get("FromPort") == 80
    ]
    assert ingress == [], "nobody to let in"


def test_the_egress_still_closes_after_the_service(without_client: Built) -> None:
    stage = without_client.stage
    assert stage.load_test is not None
    # The service is created only once the egress is open, and the teardown waits for the
    # service's stack (steady state: its images came through the cache) to complete.
    assert stage.network in stage.service.dependencies
    assert stage.service in stage.load_test.dependencies
    template = without_client.template(stage.load_test)
    (teardown,) = template["Resources"].values()
    assert "DependsOn" not in teardown, "no instance to wait for"
    assert teardown["Properties"]["Generation"].startswith("1-")
    assert template["Description"] == "traced-fargate noclient: closes the setup egress"


def test_no_client_and_no_egress_leaves_no_load_test_stack() -> None:
    # trace_check off: no TraceCheck stack either (the switch is asserted here, where an
    # app with it off is synthesized anyway).
    built = _build("bare", egress={"mode": "none"}, trace_check={"mode": "off"})
    assert built.stage.load_test is None
    assert built.stage.trace_check is None
    stacks = [s.stack_name for s in built.assembly.stacks]
    assert stacks == ["bare-Network", "bare-Registry", "bare-Service"]
