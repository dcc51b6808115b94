"""How the registry constructs encrypt their ECR repositories.

KMS by default: with the caller's key, or else the AWS managed key ``aws/ecr``. ECR creates
grants on the key when it creates a repository and decrypts through them when an image is
pulled, so pullers need no KMS permission of their own; whoever creates (CloudFormation)
and deletes the repository needs ``kms:CreateGrant``, ``kms:DescribeKey`` and
``kms:RetireGrant`` on a customer managed key. AES-256 (ECR-managed S3 keys) only when the
caller chooses it.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_kms as kms

from traced_fargate._props import has_attributes, kind_problems

_ENCRYPTION_TYPES = ("AES256", "KMS", "KMS_DSSE")


def repository_encryption_problems(encryption: object, encryption_key: object) -> list[str]:
    """Problems of the ``encryption`` and ``encryption_key`` props, one line each."""
    problems = kind_problems(
        "encryption",
        encryption,
        lambda v: getattr(v, "value", None) in _ENCRYPTION_TYPES,
        "an ecr.RepositoryEncryption (AES_256, KMS or KMS_DSSE)",
        optional=True,
    )
    problems += kind_problems(
        "encryption_key", encryption_key, has_attributes("key_arn"), "a kms.IKey", optional=True
    )
    if encryption_key is not None and getattr(encryption, "value", None) == "AES256":
        problems.append(
            "encryption_key: a key needs encryption KMS or KMS_DSSE; AES_256 uses ECR-managed "
            "keys (leave encryption out, or leave the key out)"
        )
    return problems


def repository_encryption(
    encryption: ecr.RepositoryEncryption | None, encryption_key: kms.IKey | None
) -> dict[str, Any]:
    """The ``ecr.Repository`` keyword arguments for the validated props."""
    return {
        "encryption": encryption or ecr.RepositoryEncryption.KMS,
        "encryption_key": encryption_key,
    }
