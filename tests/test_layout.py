"""Layout invariants that keep the repo importable."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_constructs_folder_is_not_a_package() -> None:
    # A constructs/__init__.py would shadow the PyPI package `constructs` that aws-cdk-lib
    # imports, and `import aws_cdk` would fail with "No module named 'constructs._jsii'".
    assert not (ROOT / "constructs" / "__init__.py").exists()


def test_pypi_constructs_package_is_the_one_imported() -> None:
    import constructs

    assert hasattr(constructs, "Construct")
    assert ROOT / "constructs" not in Path(constructs.__file__).parents


def test_ci_runs_the_documented_gate() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in ci
    assert "make synth" in readme
    assert "make test" in readme
