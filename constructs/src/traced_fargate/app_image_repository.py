"""The ECR repository a CI pipeline pushes the service's application image to."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from traced_fargate._image_tags import (
    image_reference_problems,
    positive_int_problems,
    repository_name_problems,
    tag_prefix_problems,
)
from traced_fargate._repository_encryption import (
    repository_encryption,
    repository_encryption_problems,
)
from traced_fargate.errors import raise_if_problems

DEFAULT_TAG_PREFIX_EXPIRY_DAYS: Mapping[str, int] = MappingProxyType(
    {"prod": 100, "stage": 10, "dev": 10}
)
"""Days a tagged image lives, per tag prefix, when ``tag_prefix_expiry_days`` is omitted."""


class AppImageRepository(Construct):
    """A private ECR repository for the application image, with expiry by tag prefix.

    Tags are immutable (a tag always names the image that was tested under it),
    images are scanned on push, and a lifecycle policy expires:

    - untagged images ``untagged_expiry_days`` after their push (rule priority 1);
    - images with a tag starting with each prefix of ``tag_prefix_expiry_days``
      that many days after their push, one rule per prefix (priorities 2, 3, ...).

    ECR selects an image for a rule only when the image has a tag for *every*
    prefix in the rule's ``tagPrefixList``, so each prefix gets its own rule.
    Rules run in priority order and an image that one rule selects is never
    expired by a later rule; the prefix rules are therefore ordered by retention,
    longest first (ties by prefix), so an image promoted from ``dev-42`` to
    ``prod-42`` lives as long as its ``prod`` tag says. The order, and so the
    template, does not depend on the order of the mapping.

    Children (construct ids are stable): ``Repository``, the ``ecr.Repository``.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        repository_name: str | None = None,
        untagged_expiry_days: int = 10,
        tag_prefix_expiry_days: Mapping[str, int] = DEFAULT_TAG_PREFIX_EXPIRY_DAYS,
        encryption: ecr.RepositoryEncryption | None = None,
        encryption_key: kms.IKey | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """Define the repository.

        :param repository_name: the repository's name, 2-256 lowercase letters and
            digits separated by single ``.``, ``_``, ``-`` or ``/``. When omitted,
            CloudFormation generates a unique name (read it from
            ``repository.repository_name``).
        :param untagged_expiry_days: days after its push that an untagged image
            (a build whose tag moved on, or a push without a tag) expires.
            Default 10.
        :param tag_prefix_expiry_days: days after its push that an image expires,
            per tag prefix (``{"prod": 100}`` expires ``prod-1.4.2`` after 100 days).
            Default ``{"prod": 100, "stage": 10, "dev": 10}``. A tagged image that
            matches no prefix never expires; an empty mapping keeps every tagged
            image. Prefixes may overlap (``p`` and ``prod``): an image matching
            both follows the longer retention.
        :param encryption: how ECR encrypts the images at rest. Default: ``KMS``, with
            ``encryption_key`` or else the AWS managed key ``aws/ecr``. ``AES_256``
            (ECR-managed S3 keys, no KMS) only when chosen here. A repository's encryption
            is fixed when it is created: changing it replaces the repository (with
            ``RETAIN``, the old one stays, outside the stack, with its images).
        :param encryption_key: a customer managed KMS key for the images. ECR decrypts
            through grants it creates on the key, so pullers need no KMS permission; the
            deploying role needs ``kms:CreateGrant``, ``kms:DescribeKey`` and
            ``kms:RetireGrant`` on it. Default: none (the AWS managed key).
        :param removal_policy: what happens to the repository when it leaves the
            stack. Default ``RETAIN``: it holds the images that releases and
            rollbacks run. With ``DESTROY``, deleting a repository that still holds
            images fails.
        """
        super().__init__(scope, id)
        problems: list[str] = []
        if repository_name is not None:
            problems += repository_name_problems("repository_name", repository_name)
        problems += positive_int_problems("untagged_expiry_days", untagged_expiry_days)
        problems += repository_encryption_problems(encryption, encryption_key)
        for prefix, days in tag_prefix_expiry_days.items():
            problems += tag_prefix_problems("tag_prefix_expiry_days", prefix)
            problems += positive_int_problems(f"tag_prefix_expiry_days[{prefix!r}]", days)
        raise_if_problems(self.node.path, problems)

        lifecycle_rules = [
            ecr.LifecycleRule(
                rule_priority=1,
                description=f"Expire untagged images {untagged_expiry_days} days after push",
                tag_status=ecr.TagStatus.UNTAGGED,
                max_image_age=Duration.days(untagged_expiry_days),
            )
        ]
        by_retention = sorted(tag_prefix_expiry_days.items(), key=lambda item: (-item[1], item[0]))
        for priority, (prefix, days) in enumerate(by_retention, start=2):
            lifecycle_rules.append(
                ecr.LifecycleRule(
                    rule_priority=priority,
                    description=f"Expire images tagged {prefix}* {days} days after push",
                    tag_status=ecr.TagStatus.TAGGED,
                    tag_prefix_list=[prefix],
                    max_image_age=Duration.days(days),
                )
            )

        self.repository = ecr.Repository(
            self,
            "Repository",
            repository_name=repository_name,
            image_scan_on_push=True,
            image_tag_mutability=ecr.TagMutability.IMMUTABLE,
            **repository_encryption(encryption, encryption_key),
            lifecycle_rules=lifecycle_rules,
            removal_policy=removal_policy,
        )
        """The ``ecr.Repository``."""

    def grant_pull(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` pull images (``ecr.Repository.grant_pull``)."""
        return self.repository.grant_pull(grantee)

    def grant_pull_push(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` pull and push images, e.g. a CI pipeline's role.

        Delegates to ``ecr.Repository.grant_pull_push``.
        """
        return self.repository.grant_pull_push(grantee)

    def container_image(self, tag: str) -> ecs.ContainerImage:
        """The image pushed under ``tag`` as an ECS container image.

        :param tag: a version tag such as ``prod-1.4.2``, or a digest
            ``sha256:<64 hex>``. ``latest`` is rejected: the name does not say which
            build runs, and with immutable tags it can be pushed only once.

        When a container definition uses the image, the task's execution role gets
        :meth:`grant_pull`.
        """
        raise_if_problems(self.node.path, image_reference_problems("tag", tag))
        return ecs.ContainerImage.from_ecr_repository(self.repository, tag)
