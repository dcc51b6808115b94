"""An ECR pull-through-cache rule, the cache repositories it fills, and access to them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from aws_cdk import Acknowledgment, RemovalPolicy, Stack, Token, Validations
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from traced_fargate._checkov import skip
from traced_fargate._image_tags import (
    REPOSITORY_NAME_MAX_LENGTH,
    image_reference_problems,
    positive_int_problems,
    reference_suffix,
    repository_name_problems,
)
from traced_fargate._nag import nag_resource_text
from traced_fargate._repository_encryption import (
    repository_encryption,
    repository_encryption_problems,
)
from traced_fargate.errors import raise_if_problems

# Upstream registries that ECR caches without a Secrets Manager credential or a
# custom role; this construct takes neither, so any other registry would only
# fail at deploy time.
UNAUTHENTICATED_UPSTREAM_REGISTRIES = ("public.ecr.aws", "quay.io", "registry.k8s.io")

_PREFIX_MAX_LENGTH = 30

# The removal policies an ECR repository supports: it has no snapshots.
_REPOSITORY_REMOVAL_POLICIES = (
    RemovalPolicy.DESTROY,
    RemovalPolicy.RETAIN,
    RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
)

_PULL_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:BatchImportUpstreamImage",
    "ecr:CreateRepository",
    "ecr:GetDownloadUrlForLayer",
)


class PullThroughCache(Construct):
    """Caches an upstream public registry under a namespace of this account's ECR registry.

    Pulling ``<account>.dkr.ecr.<region>.<url suffix>/<prefix>/<upstream path>:<tag>``
    makes ECR fetch ``<upstream registry>/<upstream path>:<tag>`` once and serve it
    from the private registry afterwards, so tasks in a VPC without internet access
    can run public images. The first pull of an image through a PrivateLink-only VPC
    still needs an egress route (ECR documents this); later pulls do not.

    Children (construct ids are stable):

    - ``Rule``: the ``AWS::ECR::PullThroughCacheRule``.
    - one ``ecr.Repository`` per entry of ``cached_repositories``, with the
      upstream path's ``/`` written as ``--`` in its id
      (``xray/aws-xray-daemon`` -> ``xray--aws-xray-daemon``).

    A consumer that pulls at deploy time (an ECS service) must be created after the
    rule and the repositories: :meth:`container_image` adds that dependency to the
    task definition it is used in; otherwise call ``node.add_dependency(cache)``.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        repository_prefix: str,
        upstream_registry_url: str = "public.ecr.aws",
        cached_repositories: Sequence[str] = (),
        max_image_count: int = 10,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
        encryption: ecr.RepositoryEncryption | None = None,
        encryption_key: kms.IKey | None = None,
    ) -> None:
        """Define the rule and the pre-created cache repositories.

        :param repository_prefix: the ECR namespace the cache fills, e.g.
            ``"dev-ecr-public"``. One rule per prefix per registry, so use a prefix
            unique to the environment within its account and region. 2-30 lowercase
            letters and digits separated by single ``.``, ``_``, ``-`` or ``/``
            (ECR's rule); ``ROOT``, which ECR reads as "the whole registry", and a
            trailing ``/`` are rejected.
        :param upstream_registry_url: the registry cached. Default ``public.ecr.aws``
            (ECR Public). Only registries that need no credential are accepted:
            ``public.ecr.aws``, ``quay.io``, ``registry.k8s.io``.
        :param cached_repositories: upstream repository paths, e.g.
            ``["xray/aws-xray-daemon"]``, whose cache repositories the stack creates
            (and so CloudFormation owns) with scan on push, this construct's
            encryption and a lifecycle rule. Default: none; ECR then creates each cache
            repository on its first pull, with the registry's defaults and no
            lifecycle rule. CloudFormation cannot create a repository
            that a pull already created: list a path before anything pulls it, or
            delete (or import) the existing repository first. The cache repositories
            keep mutable tags because ECR updates a cached tag when upstream moves it.
        :param max_image_count: how many images each pre-created cache repository
            keeps: the newest by the time ECR cached them. Default 10. An expired
            image is fetched from upstream again on its next pull, which needs the
            egress route again.
        :param removal_policy: what happens to the pre-created cache repositories
            when they leave the stack (``cdk destroy``, or a path removed from
            ``cached_repositories``). Their names are fixed (``<prefix>/<path>``),
            so this decides whether the stack can be created again:

            - ``DESTROY`` (default): CloudFormation empties each repository
              (``EmptyOnDelete``) and deletes it. Nothing of it remains, so the next
              deploy creates it again; the cache is then empty and the first pull of
              each image fetches it from upstream again, which needs the egress route
              again.
            - ``RETAIN``, or ``RETAIN_ON_UPDATE_OR_DELETE`` (the same, except that a
              failed create of the repository removes it): each repository and its
              images remain, owned by no stack. The next create of a stack with the
              same prefix and path fails, because CloudFormation cannot create a
              repository that exists ("already exists"): delete the repositories, or
              import them into the stack, first.

            ``SNAPSHOT`` is rejected: ECR repositories have no snapshots. Under any
            policy, repositories that ECR created on a first pull of a path not listed
            in ``cached_repositories`` belong to no stack and remain under the prefix
            after a destroy. The rule itself holds no data and is always deleted.
        :param encryption: how ECR encrypts the pre-created cache repositories at rest.
            Default: ``KMS``, with ``encryption_key`` or else the AWS managed key
            ``aws/ecr``. ``AES_256`` (ECR-managed S3 keys, no KMS) only when chosen here.
            The cache fills these repositories through the same grants, and pulls need no
            KMS permission (see ``encryption_key``). Their names are fixed, so changing it
            on a deployed stack fails ("cannot update a stack when a custom-named resource
            requires replacing"): remove the paths from ``cached_repositories`` in one
            deploy and add them back in the next. Repositories that ECR creates on a first
            pull of a path not listed take the registry's settings (AES-256 unless a
            repository creation template for the prefix says otherwise).
        :param encryption_key: a customer managed KMS key for the pre-created cache
            repositories. ECR creates grants on it when CloudFormation creates a repository
            and encrypts and decrypts through them, so the task execution role pulls without
            KMS permissions; the deploying role needs ``kms:CreateGrant``,
            ``kms:DescribeKey`` and ``kms:RetireGrant`` on it. Default: none (the AWS
            managed key).
        """
        super().__init__(scope, id)
        problems = _prop_problems(
            repository_prefix=repository_prefix,
            upstream_registry_url=upstream_registry_url,
            cached_repositories=cached_repositories,
            max_image_count=max_image_count,
            removal_policy=removal_policy,
        )
        problems += repository_encryption_problems(encryption, encryption_key)
        raise_if_problems(self.node.path, problems)

        self.repository_prefix: str = repository_prefix
        """The ECR namespace of the cache, without a trailing ``/``."""
        self.upstream_registry_url: str = upstream_registry_url
        """The registry the cache fetches from."""

        self.rule = ecr.CfnPullThroughCacheRule(
            self,
            "Rule",
            ecr_repository_prefix=repository_prefix,
            upstream_registry_url=upstream_registry_url,
        )
        """The ``AWS::ECR::PullThroughCacheRule``."""

        repositories: dict[str, ecr.IRepository] = {}
        for upstream_path in cached_repositories:
            repositories[upstream_path] = ecr.Repository(
                self,
                upstream_path.replace("/", "--"),
                repository_name=f"{repository_prefix}/{upstream_path}",
                image_scan_on_push=True,
                image_tag_mutability=ecr.TagMutability.MUTABLE,
                **repository_encryption(encryption, encryption_key),
                lifecycle_rules=[
                    ecr.LifecycleRule(
                        rule_priority=1,
                        description=f"Keep the newest {max_image_count} cached images",
                        tag_status=ecr.TagStatus.ANY,
                        max_image_count=max_image_count,
                    )
                ],
                removal_policy=removal_policy,
                # CloudFormation's own EmptyOnDelete: deleting a repository that still
                # holds images fails otherwise. CDK allows it only with DESTROY.
                empty_on_delete=True if removal_policy == RemovalPolicy.DESTROY else None,
            )
        for repository in repositories.values():
            skip(
                repository,
                "CKV_AWS_51",
                "A pull-through cache repository: ECR updates a cached tag when upstream moves "
                "it, which immutable tags would refuse. The tags pulled are pinned versions "
                "('latest' is rejected).",
            )
        self.repositories: Mapping[str, ecr.IRepository] = MappingProxyType(repositories)
        """The pre-created cache repositories, keyed by upstream path."""

    def grant_pull(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` pull any image under the prefix, through the cache.

        Adds two statements to the grantee's principal policy: the pull actions plus
        ``ecr:BatchImportUpstreamImage`` and ``ecr:CreateRepository`` (the first pull
        of a path imports the image and creates its cache repository) on
        ``repository/<prefix>/*``, and ``ecr:GetAuthorizationToken`` on ``*`` (it has
        no resource-level permission). :meth:`container_image` grants this to the
        execution role of the task definition it is used in.
        """
        cached = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(_PULL_ACTIONS),
            resource_arns=[self._repositories_arn()],
        )
        token = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["ecr:GetAuthorizationToken"],
            resource_arns=["*"],
        )
        return cached.combine(token)

    def acknowledge_pull_grant(self, role: iam.IRole) -> None:
        """Acknowledge, on ``role``, the cdk-nag finding of :meth:`grant_pull`'s prefix
        wildcard (``repository/<prefix>/*``), with the reason it is needed."""
        resource = nag_resource_text(Stack.of(self), self._repositories_arn())
        Validations.of(role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{resource}]",
                reason="Pulling through the cache imports each upstream path into its own "
                "repository under the cache's prefix; the grant covers that prefix only.",
            )
        )

    def image_uri(self, upstream_path: str, tag: str) -> str:
        """The private URI of ``<upstream registry>/<upstream_path>:<tag>`` in the cache.

        :param upstream_path: the repository path upstream, e.g. ``xray/aws-xray-daemon``.
        :param tag: a pinned version tag, or a digest ``sha256:<64 hex>`` (then the
            URI ends ``@sha256:...``). ``latest`` is rejected: upstream moves it, so
            a redeploy or a rollback would run another image.
        """
        problems = repository_name_problems("upstream_path", upstream_path, kind="repository path")
        problems += image_reference_problems("tag", tag)
        raise_if_problems(self.node.path, problems)
        stack = Stack.of(self)
        registry = f"{stack.account}.dkr.ecr.{stack.region}.{stack.url_suffix}"
        return f"{registry}/{self.repository_prefix}/{upstream_path}{reference_suffix(tag)}"

    def container_image(self, upstream_path: str, tag: str) -> ecs.ContainerImage:
        """The cached image as an ECS container image (arguments as :meth:`image_uri`).

        When a container definition uses it, the task's execution role gets
        :meth:`grant_pull` and the task definition depends on this construct, so the
        service that runs it is created after the rule and the cache repositories.
        """
        return _CachedImage(self, self.image_uri(upstream_path, tag))

    def _repositories_arn(self) -> str:
        return Stack.of(self).format_arn(
            service="ecr",
            resource="repository",
            resource_name=f"{self.repository_prefix}/*",
        )


class _CachedImage(ecs.ContainerImage):
    def __init__(self, cache: PullThroughCache, image_uri: str) -> None:
        super().__init__()
        self._cache = cache
        self._image_uri = image_uri

    def bind(
        self, scope: Construct, container_definition: ecs.ContainerDefinition
    ) -> ecs.ContainerImageConfig:
        task_definition = container_definition.task_definition
        role = task_definition.obtain_execution_role()
        self._cache.grant_pull(role)
        self._cache.acknowledge_pull_grant(role)
        # On the CfnTaskDefinition only: on the L2 the dependency would spread to
        # its roles and policies, which do not pull.
        (task_definition.node.default_child or task_definition).node.add_dependency(self._cache)
        return ecs.ContainerImageConfig(image_name=self._image_uri)


def _prop_problems(
    *,
    repository_prefix: str,
    upstream_registry_url: str,
    cached_repositories: Sequence[str],
    max_image_count: int,
    removal_policy: RemovalPolicy,
) -> list[str]:
    problems = repository_prefix_problems("repository_prefix", repository_prefix)
    if upstream_registry_url not in UNAUTHENTICATED_UPSTREAM_REGISTRIES:
        problems.append(
            f"upstream_registry_url: {upstream_registry_url!r} is not supported; allowed: "
            f"{', '.join(UNAUTHENTICATED_UPSTREAM_REGISTRIES)} (registries that need no "
            "credential)"
        )
    if isinstance(cached_repositories, str):
        problems.append(
            f"cached_repositories: {cached_repositories!r} is a string; allowed: a sequence "
            "of upstream repository paths such as ['xray/aws-xray-daemon']"
        )
    else:
        seen: set[str] = set()
        for path in cached_repositories:
            problems += _cached_repository_problems(repository_prefix, path, seen)
            seen.add(path)
    problems += positive_int_problems("max_image_count", max_image_count)
    if removal_policy not in _REPOSITORY_REMOVAL_POLICIES:
        allowed = ", ".join(p.name for p in _REPOSITORY_REMOVAL_POLICIES)
        problems.append(
            f"removal_policy: {removal_policy.name} is not supported by ECR repositories; "
            f"allowed: {allowed}"
        )
    return problems


def repository_prefix_problems(prop: str, prefix: str) -> list[str]:
    """Problems of a pull-through-cache ``repository_prefix``, one line per broken rule.

    Each line starts with ``prop``, then names the value and what is allowed: 2-30
    lowercase letters and digits separated by single ``.``, ``_``, ``-`` or ``/``, and not
    ``ROOT``. An unresolved token has no problems (its value is known at deploy time).
    Apps that derive a prefix from their own settings can check it with the same rule
    before they construct a :class:`PullThroughCache`.
    """
    if not isinstance(prefix, str):
        return [
            f"{prop}: {prefix!r} is not a string; allowed: a namespace such as 'dev-ecr-public'"
        ]
    if prefix == "ROOT":
        return [
            f"{prop}: 'ROOT' makes ECR cache into the whole registry; allowed: "
            "a namespace such as 'dev-ecr-public'"
        ]
    return repository_name_problems(
        prop, prefix, max_length=_PREFIX_MAX_LENGTH, kind="repository prefix"
    )


def _cached_repository_problems(prefix: str, path: str, seen: set[str]) -> list[str]:
    prop = "cached_repositories"
    if Token.is_unresolved(path):
        return [f"{prop}: {path!r} is a token; allowed: literal paths (they name constructs)"]
    if path in seen:
        return [f"{prop}: {path!r} is listed twice"]
    problems = repository_name_problems(prop, path, kind="repository path")
    name = f"{prefix}/{path}"
    if not Token.is_unresolved(prefix) and len(name) > REPOSITORY_NAME_MAX_LENGTH:
        problems.append(
            f"{prop}: {path!r} makes the cache repository name {len(name)} characters long; "
            f"allowed: at most {REPOSITORY_NAME_MAX_LENGTH} with the prefix"
        )
    return problems


PUBLIC_REGISTRY = "public.ecr.aws"


def cached_or_public_image(
    cache: PullThroughCache | None, upstream_path: str, tag: str
) -> ecs.ContainerImage:
    """An ECR Public image through ``cache`` (the way into a closed VPC), or straight from
    ECR Public when there is no cache (the task then needs a route to the internet)."""
    if cache is not None:
        return cache.container_image(upstream_path, tag)
    return ecs.ContainerImage.from_registry(
        f"{PUBLIC_REGISTRY}/{upstream_path}{reference_suffix(tag)}"
    )
