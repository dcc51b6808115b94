"""Type checks of construct props, reported like every other prop problem.

A construct calls these before it touches a prop, so that ``cpu="512"`` or a
``vpc`` of the wrong kind stops synth with one line naming the prop, not with a
``TypeError`` or ``AttributeError`` from deep inside aws-cdk-lib.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aws_cdk import Token


def int_problems(
    prop: str, value: object, low: int | None = None, high: int | None = None
) -> list[str]:
    """Problems of a whole-number prop, optionally within ``low``..``high``."""
    if isinstance(value, float) and Token.is_unresolved(value):
        return []  # a number token: known at deploy time only
    if isinstance(value, bool) or not isinstance(value, int):
        return [f"{prop}: {value!r} is not an integer; allowed: {_range_text(low, high)}"]
    if (low is not None and value < low) or (high is not None and value > high):
        return [f"{prop}: {value!r} is not allowed; allowed: {_range_text(low, high)}"]
    return []


def _range_text(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"a whole number from {low} to {high}"
    if low is not None:
        return f"a whole number >= {low}"
    if high is not None:
        return f"a whole number <= {high}"
    return "a whole number"


def str_problems(prop: str, value: object) -> list[str]:
    """Problems of a string prop."""
    if not isinstance(value, str):
        return [f"{prop}: {value!r} is not a string"]
    return []


def bool_problems(prop: str, value: object) -> list[str]:
    """Problems of a true/false prop."""
    if not isinstance(value, bool):
        return [f"{prop}: {value!r} is not allowed; allowed: True or False"]
    return []


def str_mapping_problems(prop: str, value: object) -> list[str]:
    """Problems of a mapping of strings to strings (environment variables)."""
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [f"{prop}: {value!r} is not a mapping of names to values"]
    return [
        f"{prop}: {key!r}: {item!r} is not a string; environment values are strings"
        for key, item in value.items()
        if not isinstance(key, str) or not isinstance(item, str)
    ]


def kind_problems(
    prop: str, value: object, is_kind: Callable[[Any], bool], kind: str, *, optional: bool = False
) -> list[str]:
    """Problems of a prop that must be ``kind`` (e.g. ``an ec2.IVpc``)."""
    if value is None and optional:
        return []
    if is_kind(value):
        return []
    return [f"{prop}: expected {kind}, got {type(value).__name__}"]


def has_attributes(*names: str) -> Callable[[Any], bool]:
    """A kind check for a jsii interface: the object carries the interface's members.

    jsii interfaces are not runtime-checkable protocols in Python, and user code may
    pass its own implementations; checking the members that the construct uses is what
    matters.
    """
    return lambda value: value is not None and all(hasattr(value, n) for n in names)
