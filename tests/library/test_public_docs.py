"""The library's public surface: what `dir(traced_fargate)` lists, and a docstring on every
public class and on each public attribute, property and method it defines."""

from __future__ import annotations

import importlib
import inspect

import pdoc.doc
import pytest

import traced_fargate

PUBLIC_CLASSES = [
    name
    for name in traced_fargate.__all__
    if inspect.isclass(getattr(traced_fargate, name))
    and getattr(traced_fargate, name).__module__.startswith("traced_fargate")
]


def test_dir_lists_the_public_constructs() -> None:
    listed = dir(traced_fargate)
    for name in ("ClosedVpc", "TracedFargateService", "TracedTaskDefinition", "XRayDaemon"):
        assert name in listed
    assert listed == sorted(traced_fargate.__all__)


@pytest.mark.parametrize("name", PUBLIC_CLASSES)
def test_every_public_member_is_documented(name: str) -> None:
    obj = getattr(traced_fargate, name)
    module = pdoc.doc.Module(importlib.import_module(obj.__module__))
    cls = module.get(obj.__qualname__)
    assert isinstance(cls, pdoc.doc.Class)
    assert cls.docstring, f"{name} has no docstring"
    undocumented = [
        m.name for m in cls.own_members if not m.name.startswith("_") and not m.docstring
    ]
    assert undocumented == [], f"{name}: undocumented public members {undocumented}"
