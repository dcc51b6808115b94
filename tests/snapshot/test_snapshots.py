"""One masked snapshot per stack per environment, for reviewing what a change does.

Update after an intended change with: `.venv/bin/python -m pytest tests/snapshot --snapshot-update`
"""

from __future__ import annotations

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from tests.conftest import ENV_NAMES, STACK_IDS, Synthesized, mask_hashes


def test_every_stack_has_a_snapshot(synthesized: Synthesized) -> None:
    for env in ENV_NAMES:
        assert synthesized.stack_ids(env) == STACK_IDS


@pytest.mark.parametrize("stack_id", STACK_IDS)
@pytest.mark.parametrize("env", ENV_NAMES)
def test_template_snapshot(
    synthesized: Synthesized, snapshot: SnapshotAssertion, env: str, stack_id: str
) -> None:
    template = mask_hashes(synthesized.template_json(env, stack_id))
    assert template == snapshot.use_extension(JSONSnapshotExtension)
