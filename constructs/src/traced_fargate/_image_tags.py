"""ECR naming rules and prop checks shared by the registry constructs.

Each ``*_problems`` function returns one message per broken rule, naming the
prop, the bad value and what is allowed, so that a construct can collect every
problem of its props before it raises :class:`~traced_fargate.errors.InvalidPropsError`.
Unresolved tokens are not checked: their value is only known at deploy time.
"""

from __future__ import annotations

import re

from aws_cdk import Token

# ECR CreateRepository: lowercase components joined by single . _ - and by /.
REPOSITORY_NAME = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
REPOSITORY_NAME_MIN_LENGTH = 2
REPOSITORY_NAME_MAX_LENGTH = 256

# Docker reference grammar: a tag is at most 128 characters.
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")

# A tag that upstream moves on every release: a redeploy or a rollback would
# silently run a different image.
FLOATING_TAG = "latest"

_TAG_RULE = "1-128 of A-Z a-z 0-9 _ . -, not starting with . or -"
_REPOSITORY_RULE = (
    "lowercase letters and digits, separated by single . _ or - inside a component and by /"
    " between components"
)


def is_digest(reference: str) -> bool:
    """Whether ``reference`` is an image digest (``sha256:<64 hex>``) rather than a tag."""
    return DIGEST.fullmatch(reference) is not None


def reference_suffix(reference: str) -> str:
    """The part of an image URI after the repository: ``@<digest>`` or ``:<tag>``."""
    return f"@{reference}" if is_digest(reference) else f":{reference}"


def image_reference_problems(prop: str, reference: str) -> list[str]:
    """Problems of a pinned image reference: a version tag or a ``sha256:`` digest."""
    if Token.is_unresolved(reference) or is_digest(reference):
        return []
    if reference == "":
        problem = "the empty string is not a tag; pin a version tag such as '1.4.2'"
    elif reference.lower() == FLOATING_TAG:
        problem = (
            f"{reference!r} is a floating tag and is not allowed; pin a version tag such as "
            "'1.4.2' or a digest 'sha256:<64 lowercase hex>'"
        )
    elif reference.startswith("sha256:"):
        problem = f"{reference!r} is not a digest; allowed: 'sha256:' and 64 lowercase hex"
    elif TAG.fullmatch(reference) is None:
        problem = (
            f"{reference!r} is not a valid image tag; allowed: {_TAG_RULE}, "
            "or a digest 'sha256:<64 lowercase hex>'"
        )
    else:
        return []
    return [f"{prop}: {problem}"]


def tag_prefix_problems(prop: str, prefix: str) -> list[str]:
    """Problems of a lifecycle ``tagPrefixList`` entry: the start of a valid tag."""
    if Token.is_unresolved(prefix):
        return []
    if TAG.fullmatch(prefix) is None:
        return [f"{prop}: {prefix!r} is not a valid tag prefix; allowed: {_TAG_RULE}"]
    return []


def repository_name_problems(
    prop: str,
    name: str,
    *,
    max_length: int = REPOSITORY_NAME_MAX_LENGTH,
    kind: str = "repository name",
) -> list[str]:
    """Problems of an ECR repository name, or of a name-shaped ``kind`` of value.

    Upstream repository paths and pull-through-cache prefixes follow the same
    grammar, with their own ``max_length``.
    """
    if Token.is_unresolved(name):
        return []
    problems = []
    if not REPOSITORY_NAME_MIN_LENGTH <= len(name) <= max_length:
        problems.append(
            f"{prop}: {name!r} has {len(name)} characters; allowed: "
            f"{REPOSITORY_NAME_MIN_LENGTH}-{max_length}"
        )
    if REPOSITORY_NAME.fullmatch(name) is None:
        problems.append(f"{prop}: {name!r} is not a valid {kind}; allowed: {_REPOSITORY_RULE}")
    return problems


def positive_int_problems(prop: str, value: object) -> list[str]:
    """Problems of a count or a number of days that must be a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        return [f"{prop}: {value!r} is not an integer; allowed: a whole number >= 1"]
    if value < 1:
        return [f"{prop}: {value!r} is too small; allowed: a whole number >= 1"]
    return []
