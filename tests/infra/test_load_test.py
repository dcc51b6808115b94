"""The load client of each environment drives the frontend's chain route by default."""

from __future__ import annotations

import pytest

from stacks.service_stack import CHAIN_PATH
from tests.conftest import ENV_NAMES, Synthesized


@pytest.mark.parametrize("env", ENV_NAMES)
def test_the_load_test_document_drives_the_chain_by_default(
    synthesized: Synthesized, env: str
) -> None:
    template = synthesized.template_json(env, "LoadTest")
    (document,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::SSM::Document"]
    assert (
        document["Properties"]["Content"]["parameters"]["path"]["default"]
        == CHAIN_PATH
        == ("/chain")
    )
    (instance,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::EC2::Instance"]
    files = instance["Metadata"]["AWS::CloudFormation::Init"]["config"]["files"]
    script = str(files["/usr/local/bin/loadtest"]["content"])
    assert 'path="${1:-/chain}"' in script
