"""No security group of the app is open outbound by accident: a group created without any
inline egress rule gets EC2's allow-all rule, which separate egress resources do not remove."""

from __future__ import annotations

from tests.conftest import ENV_NAMES, Synthesized


def test_every_security_group_has_inline_egress(synthesized: Synthesized) -> None:
    checked = 0
    for env in ENV_NAMES:
        for stack_id in synthesized.stack_ids(env):
            resources = synthesized.template_json(env, stack_id)["Resources"]
            for logical_id, resource in resources.items():
                if resource["Type"] != "AWS::EC2::SecurityGroup":
                    continue
                checked += 1
                egress = resource["Properties"].get("SecurityGroupEgress")
                assert egress, f"{env}-{stack_id}/{logical_id} has no inline egress rule"
    assert checked >= 10
