"""The deployment strategy as the app composes it from cdk.json.

cdk.json's environments deploy rolling (blue/green is opt-in); the frontend's blue/green is
checked on the session's opt-in variant of dev, which cdk-nag, cfn-lint and checkov see too.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack

from stacks.service_stack import ServiceStack
from tests.conftest import ENV_NAMES, OptInVariant, Synthesized
from traced_fargate.production_listener_rule.handler.index import contract


def _service(stack: ServiceStack, template: dict[str, Any], role: str) -> dict[str, Any]:
    service = (stack.frontend if role == "frontend" else stack.backend).service
    logical_id = Stack.of(service).resolve(service.node.default_child.logical_id)
    return dict(template["Resources"][logical_id]["Properties"])


def test_cdk_json_environments_deploy_rolling(synthesized: Synthesized) -> None:
    for env in ENV_NAMES:
        stack = synthesized.stack(env, "Service")
        assert isinstance(stack, ServiceStack)
        template = synthesized.template_json(env, "Service")
        for role in ("frontend", "backend"):
            configuration = _service(stack, template, role)["DeploymentConfiguration"]
            assert "Strategy" not in configuration
            assert configuration["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
        assert not [
            r for r in template["Resources"].values() if r["Type"] == contract.RESOURCE_TYPE
        ]


def test_the_variant_frontend_deploys_blue_green_and_the_backend_rolls(
    opt_in_variant: OptInVariant,
) -> None:
    stack = opt_in_variant.stage.service
    frontend = _service(stack, opt_in_variant.service, "frontend")
    assert frontend["DeploymentConfiguration"]["Strategy"] == "BLUE_GREEN"
    assert frontend["DeploymentConfiguration"]["BakeTimeInMinutes"] == 3
    assert set(frontend["LoadBalancers"][0]["AdvancedConfiguration"]) == {
        "AlternateTargetGroupArn",
        "ProductionListenerRule",
        "RoleArn",
    }
    backend = _service(stack, opt_in_variant.service, "backend")
    assert "Strategy" not in backend["DeploymentConfiguration"]
    rules = [
        r
        for r in opt_in_variant.service["Resources"].values()
        if r["Type"] == contract.RESOURCE_TYPE
    ]
    assert len(rules) == 1


def test_the_frontend_url_and_the_load_clients_grant_stay_on_the_listener(
    opt_in_variant: OptInVariant,
) -> None:
    frontend = opt_in_variant.stage.service.frontend
    assert frontend.load_balancer is not None
    assert frontend.listener is frontend.load_balancer.listener
    assert frontend.url == frontend.load_balancer.url
