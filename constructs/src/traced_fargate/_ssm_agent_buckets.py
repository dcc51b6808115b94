"""The AWS-owned S3 buckets that SSM Agent on Linux reads to update itself and to patch.

Behind an S3 gateway endpoint these reads need the endpoint policy's permission. From
"SSM Agent communications with AWS managed S3 buckets"
(https://docs.aws.amazon.com/systems-manager/latest/userguide/ssm-agent-technical-details.html#ssm-agent-minimum-s3-permissions)
and "Reference: Amazon S3 buckets for patching operations"
(https://docs.aws.amazon.com/systems-manager/latest/userguide/patch-operations-s3-buckets.html),
both read 2026-12-01:

- ``amazon-ssm-<region>``: SSM Agent's installation packages and manifests
  (``AWS-UpdateSSMAgent``);
- ``aws-ssm-<region>``: modules of SSM Command documents, patching and agent updates included;
- ``patch-baseline-snapshot-<region>[-<suffix>]``: patch baseline snapshots
  (``AWS-RunPatchBaseline``);
- ``aws-patch-manager-<region>-<suffix>``: patching modules for Linux and Windows Server.

Left out on purpose: ``aws-windows-downloads-<region>`` (Windows-only documents),
``aws-patchmanager-macos-<region>-<suffix>`` (macOS), and the Distributor buckets an older
version of the page listed (``amazon-ssm-packages-<region>``, ``<region>-birdwatcher-prod``,
``aws-ssm-distributor-file-<region>``, ``aws-ssm-document-attachments-<region>``), which
serve package installation, not agent updates or patching.
"""

from __future__ import annotations

from aws_cdk import Stack, Token

PATCH_BUCKETS: dict[str, tuple[str, str]] = {
    # region: (aws-patch-manager bucket, patch baseline snapshot bucket)
    "us-east-2": ("aws-patch-manager-us-east-2-552881074", "patch-baseline-snapshot-us-east-2"),
    "us-east-1": ("aws-patch-manager-us-east-1-1970c647d", "patch-baseline-snapshot-us-east-1"),
    "us-west-1": ("aws-patch-manager-us-west-1-8badb4304", "patch-baseline-snapshot-us-west-1"),
    "us-west-2": ("aws-patch-manager-us-west-2-34d7f99f8", "patch-baseline-snapshot-us-west-2"),
    "af-south-1": (
        "aws-patch-manager-af-south-1-bdd5f65a9",
        "patch-baseline-snapshot-af-south-1-tbxdb5b9",
    ),
    "ap-east-1": ("aws-patch-manager-ap-east-1-632356271", "patch-baseline-snapshot-ap-east-1"),
    "ap-south-2": (
        "aws-patch-manager-ap-south-2-32f4b4128",
        "patch-baseline-snapshot-ap-south-2-50209442",
    ),
    "ap-southeast-3": (
        "aws-patch-manager-ap-southeast-3-aa48fc462",
        "patch-baseline-snapshot-ap-southeast-3-be0a3174",
    ),
    "ap-southeast-4": (
        "aws-patch-manager-ap-southeast-4-01e2c40d3",
        "patch-baseline-snapshot-ap-southeast-4-dc6f76ce",
    ),
    "ap-south-1": ("aws-patch-manager-ap-south-1-cb7c62ff9", "patch-baseline-snapshot-ap-south-1"),
    "ap-northeast-3": (
        "aws-patch-manager-ap-northeast-3-67373598a",
        "patch-baseline-snapshot-ap-northeast-3",
    ),
    "ap-northeast-2": (
        "aws-patch-manager-ap-northeast-2-10467995c",
        "patch-baseline-snapshot-ap-northeast-2",
    ),
    "ap-southeast-1": (
        "aws-patch-manager-ap-southeast-1-7fdfd9ef7",
        "patch-baseline-snapshot-ap-southeast-1",
    ),
    "ap-southeast-2": (
        "aws-patch-manager-ap-southeast-2-17283a275",
        "patch-baseline-snapshot-ap-southeast-2",
    ),
    "ap-northeast-1": (
        "aws-patch-manager-ap-northeast-1-4849fa78f",
        "patch-baseline-snapshot-ap-northeast-1",
    ),
    "ca-central-1": (
        "aws-patch-manager-ca-central-1-3148e69e3",
        "patch-baseline-snapshot-ca-central-1",
    ),
    "ca-west-1": ("aws-patch-manager-ca-west-1-9e3a4b2f9", "patch-baseline-snapshot-ca-west-1"),
    "eu-central-1": (
        "aws-patch-manager-eu-central-1-9163fdaaf",
        "patch-baseline-snapshot-eu-central-1",
    ),
    "eu-west-1": ("aws-patch-manager-eu-west-1-5522fb710", "patch-baseline-snapshot-eu-west-1"),
    "eu-west-2": ("aws-patch-manager-eu-west-2-902a2bc74", "patch-baseline-snapshot-eu-west-2"),
    "eu-south-1": ("aws-patch-manager-eu-south-1-c52f3f594", "patch-baseline-snapshot-eu-south-1"),
    "eu-west-3": ("aws-patch-manager-eu-west-3-29bf85721", "patch-baseline-snapshot-eu-west-3"),
    "eu-south-2": (
        "aws-patch-manager-eu-south-2-a4cf248b1",
        "patch-baseline-snapshot-eu-south-2-df2c9d70",
    ),
    "eu-north-1": ("aws-patch-manager-eu-north-1-795879e9b", "patch-baseline-snapshot-eu-north-1"),
    "eu-central-2": (
        "aws-patch-manager-eu-central-2-184ce43c8",
        "patch-baseline-snapshot-eu-central-2",
    ),
    "il-central-1": (
        "aws-patch-manager-il-central-1-e221cb57b",
        "patch-baseline-snapshot-il-central-1",
    ),
    "me-south-1": (
        "aws-patch-manager-me-south-1-a53fc9dce",
        "patch-baseline-snapshot-me-south-1-uduvl7q8",
    ),
    "me-central-1": (
        "aws-patch-manager-me-central-1-2932f2f80",
        "patch-baseline-snapshot-me-central-1",
    ),
    "sa-east-1": ("aws-patch-manager-sa-east-1-ddf4b6a09", "patch-baseline-snapshot-sa-east-1"),
}
"""The patching buckets per region: their names carry a suffix that only the table gives."""


def ssm_agent_buckets(stack: Stack) -> list[str]:
    """Names of the buckets SSM Agent reads for its updates and for patching in the
    stack's region. In a region missing from :data:`PATCH_BUCKETS`, or in an
    environment-agnostic stack, only the two whose names follow from the region."""
    region = stack.region
    buckets = [f"amazon-ssm-{region}", f"aws-ssm-{region}"]
    if not Token.is_unresolved(region) and region in PATCH_BUCKETS:
        buckets += PATCH_BUCKETS[region]
    return buckets
